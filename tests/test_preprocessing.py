"""Tests for eegfm.data.preprocessing."""

import logging

import mne
import numpy as np
import pytest

from eegfm.data.preprocessing import PREPROCESS_VERSION, PreprocessConfig, PreprocessError, preprocess
from eegfm.data.recording import Recording
from eegfm.montage import UnknownChannelError

CHANNELS = ["Fz", "Cz", "Pz", "C3", "C4", "O1"]


def _synthetic(n_seconds=60.0, sfreq=250.0, offset_uv=0.0, source="synthetic.edf", seed=0):
    """Six channels: 10 Hz sine (20 µV) + white noise (µV), plus a DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(n_seconds * sfreq)) / sfreq
    data = 20 * np.sin(2 * np.pi * 10 * t) + rng.normal(0, 2, (len(CHANNELS), len(t))) + offset_uv
    return Recording(data.astype(np.float32), list(CHANNELS), sfreq, source, {"subject": 7})


def _amplitude(x, sfreq, freq):
    """Amplitude of a sine at ``freq`` in each row of x (C, T)."""
    t = np.arange(x.shape[1]) / sfreq
    ref = np.exp(-2j * np.pi * freq * t)
    return 2 * np.abs(x @ ref) / x.shape[1]


# ---------------------------------------------------------------------------- real data


def test_eeglab_sample(shared_data):
    raw = mne.io.read_raw_eeglab(shared_data / "eeglab" / "eeglab_data.set", preload=False, verbose=False)
    raw.set_channel_types({"EOG1": "eog", "EOG2": "eog"})
    rec = preprocess(raw)
    assert rec.sfreq == 200.0
    assert rec.data.dtype == np.float32
    assert len(rec.ch_names) == 30 and "EOG1" not in rec.ch_names and "EOG2" not in rec.ch_names
    assert rec.data.shape == (30, round(30504 * 200 / 128))
    std = rec.data.std(axis=1)
    assert np.all((std > 1) & (std < 500)), std  # µV, not volts
    pos = np.asarray(rec.metadata["positions"])
    assert pos.shape == (30, 2) and np.isfinite(pos).all()
    np.testing.assert_allclose(pos[rec.ch_names.index("Cz")], [50, 50], atol=3)
    assert rec.metadata["source_sfreq"] == 128.0
    assert rec.metadata["preprocess"] == PreprocessConfig().to_dict()
    assert rec.metadata["preprocess_hash"] == PreprocessConfig().hash()
    assert rec.metadata["dropped_channels"] == []
    assert "eeglab_data" in rec.source
    assert raw.ch_names[1] == "EOG1" and not raw.preload  # input untouched


def test_eegbci_edf(shared_data):
    path = shared_data / "eegbci/MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf"
    raw = mne.io.read_raw_edf(path, preload=False, verbose=False)
    mne.datasets.eegbci.standardize(raw)
    rec = preprocess(raw, PreprocessConfig(notch_freq=60.0))
    assert rec.sfreq == 200.0 and rec.data.shape == (64, 25000)
    assert rec.source == str(path)
    pos = np.asarray(rec.metadata["positions"])
    assert pos.shape == (64, 2)
    np.testing.assert_allclose(pos[rec.ch_names.index("T7")], [10, 50], atol=3)
    std = rec.data.std(axis=1)
    assert np.all((std > 1) & (std < 500)), std
    # 60 Hz line noise is notched (160 Hz source: only the fundamental is below Nyquist)
    amp = _amplitude(rec.data.astype(np.float64), 200.0, 60.0)
    assert amp.max() < 0.5


# ------------------------------------------------------------------------------ filters


def test_bandpass_removes_dc_and_out_of_band_sine():
    rec = _synthetic(offset_uv=500.0)
    t = np.arange(rec.n_times) / rec.sfreq
    rec.data += (30 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)  # above 75 Hz
    out = preprocess(rec, PreprocessConfig(l_freq=1.0, h_freq=40.0))
    x = out.data.astype(np.float64)
    core = x[:, 1000:-1000]  # away from the edges
    assert np.abs(core.mean(axis=1)).max() < 1.0  # the 500 µV offset is gone
    assert _amplitude(x, 200.0, 10.0).min() > 18  # in band: kept
    assert out.data.shape == (6, 12000)
    assert out.metadata["subject"] == 7 and out.metadata["source_sfreq"] == 250.0
    # the input is unchanged and a Recording in µV comes back in µV
    assert abs(float(rec.data.mean()) - 500) < 1


def test_lowpass_above_source_nyquist_is_skipped():
    rec = _synthetic(sfreq=128.0)
    out = preprocess(rec)  # h_freq=75 >= 64 Hz: nothing there to remove
    assert out.metadata["filter"] == {"l_freq": 0.1, "h_freq": None}
    assert out.data.shape == (6, 12000)


def test_same_rate_skips_resampling():
    rec = _synthetic(sfreq=200.0)
    out = preprocess(rec, PreprocessConfig(l_freq=None, h_freq=None))
    np.testing.assert_allclose(out.data, rec.data, atol=1e-3)


# ------------------------------------------------------------------------ data problems


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_names_channels(value):
    rec = _synthetic(source="bad/file.edf")
    rec.data[1, 10:13] = value
    rec.data[4, 0] = value
    with pytest.raises(PreprocessError, match=r"bad/file\.edf.*2 channel.*'Cz' \(3 of 15000 samples\).*'C4' \(1 of"):
        preprocess(rec)


def test_flat_channel_dropped_with_warning(caplog):
    rec = _synthetic(source="flat.edf")
    rec.data[2] = 3.0  # constant: flat after the high-pass
    with caplog.at_level(logging.WARNING, logger="eegfm.data"):
        out = preprocess(rec)
    assert out.ch_names == ["Fz", "Cz", "C3", "C4", "O1"]
    assert out.metadata["dropped_channels"] == ["Pz"]
    assert len(out.metadata["positions"]) == 5
    msgs = [r.getMessage() for r in caplog.records if r.name == "eegfm.data"]
    assert any("flat.edf" in m and "1 flat channel" in m and "Pz" in m for m in msgs), msgs


def test_too_many_flat_channels():
    rec = _synthetic(source="dead.edf")
    rec.data[:4] = 0.0
    with pytest.raises(PreprocessError, match=r"dead\.edf: 4 of 6 channels are flat.*max_bad_channel_fraction=0\.5"):
        preprocess(rec)
    out = preprocess(rec, PreprocessConfig(max_bad_channel_fraction=0.7))
    assert out.ch_names == ["C4", "O1"]


def test_unknown_channel_names_source():
    rec = _synthetic(source="/data/odd_cap.edf")
    rec.ch_names[5] = "XYZ9"
    with pytest.raises(UnknownChannelError, match=r"^/data/odd_cap\.edf: .*'XYZ9'"):
        preprocess(rec)
    out = preprocess(rec, positions={"XYZ9": (50.0, 95.0)})
    assert out.metadata["positions"][5] == [50.0, 95.0]


def test_no_warning_escapes_for_short_signal(caplog):
    rec = _synthetic(n_seconds=5.0)  # shorter than the 0.1 Hz high-pass filter
    with caplog.at_level(logging.WARNING, logger="eegfm.data"):
        out = preprocess(rec)  # warnings are errors in this suite
    assert out.data.shape == (6, 1000)
    assert any("synthetic.edf" in r.getMessage() and "filter" in r.getMessage() for r in caplog.records)


def test_bad_inputs():
    with pytest.raises(TypeError, match="source must be an mne.io.BaseRaw or a Recording"):
        preprocess(np.zeros((2, 100)))
    with pytest.raises(TypeError, match="config must be a PreprocessConfig"):
        preprocess(_synthetic(), {"sfreq": 200})


# ------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sfreq": 0}, r"sfreq must be > 0 Hz, got 0\.0"),
        ({"h_freq": 100.0}, r"h_freq must be None or in \(0, sfreq/2 = 100\) Hz \(sfreq=200\), got 100\.0"),
        ({"l_freq": -1.0}, r"l_freq must be None or in \(0, sfreq/2 = 100\) Hz, got -1\.0"),
        ({"l_freq": 50.0, "h_freq": 40.0}, r"l_freq must be < h_freq, got l_freq=50\.0 and h_freq=40\.0"),
        ({"notch_freq": -50.0}, r"notch_freq must be None or > 0 Hz"),
        ({"units": "V"}, r"units must be one of \('uV',\), got 'V'"),
        ({"flat_threshold_uv": -1.0}, r"flat_threshold_uv must be >= 0"),
        ({"max_bad_channel_fraction": 1.5}, r"max_bad_channel_fraction must be in \[0, 1\], got 1\.5"),
        ({"l_freq": float("nan")}, r"l_freq must be finite"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PreprocessConfig(**kwargs)


def test_config_types():
    with pytest.raises(TypeError, match=r"sfreq must be a number, got '200'"):
        PreprocessConfig(sfreq="200")
    with pytest.raises(TypeError, match=r"picks must be a non-empty str"):
        PreprocessConfig(picks=None)
    assert PreprocessConfig(units="µV").units == "uV"


def test_config_dict_round_trip_and_unknown_key():
    cfg = PreprocessConfig(sfreq=256, notch_freq=50)
    d = cfg.to_dict()
    assert d["sfreq"] == 256.0 and isinstance(d["sfreq"], float)
    assert PreprocessConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match=r"unknown PreprocessConfig key\(s\): 'h_frq' \(did you mean 'h_freq'\?\)"):
        PreprocessConfig.from_dict({**d, "h_frq": 40})


def test_config_hash_stable_and_sensitive():
    a = PreprocessConfig()
    assert a.hash() == PreprocessConfig().hash() == PreprocessConfig(sfreq=200).hash()
    assert len(a.hash()) == 16 and int(a.hash(), 16) >= 0
    assert a.hash() != PreprocessConfig(notch_freq=50.0).hash()
    assert a.hash() != PreprocessConfig(h_freq=40.0).hash()
    assert isinstance(PREPROCESS_VERSION, int)


def test_config_hash_includes_version(monkeypatch):
    import eegfm.data.preprocessing as pp

    before = PreprocessConfig().hash()
    monkeypatch.setattr(pp, "PREPROCESS_VERSION", pp.PREPROCESS_VERSION + 1)
    assert PreprocessConfig().hash() != before
