"""Tests for eegfm.montage: names -> positions -> proportion coordinates."""

import warnings
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.io

from eegfm.montage import (
    DEFAULT_MONTAGE,
    LEGACY_ALIASES,
    UnknownChannelError,
    head_to_proportion,
    normalize_channel_name,
    polar_to_proportion,
    proportion_coordinates,
)

from conftest import SHARED_DATA as DATA  # noqa: E402
# MNE 1.13 deprecates "standard_1005" (FutureWarning) in favour of "colin27_1005".
STD = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"

# Paper 3.1.2 / SPEC section 1.
EXPECTED = {
    "Cz": (50, 50), "Fpz": (50, 10), "Fz": (50, 30), "Pz": (50, 70), "Oz": (50, 90),
    "T7": (10, 50), "C3": (30, 50), "C4": (70, 50), "T8": (90, 50),
}
SEED_62 = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 T7 C5 "
    "C3 C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 P6 P8 PO7 "
    "PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2"
).split()
FACED_32 = (
    "FP1 FP2 FZ F3 F4 F7 F8 FC1 FC2 FC5 FC6 CZ C3 C4 T7 T8 CP1 CP2 CP5 CP6 PZ P3 P4 P7 P8 "
    "PO3 PO4 OZ O1 O2 A2 A1"
).split()


def coords(names, **kwargs):
    return dict(zip(names, proportion_coordinates(names, **kwargs)))


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"real EEG test data not found at {DATA}; put shared/ beside the repo")
    return DATA


def test_standard_1005_lands_on_the_10_20_grid():
    # Measured: C3 (31.2, 49.9) and C4 (69.2, 49.8) are the worst, 1.2 units off.
    got = coords(list(EXPECTED))
    for name, expected in EXPECTED.items():
        np.testing.assert_allclose(got[name], expected, atol=1.5, err_msg=name)
    assert DEFAULT_MONTAGE == "standard_1005"


def test_grid_is_ordered_and_left_is_left():
    c = coords(["Fp1", "Fp2", "F3", "F4", "P3", "P4", "O1", "O2", "Iz", "Oz", "AFz", "Fpz"])
    for left, right in [("Fp1", "Fp2"), ("F3", "F4"), ("P3", "P4"), ("O1", "O2")]:
        assert c[left][0] < 50 < c[right][0]
        assert abs(c[left][1] - c[right][1]) < 1.5  # the template is nearly symmetric
    assert c["Fpz"][1] < c["AFz"][1] and c["Oz"][1] < c["Iz"][1] <= 100.5


def test_deprecated_montage_names_are_read_silently_with_identical_positions():
    names = list(EXPECTED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning may escape
        default = proportion_coordinates(names)
        assert np.array_equal(default, proportion_coordinates(names, montage=STD))
        assert np.array_equal(
            proportion_coordinates(names, montage="standard_1020"),
            proportion_coordinates(names, montage=STD.replace("1005", "1020")),
        )
    if STD != "standard_1005":
        try:
            with pytest.warns(FutureWarning, match="deprecated"):
                old = mne.channels.make_standard_montage("standard_1005")
        except ValueError:  # a later MNE removed the old name
            return
        new = mne.channels.make_standard_montage(STD).get_positions()["ch_pos"]
        assert list(old.get_positions()["ch_pos"]) == list(new)
        for name, pos in old.get_positions()["ch_pos"].items():
            assert np.array_equal(pos, new[name])


def test_legacy_aliases_give_the_modern_coordinate_exactly():
    old, new = list(LEGACY_ALIASES), list(LEGACY_ALIASES.values())
    assert np.array_equal(proportion_coordinates(old), proportion_coordinates(new))
    assert np.array_equal(proportion_coordinates(["EEG T5"]), proportion_coordinates(["P7"]))


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Fc5.", "FC5"), ("C3..", "C3"), ("Fp1.", "FP1"), (" cz ", "CZ"), ("EEG Fp1", "FP1"),
        ("EEG_Fp1", "FP1"), ("EEG FP1-REF", "FP1"), ("Fp1-Ref", "FP1"), ("O2-LE", "O2"),
        ("Cz-AR", "CZ"), ("Pz-avg", "PZ"), ("EEG A2-A1", "A2-A1"), ("A2-A1", "A2-A1"),
        ("ECG ECG", "ECG ECG"),
    ],
)
def test_normalize_channel_name(raw, key):
    assert normalize_channel_name(raw) == key


