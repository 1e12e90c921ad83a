"""The bundled real-EEG sample (eegfm/datasets/sample) and its loader."""

from __future__ import annotations

import hashlib
import io
import json
from importlib import resources
from pathlib import Path

import mne
import numpy as np
import pytest

from eegfm.datasets import list_sample_recordings, load_sample

REPO_ROOT = Path(__file__).resolve().parents[1]
from conftest import SHARED_DATA, load_script  # noqa: E402
NAMES = ["eegbci_S001R04", "eegmat_sub-02_rest", "eegmat_sub-02_arithmetic"]
# name -> (n_channels, sfreq, duration in s)
EXPECTED = {
    "eegbci_S001R04": (64, 160.0, 30.0),
    # planned at 20 s; shortened to 16 s to keep the sample under 1 MB (see its README)
    "eegmat_sub-02_rest": (19, 500.0, 16.0),
    "eegmat_sub-02_arithmetic": (19, 500.0, 16.0),
}
EEGMAT_CHANNELS = [
    "Fp1", "Fp2", "F3", "F4", "F7", "F8", "T3", "T4", "C3", "C4",
    "T5", "T6", "P3", "P4", "O1", "O2", "Fz", "Cz", "Pz",
]  # fmt: skip


def _sample_dir():
    return resources.files("eegfm.datasets").joinpath("sample")


def _manifest() -> dict:
    text = _sample_dir().joinpath("manifest.json").read_text(encoding="utf-8")
    return {rec["name"]: rec for rec in json.loads(text)["recordings"]}


def _npz(name: str) -> dict[str, np.ndarray]:
    blob = _sample_dir().joinpath(_manifest()[name]["file"]).read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"shared test data not found at {SHARED_DATA}; it must sit next to the repository "
            "(../shared/data) and is always present in CI"
        )
    return SHARED_DATA


@pytest.fixture(scope="module")
def raws() -> dict[str, mne.io.BaseRaw]:
    return dict(zip(NAMES, load_sample(verbose=False)))


def test_list_sample_recordings():
    assert list_sample_recordings() == NAMES
    assert list(_manifest()) == NAMES


