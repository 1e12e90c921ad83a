import logging
import pickle

import numpy as np
import pytest
import torch

from eegfm.data import RecordingCache, Recording, WindowDataset, collate_windows


def _entry(cache, name, n_chans, n_times, sfreq=200.0):
    rng = np.random.default_rng(n_chans * 1000 + n_times)
    data = rng.normal(0, 10, (n_chans, n_times)).astype(np.float32)
    positions = rng.uniform(0, 100, (n_chans, 2)).tolist()
    rec = Recording(data, [f"E{i}" for i in range(n_chans)], sfreq, name, {"positions": positions})
    return cache.get_or_create(name, {}, lambda: rec), data


@pytest.fixture
def entries(tmp_path):
    cache = RecordingCache(tmp_path)
    return [_entry(cache, "a", 3, 1000), _entry(cache, "b", 5, 450), _entry(cache, "short", 2, 100)]


def test_windows_index_every_start_and_read_the_right_samples(entries, caplog):
    with caplog.at_level(logging.WARNING, logger="eegfm.data"):
        ds = WindowDataset([e for e, _ in entries], window=200, stride=150)
    assert "1 recording(s) shorter than one window of 200 samples were skipped: short" in caplog.text
    assert ds.skipped_short == ["short"]
    # a: starts 0,150,...,750 (6 windows); b: 0, 150 (2 windows)
    assert len(ds) == 8
    assert [ds[i]["start"] for i in range(8)] == [0, 150, 300, 450, 600, 750, 0, 150]
    item = ds[7]
    assert item["entry"] == 1 and np.array_equal(item["x"], entries[1][1][:, 150:350])
    assert ds.n_channels().tolist() == [3] * 6 + [5] * 2
    assert ds.token_counts(patch_size=100).tolist() == [6] * 6 + [10] * 2


def test_pickled_dataset_carries_no_signal(entries):
    ds = WindowDataset([e for e, _ in entries], window=200)
    ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000
    assert np.array_equal(pickle.loads(blob)[3]["x"], ds[3]["x"])


def test_collate_pads_channels_and_time_with_masks(entries):
    ds = WindowDataset([e for e, _ in entries], window=200)
    items = [ds[0], ds[len(ds) - 1]]
    items.append({**ds[1], "x": ds[1]["x"][:, :120]})
    batch = collate_windows(items)
    assert batch.x.shape == (3, 5, 200)
    assert batch.channel_mask.sum(1).tolist() == [3, 5, 3]
    assert batch.n_times.tolist() == [200, 200, 120]
    assert torch.equal(batch.x[1], torch.from_numpy(np.array(items[1]["x"])))
    assert (batch.x[0, 3:] == 0).all() and (batch.x[2, :, 120:] == 0).all()
    assert batch.positions[0, 3:].isnan().all() and not batch.positions[1].isnan().any()


def test_errors(tmp_path, entries):
    cache = RecordingCache(tmp_path / "other")
    odd, _ = _entry(cache, "odd", 2, 500, sfreq=250.0)
    with pytest.raises(ValueError, match=r"different sampling rates \[200.0, 250.0\]"):
        WindowDataset([entries[0][0], odd], window=100)
    with pytest.raises(ValueError, match="window and stride must be positive"):
        WindowDataset([odd], window=0)
    with pytest.raises(ValueError, match="empty batch"):
        collate_windows([])