def test_names_match_case_insensitively_and_through_decorations():
    spellings = ["Fp1", "FP1", "fp1", "EEG Fp1", "Fp1.", "EEG FP1-REF"]
    rows = np.concatenate([proportion_coordinates([name]) for name in spellings])  # one electrode: one at a time
    assert (rows == rows[0]).all()
    bci2000 = proportion_coordinates(["CZ", "Fc5.", "C3.."])
    assert np.array_equal(bci2000, proportion_coordinates(["Cz", "FC5", "C3"]))


def test_cb1_cb2_from_eeg2video_locs():
    c = {**coords(["CB1", "CB2", "Oz", "O1", "PO7", "Pz"]), **coords(["cb1"])}
    # EEG2Video's channel_62_pos.locs puts CB1/CB2 on the 10-20 ring (radius 0.511 like
    # Oz and O1) at azimuth -/+150 deg, between PO7 and O1: measured (30.0, 84.6), (70.0, 84.6).
    # So CB1/CB2 lie on the ring, in front of Oz (y 84.6 < 90), not below it.
    np.testing.assert_allclose(c["CB1"], (30.0, 50 + 40 * np.cos(np.radians(30))), atol=1e-3)
    assert c["CB1"][0] + c["CB2"][0] == pytest.approx(100) and c["CB1"][1] == c["CB2"][1]
    assert c["PO7"][0] < c["CB1"][0] < c["O1"][0] < 50 and c["CB1"][1] > c["Pz"][1] + 10
    assert np.hypot(*(c["CB1"] - 50)) == pytest.approx(40, abs=1e-3)
    assert np.array_equal(c["cb1"], c["CB1"])


def test_ear_and_mastoid_electrodes_resolve_lateral_and_symmetric():
    # Measured: A1 (-3.3, 52.3), A2 (103.8, 52.8), M1 (-1.8, 64.1), M2 (102.0, 65.0).
    c = coords(["A1", "A2", "M1", "M2", "T7", "T8"])
    for left, right in [("A1", "A2"), ("M1", "M2")]:
        assert c[left][0] < min(c["T7"][0], 10) and c[right][0] > max(c["T8"][0], 90)
        assert c[left][0] + c[right][0] == pytest.approx(100, abs=2)
        assert c[left][1] == pytest.approx(c[right][1], abs=1.5)
    assert c["M1"][1] > c["A1"][1] + 5  # mastoid behind the ear lobe


@pytest.mark.parametrize("names", [SEED_62, FACED_32], ids=["seed62", "faced32"])
def test_dataset_channel_lists_resolve(names):
    out = proportion_coordinates(names)
    assert out.shape == (len(names), 2) and out.dtype == np.float64 and np.isfinite(out).all()
    assert len(np.unique(out.round(6), axis=0)) == len(names)  # no two channels share a place
    c = dict(zip(names, out))
    assert c["FP1"][0] < 50 < c["FP2"][0] and c["OZ"][1] > c["PZ"][1] > c["CZ"][1] > c["FZ"][1]


def test_info_with_template_positions_equals_the_montage_path_exactly():
    info = mne.create_info(SEED_62, 200.0, "eeg")
    info.set_montage(STD, match_case=False, on_missing="ignore")  # CB1/CB2 keep no position
    assert np.array_equal(proportion_coordinates(info), proportion_coordinates(SEED_62))
    small = mne.create_info(["Cz", "T7", "Oz"], 200.0, "eeg").set_montage(STD)
    assert np.array_equal(proportion_coordinates(small), proportion_coordinates(["Cz", "T7", "Oz"]))


