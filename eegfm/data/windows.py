"""Fixed-length windows read lazily from the preprocessed cache, and their collate.

:class:`WindowDataset` is a map-style dataset over every window of every cached recording.
It keeps only small index arrays in RAM (entry and start of each window, ~12 bytes a
window); the signal stays in memory-mapped ``data.npy`` files opened on first use in each
process (DataLoader workers included), so RAM does not grow with the corpus.

:func:`collate_windows` pads a list of windows into one :class:`~eegfm.data.EEGBatch`,
copying each window once, straight from the page cache into the batch tensor (allocated in
shared memory inside a DataLoader worker, so handing it to the main process costs no copy).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .cache import CacheEntry, max_open_maps
from .collate import EEGBatch, pad_into
from .npy_map import open_npy_map

__all__ = ["WindowDataset", "collate_windows"]

logger = logging.getLogger("eegfm.data")


class WindowDataset(Dataset):
    """Every ``window``-sample window (hop ``stride``) of every cached recording.

    Parameters
    ----------
    entries : sequence of CacheEntry
        Preprocessed recordings (all at the same sampling rate).
    window : int
        Window length in samples.
    stride : int, optional
        Hop between window starts in samples (default: ``window``, no overlap).

    Attributes
    ----------
    skipped_short : list of str
        Recordings shorter than one window (logged, not silently dropped).

    Each item is a dict: ``x`` (C, window) float32 µV (a read-only view of the cache),
    ``positions`` (C, 2) float32, ``entry`` and ``start`` (ints).
    """

    def __init__(self, entries: Sequence[CacheEntry], window: int, stride: int | None = None):
        stride = window if stride is None else stride
        if window <= 0 or stride <= 0:
            raise ValueError(f"window and stride must be positive sample counts, got {window=}, {stride=}")
        rates = sorted({float(e.sfreq) for e in entries})
        if len(rates) > 1:
            raise ValueError(f"cached recordings have different sampling rates {rates}; preprocess them with one config")
        self.window, self.stride = int(window), int(stride)
        self.sfreq = rates[0] if rates else None
        n_times = np.array([e.n_times for e in entries], dtype=np.int64)
        counts = np.where(n_times >= window, (n_times - window) // stride + 1, 0)
        self.skipped_short = [str(e.meta.get("source", e.path)) for e, c in zip(entries, counts) if c == 0]
        if self.skipped_short:
            logger.warning("%d recording(s) shorter than one window of %d samples were skipped: %s",
                           len(self.skipped_short), window, ", ".join(self.skipped_short))
        self._entry = np.repeat(np.arange(len(entries), dtype=np.int32), counts)
        first = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else np.zeros(0, np.int64)
        self._start = (np.arange(len(self._entry)) - np.repeat(first, counts)) * stride
        self._paths = [str(e.path / "data.npy") for e in entries]
        self._positions = [np.asarray(e.positions, dtype=np.float32) for e in entries]
        self._n_chans = np.array([e.n_channels for e in entries], dtype=np.int64)
        self.sources = [str(e.meta.get("source", e.path)) for e in entries]
        self._arrays: OrderedDict[int, np.ndarray] = OrderedDict()  # open memory maps, least recently read first
        self._arrays_lock = threading.Lock()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = OrderedDict()  # memmaps are reopened in each process, never pickled
        del state["_arrays_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._arrays_lock = threading.Lock()

    def _array(self, entry: int) -> np.ndarray:
        """Entry ``entry``'s signal as a memory map; at most :func:`~eegfm.data.cache.max_open_maps` stay open."""
        with self._arrays_lock:
            arr = self._arrays.get(entry)
            if arr is not None:
                self._arrays.move_to_end(entry)
                return arr
        arr = open_npy_map(self._paths[entry])
        with self._arrays_lock:
            self._arrays[entry] = arr
            while len(self._arrays) > max_open_maps():  # least recently read first; closed once unreferenced
                self._arrays.popitem(last=False)
        return arr

    def __len__(self) -> int:
        return len(self._entry)

    def __getitem__(self, index: int) -> dict:
        entry, start = int(self._entry[index]), int(self._start[index])
        return {"x": self._array(entry)[:, start:start + self.window], "positions": self._positions[entry],
                "entry": entry, "start": start}

    def n_channels(self) -> np.ndarray:
        """Channels of each window, shape (len(self),)."""
        return self._n_chans[self._entry]

    def token_counts(self, patch_size: int) -> np.ndarray:
        """Tokens each window makes for a model with ``patch_size``, shape (len(self),)."""
        return self.n_channels() * (self.window // patch_size)

    def entry_of(self, index: int) -> int:
        """Which cached recording window ``index`` comes from."""
        return int(self._entry[index])

    def batch_shape(self, indices) -> tuple[int, int, int]:
        """Shape (B, max C, window) of the batch of windows ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        return len(indices), int(self._n_chans[self._entry[indices]].max()), self.window

    def read_batch(self, indices, out: torch.Tensor | None = None) -> EEGBatch:
        """Read windows straight into one padded batch.

        Parameters
        ----------
        indices : sequence of int
            Windows to read.
        out : torch.Tensor, optional
            A flat float32 tensor with at least ``B * max C * window`` elements whose storage
            ``x`` is written into (to reuse memory across batches); allocated when None.

        Returns
        -------
        EEGBatch
            ``x`` (B, max C, window), contiguous; padded channels are zeros.
        """
        indices = np.asarray(indices, dtype=np.int64)
        entries, starts = self._entry[indices].tolist(), self._start[indices].tolist()
        signals = [self._array(e)[:, s:s + self.window] for e, s in zip(entries, starts)]
        return pad_into(signals, [self._positions[e] for e in entries], out)


def _batch_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 tensor, in shared memory when called in a DataLoader worker."""
    if get_worker_info() is None:
        return torch.empty(shape)
    numel = int(np.prod(shape))
    storage = torch.empty(0).untyped_storage()._new_shared(numel * 4)  # as default_collate does
    return torch.empty(0).set_(storage).view(shape)


def collate_windows(items: Sequence[dict]) -> EEGBatch:
    """Pad windows of different channel counts (and lengths) into one batch.

    Parameters
    ----------
    items : sequence of dict
        Items of :class:`WindowDataset`.

    Returns
    -------
    EEGBatch
        ``x`` (B, max C, max T) µV, ``positions`` (B, max C, 2) (NaN where padded),
        ``channel_mask`` (B, max C), ``n_times`` (B,).
    """
    if not items:
        raise ValueError("collate_windows got an empty batch")
    shape = (len(items), max(it["x"].shape[0] for it in items), max(it["x"].shape[1] for it in items))
    return pad_into([it["x"] for it in items], [it["positions"] for it in items], _batch_tensor(shape).view(-1))
