"""Batches of windows with similar token counts, so mixed montages waste little padding."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler

__all__ = ["TokenBucketBatchSampler"]


class TokenBucketBatchSampler(Sampler[list[int]]):
    """Shuffle, then group windows of similar token counts into batches.

    Each epoch: shuffle all indices (seeded by ``seed + epoch``), cut them into pools of
    ``batch_size * pool_batches`` windows, sort each pool by token count, cut it into
    batches, and shuffle the batches. Windows from a 64-channel cap then mostly meet other
    64-channel windows, and a 19-channel window is rarely padded to 64 channels.

    Distributed training: pass ``num_replicas`` and ``rank`` (or leave them ``None`` to read
    them from ``torch.distributed`` when it is initialised); every rank draws the same batch
    order and takes every ``num_replicas``-th batch, and all ranks get the same number of
    batches. Call :meth:`set_epoch` each epoch, as with ``DistributedSampler``.

    Parameters
    ----------
    token_counts : array-like of int, shape (N,)
        Tokens of each window (``WindowDataset.token_counts(patch_size)``).
    batch_size : int
        Windows per batch.
    shuffle : bool
        Shuffle (True) or keep dataset order within sorted pools (False).
    seed : int
        Base seed; the epoch is added to it.
    drop_last : bool
        Drop the last incomplete batch of each pool.
    pool_batches : int
        Batches per sorting pool: larger pools pad less but mix less.
    num_replicas, rank : int, optional
        For distributed training.
    """

    def __init__(self, token_counts, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, pool_batches: int = 50, num_replicas: int | None = None,
                 rank: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size=}")
        if num_replicas is None or rank is None:
            import torch.distributed as dist

            ready = dist.is_available() and dist.is_initialized()
            num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank=}")
        self.token_counts = np.asarray(token_counts, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.pool_batches = drop_last, pool_batches
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        """Use a different (reproducible) order for ``epoch``."""
        self.epoch = epoch

    def _all_batches(self) -> list[np.ndarray]:
        n = len(self.token_counts)
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = self.batch_size * self.pool_batches
        batches = []
        for lo in range(0, n, pool):
            chunk = order[lo:lo + pool]
            chunk = chunk[np.argsort(self.token_counts[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b:b + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        usable = len(batches) - len(batches) % self.num_replicas  # same count on every rank
        return batches[:usable] if self.num_replicas > 1 else batches

    def __iter__(self):
        for batch in self._all_batches()[self.rank::self.num_replicas]:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self._all_batches()) // self.num_replicas

    def padding_fraction(self) -> float:
        """Share of padded tokens over this rank's batches of the current epoch."""
        real = padded = 0
        for batch in self:
            counts = self.token_counts[batch]
            real += int(counts.sum())
            padded += int(counts.max()) * len(batch)
        return 1.0 - real / padded if padded else 0.0
