"""``EEGCorpus``: many recordings from any sources, preprocessed once, cached, windowed.

    sources (Raw / files / BIDS / MOABB / braindecode / paper datasets)
      -> preprocess (EEG channels, notch, band-pass, resample, µV, positions)   once per recording
      -> RecordingCache (memory-mapped data.npy + meta.json, written atomically)
      -> WindowDataset (fixed-length windows, read lazily)
      -> DataLoader(batch_sampler=TokenBucketBatchSampler, collate_fn=collate_windows)

Example
-------
>>> from eegfm.data import EEGCorpus, from_files, from_bids
>>> corpus = EEGCorpus(from_files(["a.edf"]) + from_bids("bids_root"), cache_dir="~/.cache/eegfm")  # doctest: +SKIP
>>> windows = corpus.windows(seconds=4.0)                                                            # doctest: +SKIP
>>> loader = corpus.dataloader(windows, batch_size=64, patch_size=100, num_workers=2)                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib

import json
import logging
import math
import pickle
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mne
from torch.utils.data import DataLoader
from ..progress import progress_bar

from ..montage import UnknownChannelError
from .cache import RecordingCache
from .preprocessing import PreprocessConfig, PreprocessError, preprocess
from .recording import Recording
from .sampler import TokenBucketBatchSampler
from .sources import RecordingSource, content_digest, file_fingerprint, from_raw
from .loader import WindowLoader
from .windows import WindowDataset, collate_windows

__all__ = ["EEGCorpus"]

logger = logging.getLogger("eegfm.data")

#: Errors that make one recording unusable; with ``on_error="skip"`` it is logged and counted.
RECORDING_ERRORS = (PreprocessError, UnknownChannelError, ValueError, OSError, RuntimeError, pickle.UnpicklingError)


def _as_source(item) -> RecordingSource:
    if isinstance(item, RecordingSource):
        return item
    if isinstance(item, mne.io.BaseRaw):
        return from_raw(item)
    if isinstance(item, Recording):  # in memory: the cache entry is keyed by its very samples and channels
        path = item.source.split("#", 1)[0]
        fingerprint = file_fingerprint(path) if Path(path).is_file() else {}
        fingerprint["content"] = content_digest(item.data, list(item.ch_names), float(item.sfreq))
        return RecordingSource(item.source, lambda: item, fingerprint, dict(item.metadata))
    raise TypeError(
        f"cannot use a {type(item).__name__} as an EEG source: pass RecordingSource objects "
        "(eegfm.data.from_files / from_bids / from_moabb / from_braindecode), mne Raw objects or Recordings"
    )


class EEGCorpus:
    """Preprocess and cache recordings from any sources; cut them into windows.

    Parameters
    ----------
    sources : iterable
        :class:`RecordingSource` objects, ``mne.io.Raw`` objects or :class:`Recording` objects
        (consumed one at a time: a generator of recordings keeps memory flat).
    cache_dir : str | Path
        Where preprocessed recordings are stored and reused.
    config : PreprocessConfig, optional
        Preprocessing (default: 200 Hz, 0.1-75 Hz, µV, EEG channels).
    positions : dict, optional
        Explicit channel positions for channels no montage knows (see
        :func:`eegfm.proportion_coordinates`).
    on_error : {"skip", "raise"}
        A recording that cannot be used (NaN samples, unknown channels, unreadable file...)
        is logged with its name and reason and counted in :attr:`skipped` ("skip"), or stops
        everything ("raise"). A corrupt cache entry always raises.
    progress : bool
        Show a progress bar.

    Attributes
    ----------
    entries : list of CacheEntry
        The usable preprocessed recordings.
    skipped : list of (str, str)
        ``(source key, reason)`` of each recording left out.
    n_reused, n_built : int
        Recordings found in the cache / preprocessed now.
    """

    def __init__(self, sources: Iterable, cache_dir, config: PreprocessConfig | None = None, *,
                 positions: dict | None = None, on_error: str = "skip", progress: bool = True):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.config = config or PreprocessConfig()
        self.cache = RecordingCache(Path(cache_dir).expanduser())
        self.positions = positions
        self.entries, self.skipped = [], []
        self.n_reused = self.n_built = 0
        positions_key = json.dumps(positions or {}, sort_keys=True, default=list)
        # Entry i is written by a background thread while recording i+1 is preprocessed; at
        # most one write is in flight, so memory holds at most two recordings.
        # A missing entry is built under the cache's per-entry lock, held until it is written,
        # so another process building the same cache waits and reuses it instead of building.
        slots: list = []
        writer = ThreadPoolExecutor(1, thread_name_prefix="eegfm-cache-writer")
        pending, pending_lock = None, contextlib.ExitStack()
        try:
            for item in progress_bar(sources, desc="preprocessing EEG", unit="rec", enabled=progress):
                source = _as_source(item)
                fingerprint = {"source": source.fingerprint, "preprocess": self.config.hash(),
                               "positions": positions_key}
                entry = self.cache.get(source.key, fingerprint)
                lock = contextlib.ExitStack()
                if entry is None:
                    lock.enter_context(self.cache.build_lock(self.cache.entry_id(source.key, fingerprint)))
                    entry = self.cache.get(source.key, fingerprint)  # built by another process meanwhile?
                if entry is not None:
                    lock.close()
                    # labels/subjects come from the source as it is now, not as it was when cached
                    entry.meta["metadata"] = {**entry.meta.get("metadata", {}), **source.metadata}
                    slots.append(entry)
                    self.n_reused += 1
                    continue
                with contextlib.ExitStack() as on_error_release:
                    on_error_release.push(lock)
                    try:
                        recording = self._build(source)
                    except RECORDING_ERRORS as err:
                        if on_error == "raise":
                            raise
                        logger.warning("skipped %s: %s", source.key, err)
                        self.skipped.append((source.key, f"{type(err).__name__}: {err}"))
                        continue
                    if pending is not None:
                        with pending_lock:
                            pending.result()  # surface write errors early; bounds memory
                    pending = writer.submit(self.cache.put, source.key, fingerprint, recording)
                    pending_lock = on_error_release.pop_all()  # released once this entry is written
                slots.append(pending)
                self.n_built += 1
        finally:
            writer.shutdown(wait=True)
            pending_lock.close()
        self.entries = [slot.result() if hasattr(slot, "result") else slot for slot in slots]
        logger.info("%d recordings ready (%d reused from %s, %d preprocessed), %d skipped", len(self.entries),
                    self.n_reused, self.cache.root, self.n_built, len(self.skipped))

    def _build(self, source: RecordingSource) -> Recording:
        recording = preprocess(source.load(), self.config, positions=self.positions, source_name=source.key)
        recording.metadata = {**recording.metadata, **source.metadata}
        return recording

    def __len__(self) -> int:
        return len(self.entries)

    def windows(self, seconds: float, stride_seconds: float | None = None) -> WindowDataset:
        """Fixed-length windows of every recording (``stride_seconds`` defaults to ``seconds``)."""
        for name, value in (("seconds", seconds), ("stride_seconds", stride_seconds)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {name}={value!r}")
        window = round(seconds * self.config.sfreq)
        stride = round((stride_seconds if stride_seconds is not None else seconds) * self.config.sfreq)
        return WindowDataset(self.entries, window, stride)

    @staticmethod
    def loader(windows: WindowDataset, batch_size: int, patch_size: int, *, shuffle: bool = True, seed: int = 0,
               drop_last: bool = False, num_threads: int = 2, prefetch: int = 2) -> WindowLoader:
        """The fastest way to stream batches: a :class:`WindowLoader` with token-bucketed batches.

        Background threads fill reused buffers (see :class:`WindowLoader` for the contract);
        distributed training picks up the rank and world size from ``torch.distributed``.
        """
        sampler = TokenBucketBatchSampler(windows.token_counts(patch_size), batch_size, shuffle=shuffle,
                                          seed=seed, drop_last=drop_last)
        return WindowLoader(windows, sampler, num_threads=num_threads, prefetch=prefetch)

    @staticmethod
    def dataloader(windows: WindowDataset, batch_size: int, patch_size: int, *, shuffle: bool = True,
                   seed: int = 0, num_workers: int = 0, drop_last: bool = False, **loader_kwargs) -> DataLoader:
        """A ``torch.utils.data.DataLoader`` of :class:`~eegfm.data.EEGBatch` with token-bucketed batches.

        Fresh tensors every batch, worker processes; :meth:`loader` is faster.

        ``patch_size`` is the model's, used to count tokens. Distributed training picks up
        the rank and world size from ``torch.distributed`` (see :class:`TokenBucketBatchSampler`).
        """
        sampler = TokenBucketBatchSampler(windows.token_counts(patch_size), batch_size, shuffle=shuffle,
                                          seed=seed, drop_last=drop_last)
        return DataLoader(windows, batch_sampler=sampler, collate_fn=collate_windows, num_workers=num_workers,
                          persistent_workers=num_workers > 0, **loader_kwargs)