def test_info_with_its_own_cap_is_calibrated_on_that_cap():
    # a spherical cap (not the template): a sphere is fitted to its own positions
    cap = mne.channels.make_standard_montage("spherical_1005")
    info = mne.create_info(list(EXPECTED), 200.0, "eeg").set_montage(cap)
    expected = [EXPECTED[n] for n in info.ch_names]
    np.testing.assert_allclose(proportion_coordinates(info), expected, atol=1e-3)
    # three digitised channels, 1 mm off the template: too few to fit, so the template's frame
    few = mne.create_info(["Cz", "Oz", "T7"], 200.0, "eeg").set_montage(STD)
    for ch in few["chs"]:
        ch["loc"][:3] += 0.001
    moved, template = proportion_coordinates(few), proportion_coordinates(few.ch_names)
    assert not np.array_equal(moved, template)
    np.testing.assert_allclose(moved, template, atol=1.5)


def test_digmontage_and_none_as_montage():
    cap = mne.channels.make_standard_montage("spherical_1005")
    got = proportion_coordinates(list(EXPECTED), montage=cap)
    np.testing.assert_allclose(got, list(EXPECTED.values()), atol=1e-3)
    assert proportion_coordinates(["CB2"], montage=None)[0, 0] == pytest.approx(70)
    with pytest.raises(UnknownChannelError, match=r"(?s)'Cz'.*montage=None"):
        proportion_coordinates(["Cz"], montage=None)


def test_explicit_positions_win_and_are_validated():
    cz_head = mne.create_info(["Cz"], 1.0, "eeg").set_montage(STD)["chs"][0]["loc"][:3]
    positions = {"cz": (1.0, 2.0), "XTRA": tuple(cz_head), "Oz.": (3, 4), "unused": (0, 0)}
    got = proportion_coordinates(["Cz", "Xtra", "Fpz", "Oz"], positions=positions)
    np.testing.assert_array_equal(got[[0, 3]], [(1.0, 2.0), (3.0, 4.0)])
    np.testing.assert_allclose(got[1], (50, 50), atol=1e-9)  # 3-tuple: projected like Cz
    assert np.array_equal(got[2], proportion_coordinates(["Fpz"])[0])
    info = mne.create_info(["Cz"], 1.0, "eeg").set_montage(STD)
    assert proportion_coordinates(info, positions={"Cz": (7, 8)}).tolist() == [[7.0, 8.0]]
    for bad in [(1, 2, 3, 4), "abc", (np.nan, 1.0), None, 5.0]:
        with pytest.raises(ValueError, match=r"positions\['Cz'\] must be a 2-tuple .* 3-tuple"):
            proportion_coordinates(["Cz"], positions={"Cz": bad})
    with pytest.raises(ValueError, match="two keys for one channel: 'Cz' and 'CZ'"):
        proportion_coordinates(["Cz"], positions={"Cz": (1, 2), "CZ": (3, 4)})


def test_unknown_channel_error_names_channels_and_says_how_to_fix():
    match = r"(?s)'Czz'.*Did you mean 'Cz'.*positions=\{'Czz': \(x_p, y_p\)\}"
    with pytest.raises(UnknownChannelError, match=match) as e:
        proportion_coordinates(["Cz", "Czz"])
    assert isinstance(e.value, ValueError)
    for part in ["montage 'standard_1005'", "explicit positions", "3-tuple", "set_montage",
                 'raw.pick("eeg")']:
        assert part in str(e.value)
    match = r"(?s)2 channel\(s\).*'EEG A2-A1', 'ECG ECG'.*bipolar"
    with pytest.raises(UnknownChannelError, match=match):
        proportion_coordinates(["EEG Fp1", "EEG A2-A1", "ECG ECG"])
    info = mne.create_info(["Cz", "Bogus"], 1.0, "eeg")
    with pytest.raises(UnknownChannelError, match=r"(?s)'Bogus'.*digitised positions in the Info"):
        proportion_coordinates(info)


