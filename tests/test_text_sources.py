"""OpenBCI GUI text, ARFF and eegmmidb sources: tiny files built here, then the real ones in shared/data."""

import socket

import numpy as np
import pytest

from eegfm.data import (
    EEGCorpus,
    from_arff,
    from_eegbci,
    from_openbci,
    read_arff,
    read_openbci_txt,
)
from eegfm.data.sources import EEGBCI_TASKS
from eegfm.data.specs import sources_from_spec

OPENBCI_NAMES = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]  # the Cyton's usual 10-20 sites


# --------------------------------------------------------------------------- OpenBCI, tiny files
def _openbci_text(exg, *, rate="250 Hz", n=None, name_row=True, newline="\n"):
    """A GUI v6-style file: header, column names, rows (index, EXG µV, accel, aux, timestamp)."""
    n = exg.shape[1] if n is None else n
    lines = ["%OpenBCI Raw EXG Data", f"%Number of channels = {n}", f"%Sample Rate = {rate}",
             "%Board = OpenBCI_GUI$BoardCytonSerial"]
    if name_row:
        lines.append("Sample Index, " + ", ".join(f"EXG Channel {i}" for i in range(exg.shape[1]))
                     + ", Accel Channel 0, Accel Channel 1, Accel Channel 2, Timestamp, Marker Channel, "
                     "Timestamp (Formatted)")
    for t, row in enumerate(exg):
        values = ", ".join(f"{v:.2f}" for v in row)
        lines.append(f"{t}, {values}, 0.040, 0.420, 0.238, {1557936053329 + 4 * t},0, 12:00:53.329")
    return newline.join(lines) + newline


@pytest.fixture
def exg():
    return np.round(np.random.default_rng(0).normal(0, 5000, (20, 4)), 2)  # (T, N) µV


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_openbci_round_trip(tmp_path, exg, newline):
    path = tmp_path / "OpenBCI-RAW-test.txt"
    path.write_bytes(_openbci_text(exg, rate="200 Hz", newline=newline).encode())
    raw = read_openbci_txt(path)
    assert raw.ch_names == ["EXG0", "EXG1", "EXG2", "EXG3"] and raw.info["sfreq"] == 200.0
    assert set(raw.get_channel_types()) == {"eeg"} and raw.n_times == 20
    np.testing.assert_array_equal(raw.get_data(), exg.T * 1e-6)  # volts, exactly
    named = read_openbci_txt(path, ch_names=["Fp1", "Fp2", "O1", "O2"])
    assert named.ch_names == ["Fp1", "Fp2", "O1", "O2"]
    np.testing.assert_array_equal(named.get_data(), raw.get_data())


def test_openbci_v4_without_column_names(tmp_path, exg):
    path = tmp_path / "v4.txt"
    path.write_text(_openbci_text(exg, rate="250.0 Hz", name_row=False))
    raw = read_openbci_txt(path)
    assert raw.info["sfreq"] == 250.0
    np.testing.assert_array_equal(raw.get_data(), exg.T * 1e-6)


def test_openbci_errors(tmp_path, exg):
    path = tmp_path / "bad.txt"
    good = _openbci_text(exg)
    path.write_text(good.replace("%Sample Rate = 250 Hz\n", ""))
    with pytest.raises(ValueError, match=r"bad\.txt: no 'Sample Rate = <rate> Hz' line"):
        read_openbci_txt(path)
    path.write_text(good.replace("%Number of channels = 4\n", ""))
    with pytest.raises(ValueError, match=r"bad\.txt: no 'Number of channels = <N>' line"):
        read_openbci_txt(path)
    path.write_text(_openbci_text(exg, n=5))
    with pytest.raises(ValueError, match=r"bad\.txt: the column-name row \(line 5\) has no 'EXG Channel 4'"):
        read_openbci_txt(path)
    lines = good.splitlines()
    lines[9] = "4, 1.0, 2.0"  # file line 10
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"bad\.txt: line 10 has 3 values, expected at least 5"):
        read_openbci_txt(path)
    lines[9] = "4, 1.0, 2.0, oops, 4.0, 0.1"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"bad\.txt: line 10: EXG value 'oops' is not a number"):
        read_openbci_txt(path)
    path.write_text(good)
    with pytest.raises(ValueError, match=r"bad\.txt: ch_names has 2 names for 4 channels"):
        read_openbci_txt(path, ch_names=["Fp1", "Fp2"])
    with pytest.raises(ValueError, match=r"bad\.txt: ch_names names channels more than once: \['Cz'\]"):
        read_openbci_txt(path, ch_names=["Cz", "Cz", "Pz", "Oz"])
    path.write_text("\n".join(good.splitlines()[:5]))
    with pytest.raises(ValueError, match=r"bad\.txt: no data rows after the column-name row"):
        read_openbci_txt(path)


