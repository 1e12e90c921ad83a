"""LabeledEEG: constructors (arrays, mne.Epochs, a cached corpus), splits, batches, channel drop."""

import mne
import numpy as np
import pytest
import torch

from eegfm import proportion_coordinates
from eegfm.data import EEGCorpus
from eegfm.data.sources import from_raw
from eegfm.datasets import load_sample
from eegfm.finetune import LabeledEEG

NAMES = ["Fz", "Cz", "Pz", "Oz"]


def _arrays(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 100)).astype(np.float32), np.arange(n) % 2


def test_from_arrays_scales_and_resolves_positions():
    X, y = _arrays()
    data = LabeledEEG.from_arrays(X * 1e-6, y, NAMES, sfreq=200.0, scale=1e6, groups=np.arange(10) // 5)
    assert len(data) == 10 and data.n_classes == 2 and data.sfreq == 200.0
    item = data[3]
    np.testing.assert_allclose(item["x"], X[3], rtol=1e-5)
    np.testing.assert_allclose(item["positions"], proportion_coordinates(NAMES), rtol=1e-6)
    assert item["label"] == 1 and item["group"] == 0


def test_bad_inputs_are_named():
    X, y = _arrays()
    with pytest.raises(ValueError, match=r"X must be \(examples, channels, times\)"):
        LabeledEEG.from_arrays(X[0], y, NAMES, sfreq=200.0)
    with pytest.raises(ValueError, match="3 ch_names for X with 4 channels"):
        LabeledEEG.from_arrays(X, y, NAMES[:3], sfreq=200.0)
    with pytest.raises(ValueError, match="labels has 9 entries for 10 examples"):
        LabeledEEG.from_arrays(X, y[:9], NAMES, sfreq=200.0)
    with pytest.raises(ValueError, match="labels must be integer classes or finite floats"):
        LabeledEEG.from_arrays(X, np.full(10, np.nan), NAMES, sfreq=200.0)
    with pytest.raises(ValueError, match=r"example 0: signal must be \(C, T\) with positions \(C, 2\)"):
        LabeledEEG([X[0]], [np.zeros((3, 2))], [0], sfreq=200.0)


def test_split_by_group_and_deterministic_shuffled_batches():
    X, y = _arrays(12)
    data = LabeledEEG.from_arrays(X, y, NAMES, sfreq=200.0, groups=[f"s{i // 4}" for i in range(12)])
    train, test = data.split_by_group(["s2"])
    assert len(train) == 8 and len(test) == 4 and set(test.groups) == {"s2"}
    with pytest.raises(ValueError, match=r"none of test_groups=\['s9'\] is in the data's groups"):
        data.split_by_group(["s9"])
    first = [b.labels.tolist() for b in data.batches(5, shuffle=True, seed=1, epoch=0)]
    again = [b.labels.tolist() for b in data.batches(5, shuffle=True, seed=1, epoch=0)]
    other = [b.labels.tolist() for b in data.batches(5, shuffle=True, seed=1, epoch=1)]
    assert first == again and first != other and [len(b) for b in first] == [5, 5, 2]
    assert len(list(data.batches(5, drop_last=True))) == 2
    resumed = [b.labels.tolist() for b in data.batches(5, shuffle=True, seed=1, epoch=0, start=1)]
    assert resumed == first[1:]
    halves = [[b.labels.tolist() for b in data.batches(5, shuffle=True, seed=1, rank=r, world_size=2)] for r in (0, 1)]
    assert [a + b for a, b in zip(*halves)] != [] and [len(a) + len(b) for a, b in zip(*halves)] == [5, 5, 2]
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\), got rank=2, world_size=2"):
        next(data.batches(5, rank=2, world_size=2))
    eeg, labels = data.batch([0, 1])
    torch.testing.assert_close(eeg.x, torch.from_numpy(X[:2]))


def test_drop_channels_keeps_the_right_fraction_with_matching_positions():
    X = np.arange(10 * 10 * 50, dtype=np.float32).reshape(10, 10, 50)
    names = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"]
    data = LabeledEEG.from_arrays(X, np.zeros(10, int), names, sfreq=200.0)
    full = proportion_coordinates(names)
    for frac, kept in [(0.3, 7), (0.5, 5)]:
        impaired = data.drop_channels(frac, seed=0)
        for i in range(10):
            sig, pos = impaired.signals[i], impaired.positions[i]
            assert sig.shape == (kept, 50)
            rows = (sig[:, 0] - X[i, 0, 0]) / 50  # which original channel each row is
            np.testing.assert_allclose(pos, full[rows.astype(int)], rtol=1e-6)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\), got fraction=1.0"):
        data.drop_channels(1.0)


def test_from_epochs_uses_event_ids_and_microvolts():
    info = mne.create_info(NAMES, 200.0, "eeg")
    X, _ = _arrays(6)
    events = np.column_stack([np.arange(6) * 200, np.zeros(6, int), [3, 7, 3, 7, 7, 3]])
    epochs = mne.EpochsArray(X * 1e-6, info, events=events, event_id={"left": 3, "right": 7}, verbose="error")
    data = LabeledEEG.from_epochs(epochs)
    assert data.classes == ["left", "right"] and data.labels.tolist() == [0, 1, 0, 1, 1, 0]
    np.testing.assert_allclose(data[1]["x"], X[1], rtol=1e-4)


def test_from_corpus_labels_windows_from_recording_metadata(tmp_path):
    sources = [from_raw(raw, key=f"sample:{task}", metadata={"task": task, "subject": "02"})
               for raw, task in zip(load_sample(["eegmat_sub-02_rest", "eegmat_sub-02_arithmetic"], verbose=False),
                                    ["rest", "arithmetic"])]
    corpus = EEGCorpus(sources, tmp_path / "cache", progress=False)
    data = LabeledEEG.from_corpus(corpus, 4.0, "task", classes=["rest", "arithmetic"])
    assert len(data) == 8 and data.labels.tolist() == [0] * 4 + [1] * 4
    assert data.classes == ["rest", "arithmetic"] and set(data.groups) == {"02"}
    assert data[0]["x"].shape == (19, 800) and data.sfreq == 200.0
    with pytest.raises(ValueError, match=r"labels \['arithmetic'\] are not in classes=\['rest'\]"):
        LabeledEEG.from_corpus(corpus, 4.0, "task", classes=["rest"])
    with pytest.raises(ValueError, match="no label 'condition' in the metadata of 2 recording"):
        LabeledEEG.from_corpus(corpus, 4.0, "condition")