def test_manifest_matches_files():
    manifest = _manifest()
    sample_dir = _sample_dir()  # a Traversable: also works from an installed wheel
    files = sorted(p.name for p in sample_dir.iterdir() if p.is_file())
    expected = sorted([rec["file"] for rec in manifest.values()] + ["manifest.json", "README.md"])
    assert files == expected
    for rec in manifest.values():
        path = sample_dir.joinpath(rec["file"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["npz_sha256"], rec["name"]
        arrays = _npz(rec["name"])
        assert set(arrays) == {"data", "scale", "ch_names", "sfreq"}
        assert arrays["data"].dtype == np.int16
        assert arrays["data"].shape == (rec["n_channels"], rec["n_times"])
        assert arrays["scale"].shape == (rec["n_channels"],)
        assert np.all(arrays["scale"] > 0)
        assert list(arrays["ch_names"]) == rec["ch_names"]
        assert float(arrays["sfreq"]) == rec["sfreq"]
        assert rec["licence"] == "ODC-By-1.0" and rec["citation"]
        assert len(rec["source_sha256"]) == 64
    total = sum(len(p.read_bytes()) for p in sample_dir.iterdir() if p.is_file())
    assert total < 1_000_000, f"sample is {total} B, over the 1 MB budget"
    readme = sample_dir.joinpath("README.md").read_text(encoding="utf-8")
    assert "ODC-By 1.0" in readme and "scripts/make_sample.py" in readme


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_types(raws, name):
    raw = raws[name]
    n_channels, sfreq, duration = EXPECTED[name]
    assert isinstance(raw, mne.io.RawArray)
    assert len(raw.ch_names) == n_channels
    assert raw.info["sfreq"] == sfreq
    assert raw.n_times == int(round(duration * sfreq))
    assert raw.n_times / raw.info["sfreq"] == pytest.approx(duration)
    assert set(raw.get_channel_types()) == {"eeg"}
    assert raw.get_montage() is None
    assert name in raw.info["description"]
    assert raw.info["subject_info"]["his_id"] == _manifest()[name]["subject"]


def test_channel_names(raws):
    eegbci = raws["eegbci_S001R04"].ch_names
    assert len(set(eegbci)) == 64
    assert {"FC5", "Fp1", "Cz", "Iz", "T10"} <= set(eegbci)
    assert not any(name.endswith(".") for name in eegbci)
    for name in ("eegmat_sub-02_rest", "eegmat_sub-02_arithmetic"):
        assert raws[name].ch_names == EEGMAT_CHANNELS  # legacy T3/T4/T5/T6 kept


@pytest.mark.parametrize("name", NAMES)
def test_real_eeg_scale(raws, name):
    data = raws[name].get_data()  # volts
    assert data.dtype == np.float64
    assert np.isfinite(data).all()
    std_uv = data.std(axis=1) * 1e6
    assert np.all((std_uv > 0.5) & (std_uv < 500)), std_uv


@pytest.mark.real_data
@pytest.mark.parametrize("name", NAMES)
def test_values_match_source_edf(raws, name):
    rec = _manifest()[name]
    src = _shared_data() / rec["source"]
    assert src.is_file(), f"source EDF missing: {src}"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == rec["source_sha256"]
    edf = mne.io.read_raw_edf(src, preload=False, verbose=False)
    if rec["dataset"] == "eegbci":
        mne.datasets.eegbci.standardize(edf)
        picks = rec["ch_names"]
    else:
        picks = [f"EEG {ch}" for ch in rec["ch_names"]]
    start = int(round(rec["excerpt_start_s"] * edf.info["sfreq"]))
    expected = edf.get_data(picks=picks, start=start, stop=start + rec["n_times"])
    raw = raws[name]
    assert edf.info["sfreq"] == raw.info["sfreq"]
    scale_v = _npz(name)["scale"][:, None] * 1e-6  # one quantisation step, volts
    err = np.abs(raw.get_data() - expected)
    assert np.all(err <= scale_v / 2 + 1e-12), (err / scale_v).max()


@pytest.mark.real_data
def test_eegbci_annotations_match_source(raws):
    rec = _manifest()["eegbci_S001R04"]
    raw = raws["eegbci_S001R04"]
    annot = raw.annotations
    assert list(annot.description) == [a["description"] for a in rec["annotations"]]
    assert set(annot.description) == {"T0", "T1", "T2"}
    assert len(annot) == 8  # onsets 0, 4.2, ..., 29.1 s
    assert np.all(annot.onset + annot.duration <= raw.times[-1] + 1 / raw.info["sfreq"] + 1e-9)
    edf = mne.io.read_raw_edf(_shared_data() / rec["source"], verbose=False)
    src = edf.annotations
    inside = src.onset < 30.0
    np.testing.assert_allclose(annot.onset, src.onset[inside], atol=1e-6)
    assert list(annot.description) == list(src.description[inside])
    np.testing.assert_allclose(annot.duration[:-1], src.duration[inside][:-1], atol=1e-6)
    assert annot.duration[-1] == pytest.approx(30.0 - annot.onset[-1])  # clipped at the end


@pytest.mark.parametrize(
    ("name", "label"),
    [("eegmat_sub-02_rest", "rest"), ("eegmat_sub-02_arithmetic", "arithmetic")],
)
def test_eegmat_label_annotation(raws, name, label):
    raw = raws[name]
    assert _manifest()[name]["label"] == label
    assert list(raw.annotations.description) == [label]
    assert raw.annotations.onset[0] == 0.0
    assert raw.annotations.duration[0] == pytest.approx(raw.n_times / raw.info["sfreq"])
    assert f"label={label}" in raw.info["description"]


def test_select_by_name_and_order():
    raws = load_sample(["eegmat_sub-02_arithmetic", "eegbci_S001R04"], verbose=False)
    assert [len(r.ch_names) for r in raws] == [19, 64]
    (one,) = load_sample("eegmat_sub-02_rest", verbose=False)
    assert one.info["sfreq"] == 500.0


def test_unknown_name():
    with pytest.raises(ValueError, match=r"'nope'.*available: eegbci_S001R04, eegmat_sub-02_rest"):
        load_sample(["eegbci_S001R04", "nope"])


def test_default_verbose_loads_without_warnings():
    # pytest turns warnings into errors (pyproject filterwarnings); MNE's own logging is fine.
    (raw,) = load_sample("eegbci_S001R04")
    assert raw.n_times == 4800


@pytest.mark.real_data
def test_regenerating_gives_the_same_sample(tmp_path):
    module = load_script("scripts/make_sample.py")
    assert module.main(["--shared-data", str(_shared_data()), "--out", str(tmp_path)]) == 0
    shipped = _manifest()
    fresh_list = json.loads((tmp_path / "manifest.json").read_text())["recordings"]
    fresh = {rec["name"]: rec for rec in fresh_list}
    assert list(fresh) == list(shipped)
    for name, rec in fresh.items():
        ignore = {"npz_sha256"}  # compressed bytes could differ with another zlib
        assert {k: v for k, v in rec.items() if k not in ignore} == {
            k: v for k, v in shipped[name].items() if k not in ignore
        }
        with np.load(tmp_path / rec["file"], allow_pickle=False) as npz:
            again = {key: npz[key] for key in npz.files}
        for key, value in _npz(name).items():
            np.testing.assert_array_equal(again[key], value, err_msg=f"{name}:{key}")