# --------------------------------------------------------------------------- ARFF, tiny files
ARFF = """% a comment
@RELATION EEG_DATA

@ATTRIBUTE Fz NUMERIC
@ATTRIBUTE Cz REAL
% another comment
@ATTRIBUTE Pz NUMERIC
@ATTRIBUTE eyeDetection {0,1}

@DATA
4329.23,4009.23,4289.23,0
4324.62,4004.62,4293.85,1
% a comment between rows

4327.69,4006.67,4295.38,1
"""
ARFF_VALUES = np.array([[4329.23, 4009.23, 4289.23], [4324.62, 4004.62, 4293.85], [4327.69, 4006.67, 4295.38]])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_arff_round_trip_labels_are_not_channels(tmp_path, newline):
    path = tmp_path / "eye.arff"
    path.write_bytes(ARFF.replace("\n", newline).encode())
    raw, labels = read_arff(path, sfreq=128)
    assert raw.ch_names == ["Fz", "Cz", "Pz"] and raw.info["sfreq"] == 128.0
    assert set(raw.get_channel_types()) == {"eeg"}
    np.testing.assert_array_equal(raw.get_data(), ARFF_VALUES.T * 1e-6)
    assert list(labels) == ["eyeDetection"] and labels["eyeDetection"].dtype == np.int64
    np.testing.assert_array_equal(labels["eyeDetection"], [0, 1, 1])
    raw, labels = read_arff(path, sfreq=256.0, label_columns=["Pz"], scale=1.0)  # numeric label; µV kept
    assert raw.ch_names == ["Fz", "Cz"] and raw.info["sfreq"] == 256.0
    np.testing.assert_array_equal(raw.get_data(), ARFF_VALUES[:, :2].T)
    assert list(labels) == ["Pz", "eyeDetection"]  # nominal attributes are always labels
    np.testing.assert_array_equal(labels["Pz"], ARFF_VALUES[:, 2])


def test_arff_nominal_text_labels_stay_strings(tmp_path):
    path = tmp_path / "state.arff"
    path.write_text("@relation x\n@attribute 'C3' numeric\n@attribute C4 numeric\n@attribute state {open,closed}\n"
                    "@data\n1,2,open\n3,4,closed\n")
    raw, labels = read_arff(path, sfreq=10)
    assert raw.ch_names == ["C3", "C4"]
    assert labels["state"].tolist() == ["open", "closed"]


def test_arff_errors(tmp_path):
    path = tmp_path / "bad.arff"
    path.write_text(ARFF.replace("@DATA\n", ""))
    with pytest.raises(ValueError, match=r"bad\.arff: line 10: expected @RELATION, @ATTRIBUTE or @DATA, "
                                         r"got '4329.*@DATA line missing"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF.split("@DATA")[0])
    with pytest.raises(ValueError, match=r"bad\.arff: no @DATA line"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF.replace("4324.62,4004.62,4293.85,1", "4324.62,4004.62,1"))
    with pytest.raises(ValueError, match=r"bad\.arff: line 12 has 3 values, expected 4"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF.replace("4327.69,4006.67,4295.38,1", "4327.69,4006.67,4295.38,1,7"))
    with pytest.raises(ValueError, match=r"bad\.arff: line 15 has 5 values, expected 4"):
        read_arff(path, sfreq=128)  # scipy.io.arff alone would drop the extra value silently
    path.write_text(ARFF.replace("4324.62,", "abc,"))
    with pytest.raises(ValueError, match=r"bad\.arff: line 12: value 'abc' of a numeric attribute is not a number"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF.replace("4324.62,4004.62,4293.85,1", "{0 4324.62, 3 1}"))
    with pytest.raises(ValueError, match=r"bad\.arff: line 12: sparse ARFF rows"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF.split("@DATA")[0] + "@DATA\n")
    with pytest.raises(ValueError, match=r"bad\.arff: no data rows after @DATA \(line 10\)"):
        read_arff(path, sfreq=128)
    path.write_text(ARFF)
    with pytest.raises(ValueError, match=r"bad\.arff: label_columns \['eye'\] are not attributes"):
        read_arff(path, sfreq=128, label_columns=["eye"])
    with pytest.raises(ValueError, match=r"bad\.arff: sfreq must be a finite rate in Hz > 0"):
        read_arff(path, sfreq=0)
    with pytest.raises(TypeError, match="sfreq"):
        read_arff(path)  # the rate is required: ARFF stores none


