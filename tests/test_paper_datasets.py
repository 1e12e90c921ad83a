"""Loaders of SEED-DV, SEED and FACED on small files written in the documented layouts."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import scipy.io

import eegfm
from eegfm.datasets.paper import (
    FACED_CHANNELS,
    SEED_CHANNELS,
    SEED_DV_BLOCK_SAMPLES,
    UnsafePickleError,
    load_faced,
    load_seed,
    load_seed_dv,
    seed_dv_clip_onset,
    seed_dv_clips,
)

SHAPE = (7, 62, 104000)


def _ramp(block):
    """Channel-0 code of every sample of ``block`` (0-based): exact in float32."""
    return block * 1e6 + np.arange(SHAPE[2], dtype=np.float64)


def _write_seed_dv_file(path):
    """A real-shape (7, 62, 104000) float32 file, sparse on disk: only two channels written."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=SHAPE)
    for b in range(7):
        arr[b, 0] = _ramp(b)
        arr[b, 61] = -(b + 1)
    arr.flush()
    del arr


@pytest.fixture(scope="module")
def seed_dv(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed_dv")
    (root / "EEG").mkdir()
    (root / "meta_info").mkdir()
    _write_seed_dv_file(root / "EEG" / "sub1.npy")
    _write_seed_dv_file(root / "EEG" / "sub2_session2.npy")
    rng = np.random.default_rng(0)
    labels = np.stack([rng.permutation(40) + 1 for _ in range(7)])  # 1-based, as released
    np.save(root / "meta_info" / "All_video_label.npy", labels)
    return root, labels


def test_constants():
    assert len(SEED_CHANNELS) == 62 and len(set(SEED_CHANNELS)) == 62
    assert SEED_CHANNELS[57] == "CB1" and SEED_CHANNELS[-1] == "CB2"
    assert len(FACED_CHANNELS) == 32 and len(set(FACED_CHANNELS)) == 32
    assert SEED_DV_BLOCK_SAMPLES == 104000
    assert "assumption" in load_faced.__doc__ and "no channel" in load_faced.__doc__


@pytest.mark.parametrize("names", [SEED_CHANNELS, FACED_CHANNELS])
def test_default_channels_have_positions(names):
    xy = eegfm.proportion_coordinates(names)
    assert xy.shape == (len(names), 2) and np.isfinite(xy).all()


def test_seed_dv_blocks(seed_dv):
    root, _ = seed_dv
    recs = list(load_seed_dv(root, unit_scale=2.0))
    assert len(recs) == 14
    r = recs[8]
    assert r.data.shape == (62, 104000) and r.data.dtype == np.float32
    assert r.sfreq == 200.0 and r.ch_names == SEED_CHANNELS
    assert r.metadata == {"dataset": "SEED-DV", "subject": 2, "session": 2, "block": 2, "split": "train"}
    assert r.source.endswith("sub2_session2.npy#block2")
    np.testing.assert_array_equal(r.data[0], 2 * _ramp(1))
    assert recs[6].metadata["split"] == "test" and recs[0].metadata["session"] == 1
    assert [r.metadata["subject"] for r in load_seed_dv(root, subjects=[1])] == [1] * 7


def test_seed_dv_clip_onsets():
    assert seed_dv_clip_onset(0, 0) == 600
    assert seed_dv_clip_onset(0, 4) == (3 + 8) * 200
    assert seed_dv_clip_onset(39, 4) + 400 == 104000
    with pytest.raises(ValueError, match="slot must be"):
        seed_dv_clip_onset(40, 0)


def test_seed_dv_clips_alignment_and_labels(seed_dv):
    root, labels = seed_dv
    clips = list(seed_dv_clips(root, subjects=[1]))
    assert len(clips) == 1400
    for c in clips:
        assert c.data.shape == (62, 400) and c.data.dtype == np.float32
        start = (13 * c.slot + 3 + 2 * c.clip) * 200  # independent arithmetic
        np.testing.assert_array_equal(c.data[0], _ramp(c.block - 1)[start:start + 400])
        assert (c.data[61] == -c.block).all()
        assert c.label == labels[c.block - 1, c.slot] and c.concept == c.label - 1
        assert c.split == ("test" if c.block == 7 else "train")
    assert [(c.block, c.slot, c.clip) for c in clips[:6]] == [(1, 0, i) for i in range(5)] + [(1, 1, 0)]
    assert {c.concept for c in clips if c.block == 3} == set(range(40))


def test_seed_dv_split_filter(seed_dv):
    root, _ = seed_dv
    test = list(seed_dv_clips(root, split="test"))
    assert len(test) == 400 and {c.block for c in test} == {7}  # 200 per subject and session
    train = list(seed_dv_clips(root, subjects=[2], split="train"))
    assert len(train) == 1200 and {c.block for c in train} == set(range(1, 7))
    assert {(c.subject, c.session) for c in train} == {(2, 2)}
    with pytest.raises(ValueError, match="split must be"):
        seed_dv_clips(root, split="val")


def test_seed_dv_zero_based_labels(seed_dv, tmp_path):
    root, _ = seed_dv
    (tmp_path / "meta_info").mkdir()
    os.symlink(root / "EEG", tmp_path / "EEG")
    labels = np.tile(np.arange(40), (7, 1))
    np.save(tmp_path / "meta_info" / "All_video_label.npy", labels)
    c = next(iter(seed_dv_clips(tmp_path, subjects=[1])))
    assert c.label == 0 and c.concept == 0
    np.save(tmp_path / "meta_info" / "All_video_label.npy", labels[:6])
    with pytest.raises(ValueError, match=r"All_video_label.npy: shape \(6, 40\), expected \(7, 40\)"):
        seed_dv_clips(tmp_path)


def test_seed_dv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected layout: root/EEG"):
        load_seed_dv(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"EEG does not exist; expected layout"):
        load_seed_dv(tmp_path)
    (tmp_path / "EEG").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no files matching .*EEG.sub\*\.npy"):
        load_seed_dv(tmp_path)
    with pytest.raises(FileNotFoundError, match="meta_info"):
        seed_dv_clips(tmp_path)
    np.save(tmp_path / "EEG" / "sub1.npy", np.zeros((7, 62, 100), np.float32))
    with pytest.raises(FileNotFoundError, match=r"for subjects \[5\]"):
        load_seed_dv(tmp_path, subjects=[5])
    with pytest.raises(ValueError, match="ch_names has 3 names for 62 channels"):
        load_seed_dv(tmp_path, ch_names=["A", "B", "C"])
    with pytest.raises(ValueError, match=r"sub1.npy: shape \(7, 62, 100\), expected \(7, 62, 104000\)"):
        _load_all(load_seed_dv(tmp_path))
    path = tmp_path / "EEG" / "sub1.npy"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(ValueError, match="sub1.npy: cannot read"):
        _load_all(load_seed_dv(tmp_path))
    path.write_bytes(b"garbage" * 20)
    with pytest.raises(ValueError, match="sub1.npy: cannot read"):
        _load_all(load_seed_dv(tmp_path))


def _write_seed(root, prefix="abc", subject=1, date="20131027", n_times=50, label=True):
    folder = root / "Preprocessed_EEG"
    folder.mkdir(exist_ok=True)
    trials = {f"{prefix}_eeg{t}": np.full((62, n_times + t), t, np.float64) for t in range(1, 16)}
    trials["extra_info"] = np.zeros(1)  # a non-trial key is ignored
    scipy.io.savemat(folder / f"{subject}_{date}.mat", trials)
    if label:
        scipy.io.savemat(folder / "label.mat", {"label": np.array([[1, 0, -1] * 5])})
    return folder


def test_seed(tmp_path):
    _write_seed(tmp_path)
    _write_seed(tmp_path, "djc", subject=1, date="20131030")
    _write_seed(tmp_path, "xyz", subject=2, date="20140101")
    recs = list(load_seed(tmp_path))
    assert len(recs) == 45
    r = recs[16]
    assert r.data.shape == (62, 52) and r.data.dtype == np.float32 and (r.data == 2).all()
    assert r.sfreq == 200.0 and r.ch_names == SEED_CHANNELS and r.source.endswith("1_20131030.mat#trial2")
    assert r.metadata == {"dataset": "SEED", "subject": 1, "session": 2, "date": "20131030",
                          "trial": 2, "label": 0, "emotion": "neutral"}
    two = list(load_seed(tmp_path, subjects=[2], unit_scale=0.5))
    assert len(two) == 15 and two[0].metadata["session"] == 1 and (two[0].data == 0.5).all()
    assert two[2].metadata["label"] == -1 and two[2].metadata["emotion"] == "negative"


def test_seed_without_labels_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Preprocessed_EEG does not exist"):
        load_seed(tmp_path)
    (tmp_path / "Preprocessed_EEG").mkdir()
    scipy.io.savemat(tmp_path / "Preprocessed_EEG" / "label.mat", {"label": np.zeros((1, 15))})
    with pytest.raises(FileNotFoundError, match=r"no files matching .*Preprocessed_EEG.\*\.mat"):
        load_seed(tmp_path)
    (tmp_path / "Preprocessed_EEG" / "label.mat").unlink()
    folder = _write_seed(tmp_path, label=False)
    assert "label" not in next(iter(load_seed(tmp_path))).metadata
    with pytest.raises(ValueError, match="ch_names has 61 names for 62 channels"):
        load_seed(tmp_path, ch_names=SEED_CHANNELS[:-1])
    scipy.io.savemat(folder / "1_20131027.mat", {f"a_eeg{t}": np.zeros((62, 5)) for t in range(1, 15)})
    with pytest.raises(ValueError, match=r"1_20131027.mat: expected keys <prefix>_eeg1..<prefix>_eeg15"):
        _load_all(load_seed(tmp_path))
    scipy.io.savemat(folder / "1_20131027.mat", {f"a_eeg{t}": np.zeros((60, 5)) for t in range(1, 16)})
    with pytest.raises(ValueError, match=r"1_20131027.mat: a_eeg1 has shape \(60, 5\), expected \(62, T\)"):
        _load_all(load_seed(tmp_path))
    (folder / "1_20131027.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(ValueError, match="1_20131027.mat: cannot read"):
        _load_all(load_seed(tmp_path))


def _write_faced(root, subject, x):
    folder = root / "Processed_data"
    folder.mkdir(exist_ok=True)
    with open(folder / f"sub{subject:03d}.pkl", "wb") as f:
        pickle.dump(x, f)


def test_faced(tmp_path):
    x = np.arange(28 * 32 * 100, dtype=np.float64).reshape(28, 32, 100)
    _write_faced(tmp_path, 0, x)
    _write_faced(tmp_path, 122, x[:, :, :10].astype(np.float32))
    recs = list(load_faced(tmp_path))
    assert len(recs) == 56
    r = recs[3]
    assert r.data.shape == (32, 100) and r.data.dtype == np.float32 and r.sfreq == 250.0
    np.testing.assert_array_equal(r.data, x[3].astype(np.float32))
    assert r.metadata == {"dataset": "FACED", "subject": 0, "trial": 4}
    assert r.ch_names == FACED_CHANNELS and r.source.endswith("sub000.pkl#trial4")
    last = list(load_faced(tmp_path, subjects=[122], ch_names=[f"E{i}" for i in range(32)], unit_scale=1e6))
    assert len(last) == 28 and last[0].metadata["subject"] == 122 and last[0].ch_names[0] == "E0"
    assert last[0].data[0, 1] == np.float32(1e6)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_faced_refuses_malicious_pickle(tmp_path):
    _write_faced(tmp_path, 1, _Evil())
    with pytest.raises(UnsafePickleError, match=r"sub001.pkl: refused to load global (posix|nt|os)\.system"):
        _load_all(load_faced(tmp_path))


def test_faced_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Processed_data does not exist"):
        load_faced(tmp_path)
    (tmp_path / "Processed_data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no files matching .*sub\*\.pkl"):
        load_faced(tmp_path)
    _write_faced(tmp_path, 3, np.zeros((27, 32, 10)))
    with pytest.raises(ValueError, match=r"sub003.pkl: shape \(27, 32, 10\), expected \(28, 32, 7500\)"):
        _load_all(load_faced(tmp_path))
    _write_faced(tmp_path, 3, np.zeros((28, 30, 10)))
    with pytest.raises(ValueError, match="sub003.pkl: ch_names has 32 names for 30 channels"):
        _load_all(load_faced(tmp_path))
    _write_faced(tmp_path, 3, [1, 2])
    with pytest.raises(ValueError, match="sub003.pkl: expected a numpy array, got list"):
        _load_all(load_faced(tmp_path))
    data = pickle.dumps(np.zeros((28, 32, 10)))
    (tmp_path / "Processed_data" / "sub003.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="sub003.pkl: cannot read"):
        _load_all(load_faced(tmp_path))
    with pytest.raises(ValueError, match="ch_names has duplicates"):
        load_faced(tmp_path, ch_names=["A"] * 32)


def _load_all(items):
    """What a corpus does with each item: keep a Recording, call a source's load() (which raises
    for a file that cannot be read: the corpus skips and counts it)."""
    from eegfm.data import RecordingSource

    return [item.load() if isinstance(item, RecordingSource) else item for item in items]


def test_a_corrupt_file_is_skipped_and_counted_not_fatal(tmp_path):
    from eegfm.data import EEGCorpus

    x = np.random.default_rng(0).standard_normal((28, 32, 500)) * 20
    _write_faced(tmp_path, 1, x)
    _write_faced(tmp_path, 2, x)
    data = (tmp_path / "Processed_data" / "sub002.pkl").read_bytes()
    (tmp_path / "Processed_data" / "sub002.pkl").write_bytes(data[: len(data) // 2])
    _write_faced(tmp_path, 3, _Evil())
    corpus = EEGCorpus(load_faced(tmp_path), tmp_path / "cache", progress=False)
    assert len(corpus) == 28  # subject 1's trials
    reasons = dict(corpus.skipped)
    assert len(reasons) == 2
    assert "cannot read" in next(v for k, v in reasons.items() if k.endswith("sub002.pkl"))
    assert "refused to load global" in next(v for k, v in reasons.items() if k.endswith("sub003.pkl"))


def test_the_loaders_are_in_eegfm_datasets_and_the_old_path_still_reads_them(monkeypatch):
    import importlib
    import sys

    import eegfm.datasets

    assert eegfm.datasets.seed_dv_clips is seed_dv_clips and eegfm.datasets.load_faced is load_faced
    monkeypatch.delitem(sys.modules, "eegfm.data.paper_datasets", raising=False)
    with pytest.warns(DeprecationWarning, match=r"eegfm\.data\.paper_datasets moved to eegfm\.datasets\.paper"):
        old = importlib.import_module("eegfm.data.paper_datasets")
    assert old.seed_dv_clips is seed_dv_clips and old.SEED_DV_BLOCK_SAMPLES == SEED_DV_BLOCK_SAMPLES
