import numpy as np
import pytest
import torch

from eegfm.data import RecordingCache, Recording, TokenBucketBatchSampler, WindowDataset, WindowLoader


@pytest.fixture
def windows(tmp_path):
    cache = RecordingCache(tmp_path)
    entries = []
    for n_chans, n_times in [(4, 3000), (7, 2000), (2, 1500)]:
        data = np.random.default_rng(n_chans).normal(0, 10, (n_chans, n_times)).astype(np.float32)
        pos = np.random.default_rng(n_times).uniform(0, 100, (n_chans, 2)).tolist()
        rec = Recording(data, [f"E{i}" for i in range(n_chans)], 200.0, f"r{n_chans}", {"positions": pos})
        entries.append(cache.get_or_create(f"r{n_chans}", {}, lambda rec=rec: rec))
    return WindowDataset(entries, window=200, stride=100)


def test_batches_equal_the_dataset_windows(windows):
    sampler = TokenBucketBatchSampler(windows.token_counts(50), 8, seed=0)
    loader = WindowLoader(windows, sampler, num_threads=2, prefetch=1)
    seen = 0
    for batch, indices in zip(loader, list(sampler)):
        assert batch.x.is_contiguous() and batch.x.shape[0] == len(indices)
        for row, i in enumerate(indices):
            item = windows[i]
            c = item["x"].shape[0]
            assert np.array_equal(batch.x[row, :c].numpy(), item["x"])
            assert (batch.x[row, c:] == 0).all() and bool(batch.channel_mask[row, :c].all())
            assert np.array_equal(batch.positions[row, :c].numpy(), item["positions"])
        seen += len(indices)
    assert seen == len(windows) and len(loader) == len(sampler)


def test_a_batch_stays_valid_while_the_next_one_is_fetched(windows):
    sampler = TokenBucketBatchSampler(windows.token_counts(50), 4, shuffle=False, pool_batches=1)
    loader = WindowLoader(windows, sampler, num_threads=2, prefetch=2)
    it = iter(loader)
    previous = next(it)
    snapshot = previous.x.clone()
    for current in it:
        assert torch.equal(previous.x, snapshot)  # untouched while `current` was read
        previous, snapshot = current, current.x.clone()


def test_epochs_reshuffle_and_errors(windows):
    sampler = TokenBucketBatchSampler(windows.token_counts(50), 8, seed=0)
    loader = WindowLoader(windows, sampler)
    first = [b.x.sum().item() for b in loader]
    loader.set_epoch(1)
    assert [b.x.sum().item() for b in loader] != first
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        WindowLoader(windows, sampler, num_threads=0)
    with pytest.raises(ValueError, match="out must be a float32 tensor"):
        windows.read_batch([0, 1], out=torch.empty(3))


def test_batches_from_a_start_index_skip_without_reading(windows, monkeypatch):
    sampler = TokenBucketBatchSampler(windows.token_counts(50), 4, seed=0)
    loader = WindowLoader(windows, sampler)
    full = [b.x.clone() for b in loader.batches(epoch=2)]
    reads = []
    original = windows.read_batch
    monkeypatch.setattr(windows, "read_batch", lambda idx, out=None: reads.append(list(idx)) or original(idx, out))
    tail = [b.x.clone() for b in loader.batches(epoch=2, start=3)]
    assert len(tail) == len(full) - 3 and len(reads) == len(tail)
    assert all(torch.equal(a, b) for a, b in zip(tail, full[3:]))