def test_bad_arguments():
    match = r"montage='standard_105' is not a built-in.*Did you mean 'standard_1005'"
    with pytest.raises(ValueError, match=match):
        proportion_coordinates(["Cz"], montage="standard_105")
    match = "montage must be a str, an mne.channels.DigMontage or None, got 3"
    with pytest.raises(TypeError, match=match):
        proportion_coordinates(["Cz"], montage=3)
    match = "channels must be a sequence of names or an mne.Info, got 'Cz'"
    with pytest.raises(TypeError, match=match):
        proportion_coordinates("Cz")
    match = r"pos must have shape \(N, 3\) in metres, got shape \(2,\)"
    with pytest.raises(ValueError, match=match):
        head_to_proportion([0.0, 1.0])


def test_head_to_proportion_matches_the_montage_path():
    info = mne.create_info(list(EXPECTED), 1.0, "eeg").set_montage(STD)
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    assert np.array_equal(head_to_proportion(pos), proportion_coordinates(list(EXPECTED)))
    assert head_to_proportion(pos[0]).shape == (2,)
    center = np.array([0.0, 0.0, 0.0])
    above = head_to_proportion(center + [0.0, 0.0, 0.09], center=center)
    assert above[0] == pytest.approx(50, abs=1)


def test_polar_to_proportion_matches_eeglab_standard_positions():
    # EEG2Video's channel_62_pos.locs rows (EEGLAB: theta 0 = nose, +90 = right ear,
    # radius = polar angle / 180 deg, 10-20 ring at 0.51111)
    locs = {
        "Cz": (90, 0), "Fpz": (0, 0.51111), "Fz": (0, 0.25556), "Pz": (180, 0.25556),
        "Oz": (180, 0.51111), "T7": (-90, 0.51111), "C3": (-90, 0.25556),
        "C4": (90, 0.25556), "T8": (90, 0.51111), "Fp1": (-18, 0.51111), "F8": (54, 0.51111),
    }
    got = polar_to_proportion(*np.array(list(locs.values())).T)
    ref = proportion_coordinates(list(locs))
    for name, g, r in zip(locs, got, ref):
        np.testing.assert_allclose(g, EXPECTED.get(name, g), atol=0.01, err_msg=name)
        if name != "F8":  # colin27's F8 sits 3 units in front of the ideal sphere's
            np.testing.assert_allclose(g, r, atol=2, err_msg=name)  # max 1.6 (Fp1)
    f8 = (50 + 40 * np.sin(np.radians(54)), 50 - 40 * np.cos(np.radians(54)))
    np.testing.assert_allclose(got[-1], f8, atol=0.01)
    assert polar_to_proportion(np.zeros((4, 3)), 0.25).shape == (4, 3, 2)