# --------------------------------------------------------------------------- sources and specs
def test_sources_fingerprint_the_reading_parameters(tmp_path, exg):
    arff, txt = tmp_path / "eye.arff", tmp_path / "rec.txt"
    arff.write_text(ARFF)
    txt.write_text(_openbci_text(exg))
    a128, a256 = from_arff([arff], 128)[0], from_arff(arff, 256)[0]  # one path or a list
    assert a128.key == a256.key == str(arff.resolve()) and a128.fingerprint != a256.fingerprint
    assert a128.metadata == {"file": "eye.arff"} and a128.load().info["sfreq"] == 128.0
    plain, named = from_openbci([txt])[0], from_openbci([txt], ch_names=["Fp1", "Fp2", "O1", "O2"])[0]
    assert plain.fingerprint != named.fingerprint and named.load().ch_names == ["Fp1", "Fp2", "O1", "O2"]
    with pytest.raises(FileNotFoundError, match="ARFF file .*missing.arff does not exist"):
        from_arff([tmp_path / "missing.arff"], 128)


def test_spec_errors(tmp_path):
    (tmp_path / "eye.arff").write_text(ARFF)
    with pytest.raises(ValueError, match=r"write arff:GLOB:SFREQ"):
        list(sources_from_spec(f"arff:{tmp_path}/*.arff"))
    with pytest.raises(ValueError, match=r"write arff:GLOB:SFREQ"):
        list(sources_from_spec(f"arff:{tmp_path}/*.arff:fast"))
    assert len(list(sources_from_spec(f"arff:{tmp_path}/*.arff:128"))) == 1
    with pytest.raises(FileNotFoundError, match="no files match"):
        list(sources_from_spec(f"openbci:{tmp_path}/*.txt"))
    with pytest.raises(ValueError, match="subject 'x' is not a number or a range"):
        list(sources_from_spec(f"eegbci:{tmp_path}:x"))
    with pytest.raises(FileNotFoundError, match="no eegmmidb EDF files"):
        list(sources_from_spec(f"eegbci:{tmp_path}"))


# --------------------------------------------------------------------------- the real files
@pytest.fixture(scope="module")
def openbci_file(shared_data):
    return shared_data / "openbci_sample" / "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt"


@pytest.fixture(scope="module")
def arff_file(shared_data):
    return shared_data / "uci_eeg_eye_state" / "eeg_eye_state.arff"


@pytest.mark.real_data
def test_real_openbci_file(openbci_file):
    raw = read_openbci_txt(openbci_file)
    assert raw.ch_names == [f"EXG{i}" for i in range(8)]
    assert (len(raw.ch_names), raw.info["sfreq"], raw.n_times) == (8, 250.0, 22490)
    assert raw.get_data()[0, 0] == pytest.approx(61379.36e-6)  # first EXG value of the file, in volts


@pytest.mark.real_data
def test_real_uci_arff_file(arff_file):
    raw, labels = read_arff(arff_file, sfreq=128)
    assert raw.ch_names == ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]
    assert (raw.info["sfreq"], raw.n_times) == (128.0, 14980)
    assert list(labels) == ["eyeDetection"] and labels["eyeDetection"].shape == (14980,)
    assert labels["eyeDetection"].mean() == pytest.approx(0.449, abs=1e-3)  # 44.9 % eyes closed


