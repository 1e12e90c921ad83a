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


# ---------------------------------------------------------------- pinned batches, non-blocking copies
# This machine has no CUDA, so Tensor.pin_memory is replaced by a copy that records what it made:
# the tests check which tensors go through it, not the page locking itself.
@pytest.fixture
def fake_pinning(monkeypatch):
    pinned = []

    def pin_memory(self, device=None):
        copy = self.clone()
        pinned.append(copy)
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    return lambda t: any(t is p for p in pinned)


def test_a_pinned_batch_holds_pinned_copies_of_every_tensor(fake_pinning):
    from torch.utils.data._utils.pin_memory import pin_memory  # what DataLoader(pin_memory=True) calls

    from eegfm.data import pad_recordings
    from eegfm.finetune.data import LabeledBatch

    batch = pad_recordings([(np.ones((2, 30)), np.zeros((2, 2))), (np.ones((3, 20)), np.zeros((3, 2)))])
    batch.targets = torch.arange(6).view(2, 3)
    pinned = pin_memory(batch)
    fields = ("x", "positions", "channel_mask", "n_times", "targets")
    assert type(pinned) is type(batch) and pinned.padded is batch.padded is True
    for name in fields:
        got, expected = getattr(pinned, name), getattr(batch, name)
        assert fake_pinning(got) and torch.allclose(got, expected, rtol=0, atol=0, equal_nan=True), name
    labelled = pin_memory(LabeledBatch(batch, torch.tensor([0, 1])))
    assert isinstance(labelled, LabeledBatch) and fake_pinning(labelled.labels) and fake_pinning(labelled.eeg.x)


def test_batches_move_with_non_blocking_copies(monkeypatch):
    from eegfm.data import pad_recordings
    from eegfm.finetune.data import LabeledBatch
    from eegfm.training.engine import _to_device

    calls = []

    def to(self, device, non_blocking=False):  # records the copy, keeps the tensor on this CUDA-less machine
        calls.append((torch.device(device).type, non_blocking))
        return self

    monkeypatch.setattr(torch.Tensor, "to", to)
    cuda = torch.device("cuda", 0)
    batch = pad_recordings([(np.ones((2, 30)), np.zeros((2, 2)))])
    moved = _to_device({"eeg": LabeledBatch(batch, torch.tensor([1])), "extra": torch.zeros(2)}, cuda)
    assert calls == [("cuda", True)] * 6 and moved["eeg"].eeg.padded is False  # 4 EEG tensors, labels, extra

    class OldBatch:  # a user's batch type whose to() takes the device only still works
        def to(self, device):
            return "moved"

    calls.clear()
    assert _to_device([OldBatch(), torch.ones(1)], cuda) == ["moved", torch.ones(1)]
    _to_device(torch.ones(1), torch.device("mps"))  # other devices copy as before
    assert calls == [("cuda", True), ("mps", False)]


def test_the_loader_pins_its_batches_when_cuda_is_available(windows, monkeypatch, fake_pinning):
    sampler = TokenBucketBatchSampler(windows.token_counts(50), 4, shuffle=False, pool_batches=1)
    assert WindowLoader(windows, sampler).pin_memory is False  # no CUDA here: reused unpinned buffers
    with pytest.raises(ValueError, match=r"pin_memory=True needs CUDA, which is not available here; "
                                         r"pass pin_memory=False \(or None\)"):
        WindowLoader(windows, sampler, pin_memory=True)
    expected = [b.x.clone() for b in WindowLoader(windows, sampler)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    loader = WindowLoader(windows, sampler, num_threads=2, prefetch=1)
    assert loader.pin_memory is True
    batches = list(loader)  # pinned batches own their memory: all still valid at the end
    assert len(batches) == len(expected) > loader.num_threads + loader.prefetch + 2  # more than the ring
    for batch, x in zip(batches, expected):
        assert fake_pinning(batch.x) and fake_pinning(batch.positions) and torch.equal(batch.x, x)
