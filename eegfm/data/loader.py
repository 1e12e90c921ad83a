"""``WindowLoader``: batches of cached windows filled by background threads into reused buffers.

Reading a window from the memory-mapped cache is a memory copy, and numpy releases the GIL
while it copies, so threads stream windows faster than DataLoader worker processes, which
must allocate fresh shared memory for every batch (the page faults of that memory cost about
three times the copy itself). Measured on 2 cores with 64-channel x 4-s windows:
``benchmarks/data_throughput.py``.

Contract: buffers are reused. A batch stays valid while you hold it and while you fetch the
next one; the batch after next overwrites it. Call ``batch.x.clone()`` to keep one longer.
Copies to a GPU with ``.to(device)`` (blocking) are safe.

Pinned batches (``pin_memory=True``, the default when CUDA is available) are the exception:
each thread copies its batch out of the reused buffer into page-locked memory
(:meth:`EEGBatch.pin_memory`), which the batch owns and CUDA's host allocator recycles only
after every copy from it has finished, so ``.to(device, non_blocking=True)`` is safe and
overlaps with the GPU's work, and a pinned batch stays valid for as long as you hold it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

from .collate import EEGBatch
from .windows import WindowDataset

__all__ = ["WindowLoader"]


class WindowLoader:
    """Iterate :class:`~eegfm.data.EEGBatch` batches of a :class:`WindowDataset`.

    Parameters
    ----------
    windows : WindowDataset
    batch_sampler : iterable of list of int
        Yields the window indices of each batch, e.g.
        :class:`~eegfm.data.TokenBucketBatchSampler` (which also splits batches across
        distributed ranks). ``set_epoch`` is forwarded to it.
    num_threads : int
        Threads reading windows.
    prefetch : int
        Batches read ahead beyond one per thread.
    pin_memory : bool, optional
        Yield batches in page-locked memory, for asynchronous copies to a GPU (see the module
        docstring). Default: whether CUDA is available. True needs CUDA.
    """

    def __init__(self, windows: WindowDataset, batch_sampler: Iterable, *, num_threads: int = 2, prefetch: int = 2,
                 pin_memory: bool | None = None):
        if num_threads < 1 or prefetch < 0:
            raise ValueError(f"num_threads must be >= 1 and prefetch >= 0, got {num_threads=}, {prefetch=}")
        if pin_memory is None:
            pin_memory = torch.cuda.is_available()
        elif pin_memory and not torch.cuda.is_available():
            raise ValueError("pin_memory=True needs CUDA, which is not available here; pass pin_memory=False (or None)")
        self.windows, self.batch_sampler = windows, batch_sampler
        self.num_threads, self.prefetch, self.pin_memory = num_threads, prefetch, pin_memory
        self._buffers: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the batch sampler (a new shuffle each epoch)."""
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def _buffer(self, slot: int, indices) -> torch.Tensor:
        b, c, t = self.windows.batch_shape(indices)
        numel = b * c * t
        if self._buffers[slot].numel() < numel:
            self._buffers[slot] = torch.empty(numel)
        return self._buffers[slot]

    def _read_batch(self, indices, out: torch.Tensor) -> EEGBatch:
        """One batch read into ``out`` (in a reading thread), pinned when ``pin_memory``."""
        batch = self.windows.read_batch(indices, out)
        return batch.pin_memory() if self.pin_memory else batch

    def __iter__(self) -> Iterator[EEGBatch]:
        return self._read(iter(self.batch_sampler))

    def batches(self, epoch: int, start: int = 0) -> Iterator[EEGBatch]:
        """The batches of ``epoch`` from batch index ``start`` on (earlier ones are not read).

        This is the ``batches(epoch, start)`` callable :class:`eegfm.training.Trainer` takes,
        so a resumed run continues with exactly the batches it had not seen.
        """
        self.set_epoch(epoch)
        return self._read(itertools.islice(iter(self.batch_sampler), start, None))

    def _read(self, batches: Iterator) -> Iterator[EEGBatch]:
        in_flight = self.num_threads + self.prefetch
        ring = in_flight + 2  # the batch being read, the one held, and the one before it
        if len(self._buffers) != ring:
            self._buffers = [torch.empty(0) for _ in range(ring)]
        pending: deque = deque()
        pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="eegfm-windows")
        slot = 0

        def submit() -> bool:
            nonlocal slot
            indices = next(batches, None)
            if indices is None:
                return False
            out = self._buffer(slot, indices)
            pending.append(pool.submit(self._read_batch, indices, out))
            slot = (slot + 1) % ring
            return True

        try:
            for _ in range(in_flight):
                if not submit():
                    break
            while pending:
                batch = pending.popleft().result()
                submit()
                yield batch
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