@pytest.mark.real_data
def test_eeglab_sample_digitised_positions(data_dir):
    raw = mne.io.read_raw_eeglab(data_dir / "eeglab" / "eeglab_data.set", verbose="error")
    raw.set_channel_types({"EOG1": "eog", "EOG2": "eog"})
    raw.pick("eeg")
    got = dict(zip(raw.ch_names, proportion_coordinates(raw.info)))
    # Measured (sphere fitted to the 30 digitised EEG positions, calibrated on this cap):
    # Cz (50.0, 50.0), FPz (50.0, 10.0), Fz (50.0, 30.0), Pz (50.0, 70.0), Oz (50.0, 90.0),
    # T7 (10.0, 50.0), C3 (30.0, 50.0), C4 (70.0, 50.0), T8 (90.0, 50.0), F3 (32.9, 29.6).
    for name, expected in EXPECTED.items():
        name = "FPz" if name == "Fpz" else name
        np.testing.assert_allclose(got[name], expected, atol=6, err_msg=name)
    # An independent route: the .set's own EEGLAB polar coordinates (max 1.7 apart, T7),
    # and the standard_1005 template for the same names (max 1.7 apart, PO8).
    mat = scipy.io.loadmat(
        data_dir / "eeglab" / "eeglab_data.set", squeeze_me=True, struct_as_record=False
    )
    chanlocs = mat["EEG"].chanlocs
    polar = {c.labels: polar_to_proportion(float(c.theta), float(c.radius)) for c in chanlocs}
    template = dict(zip(raw.ch_names, proportion_coordinates(raw.ch_names)))
    for name in raw.ch_names:
        np.testing.assert_allclose(got[name], polar[name], atol=2.5, err_msg=name)
        np.testing.assert_allclose(got[name], template[name], atol=2.5, err_msg=name)


@pytest.mark.real_data
def test_eegbci_bci2000_names_and_standardized_info(data_dir):
    path = data_dir / "eegbci/MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf"
    raw = mne.io.read_raw_edf(path, verbose="error")
    assert raw.ch_names[:2] == ["Fc5.", "Fc3."]
    from_names = proportion_coordinates(raw.ch_names)  # BCI2000 spelling, straight
    mne.datasets.eegbci.standardize(raw)
    raw.set_montage(STD)
    from_info = proportion_coordinates(raw.info)
    assert from_info.shape == (64, 2) and np.array_equal(from_names, from_info)
    c = dict(zip(raw.ch_names, from_info))
    assert c["C3"][0] < c["Cz"][0] < c["C4"][0] and c["Fpz"][1] < c["Cz"][1] < c["Oz"][1]
    np.testing.assert_allclose(c["Cz"], (50, 50), atol=1e-9)


@pytest.mark.real_data
def test_eegmat_bids_legacy_names(data_dir):
    eeg_dir = data_dir / "eegmat_bids" / "sub-02" / "eeg"
    raw = mne.io.read_raw_edf(eeg_dir / "sub-02_task-rest_eeg.edf", verbose="error")
    with pytest.raises(UnknownChannelError, match=r"'EEG A2-A1', 'ECG ECG'"):
        proportion_coordinates(raw.info)  # the EDF types every channel EEG
    tsv = (eeg_dir / "sub-02_task-rest_channels.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    types = {name: kind.lower() for name, kind, *_ in rows if kind != "EEG"}
    raw.set_channel_types(types, on_unit_change="ignore")
    raw.pick("eeg")
    got = dict(zip(raw.ch_names, proportion_coordinates(raw.info)))
    assert len(got) == 19
    legacy = proportion_coordinates(["EEG T3", "EEG T4", "EEG T5", "EEG T6"])
    assert np.array_equal(legacy, proportion_coordinates(["T7", "T8", "P7", "P8"]))
    np.testing.assert_allclose(got["EEG T3"], EXPECTED["T7"], atol=1.5)
    np.testing.assert_allclose(got["EEG Cz"], (50, 50), atol=1e-9)


def test_duplicate_channels_are_an_error_that_names_them():
    from eegfm.montage import DuplicateChannelError

    with pytest.raises(DuplicateChannelError, match=r"duplicate channels name the same electrode: 'Fz' and 'Fz'"):
        proportion_coordinates(["Fz", "Fz"])
    with pytest.raises(DuplicateChannelError, match=r"'Fz' and 'FZ'; 'Cz' and 'EEG Cz-REF'"):
        proportion_coordinates(["Fz", "FZ", "Cz", "EEG Cz-REF"])


def test_duplicate_labels_numbered_by_mne_are_named_as_duplicates():
    with pytest.raises(UnknownChannelError, match=r"'Fz-1' looks like a duplicate label 'FZ'"):
        proportion_coordinates(["Fz-0", "Fz-1", "Cz"])