@pytest.fixture(scope="module")
def real_corpus(shared_data, tmp_path_factory):
    """eegbci subject 2 runs 4/8/12 + the UCI ARFF + the OpenBCI file with unnamed channels."""
    spec = (f"eegbci:{shared_data / 'eegbci'}:2:4,8,12;arff:{shared_data}/uci_eeg_eye_state/*.arff:128;"
            f"openbci:{shared_data}/openbci_sample/*.txt")
    sources = list(sources_from_spec(spec))
    cache = tmp_path_factory.mktemp("cache")
    return sources, cache, EEGCorpus(sources, cache, progress=False)


@pytest.mark.real_data
def test_real_eegbci_spec_through_the_corpus(real_corpus, shared_data, monkeypatch):
    sources, cache, corpus = real_corpus
    assert [s.metadata for s in sources[:3]] == [
        {"dataset": "eegbci", "subject": 2, "run": run, "task": "motor_imagery"} for run in (4, 8, 12)]
    assert all(s.key.endswith(f"S002/S002R{run:02d}.edf") for s, run in zip(sources, (4, 8, 12)))
    eegbci = corpus.entries[:3]
    assert [e.meta["metadata"]["run"] for e in eegbci] == [4, 8, 12]
    assert all(e.n_channels == 64 and e.sfreq == 200.0 for e in eegbci)
    assert eegbci[0].ch_names[:4] == ["FC5", "FC3", "FC1", "FCz"]  # "Fc5." etc., standardised
    assert all(e.positions.shape == (64, 2) and not np.isnan(e.positions).any() for e in eegbci)

    def no_network(*args, **kwargs):
        raise AssertionError("eegbci sources must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    root = shared_data / "eegbci"
    again = EEGCorpus(sources_from_spec(f"eegbci:{root}:2:4,8,12"), cache, progress=False)
    assert (len(again), again.n_reused, again.n_built) == (3, 3, 0)  # all three from the cache


@pytest.mark.real_data
def test_real_arff_through_the_corpus_with_positions(real_corpus, arff_file):
    _, _, corpus = real_corpus
    entry = next(e for e in corpus.entries if e.meta["metadata"].get("file") == arff_file.name)
    assert entry.n_channels == 14 and entry.ch_names[0] == "AF3" and "eyeDetection" not in entry.ch_names
    assert entry.positions.shape == (14, 2) and not np.isnan(entry.positions).any()
    assert entry.n_times == round(14980 / 128 * 200)


@pytest.mark.real_data
def test_real_openbci_skipped_unless_named(real_corpus, openbci_file, tmp_path):
    _, _, corpus = real_corpus
    assert len(corpus) == 4 and [key for key, _ in corpus.skipped] == [str(openbci_file.resolve())]
    reason = corpus.skipped[0][1]
    assert reason.startswith("UnknownChannelError: ")
    assert "8 channel(s) have no position: 'EXG0', 'EXG1'" in reason and "positions={'EXG0': (x_p, y_p)}" in reason
    named = EEGCorpus(sources_from_spec(f"openbci:{openbci_file}:{','.join(OPENBCI_NAMES)}"), tmp_path,
                      progress=False)
    assert named.skipped == [] and named.entries[0].ch_names == OPENBCI_NAMES
    assert named.entries[0].n_times == round(22490 / 250 * 200)


@pytest.mark.real_data
def test_from_eegbci_selection(shared_data):
    root = shared_data / "eegbci"
    every = from_eegbci(root)
    assert len(every) == 56 and {s.metadata["subject"] for s in every} == {*range(1, 13), 15}
    assert [s.metadata["task"] for s in from_eegbci(root, subjects=[1], runs=[1, 2, 3, 6])] == [
        "baseline_open", "baseline_closed", "motor_execution", "motor_imagery"]
    assert len(from_eegbci(root / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0", runs=[6])) == 3
    assert EEGBCI_TASKS[11] == "motor_execution" and EEGBCI_TASKS[14] == "motor_imagery"
    with pytest.raises(FileNotFoundError, match="S002R06, S003R06 .*never downloads"):
        from_eegbci(root, subjects=[2, 3], runs=[4, 6])
    with pytest.raises(FileNotFoundError, match="subject 13"):
        from_eegbci(root, subjects=[13])
    with pytest.raises(ValueError, match="eegbci runs must be integers in 1-14"):
        from_eegbci(root, runs=[15])
