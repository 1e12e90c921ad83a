import numpy as np
import pytest

from eegfm.data import TokenBucketBatchSampler

COUNTS = np.array([64 * 8] * 300 + [19 * 8] * 200 + [30 * 8] * 100)


def test_every_window_once_per_epoch_and_reproducible():
    sampler = TokenBucketBatchSampler(COUNTS, 32, seed=3)
    batches = list(sampler)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(COUNTS))) and len(batches) == len(sampler)
    assert batches == list(TokenBucketBatchSampler(COUNTS, 32, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_bucketing_pads_less_than_random_batches():
    bucketed = TokenBucketBatchSampler(COUNTS, 32, seed=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(COUNTS))
    random_batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    random_padding = 1 - sum(COUNTS[b].sum() for b in random_batches) / sum(COUNTS[b].max() * len(b) for b in random_batches)
    assert bucketed.padding_fraction() < 0.05 < random_padding


def test_distributed_ranks_split_batches_evenly_and_disjointly():
    ranks = [TokenBucketBatchSampler(COUNTS, 16, seed=1, num_replicas=3, rank=r) for r in range(3)]
    seen = [[i for b in r for i in b] for r in ranks]
    assert len({len(list(r)) for r in ranks}) == 1
    assert not set(seen[0]) & set(seen[1]) and not set(seen[1]) & set(seen[2])
    with pytest.raises(ValueError, match=r"rank must be in \[0, 3\), got rank=3"):
        TokenBucketBatchSampler(COUNTS, 16, num_replicas=3, rank=3)


def test_drop_last_and_no_shuffle():
    sampler = TokenBucketBatchSampler(np.arange(10), 4, shuffle=False, drop_last=True, pool_batches=1)
    assert list(sampler) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TokenBucketBatchSampler(COUNTS, 0)
