"""A disk cache of preprocessed recordings, read back as memory maps.

Layout: one directory per entry, ``root/<id>/`` holding

- ``data.npy``: float32 array of shape (C, T) in µV (``np.save``; memory-mapped by
  :func:`~eegfm.data.npy_map.open_npy_map`, a thread-safe ``np.load(mmap_mode="r")``, so a
  training loader touches only the windows it reads);
- ``meta.json``: ``ch_names``, ``positions``, ``sfreq``, ``n_times``, ``n_channels``,
  ``source``, ``preprocess_hash``, ``preprocess`` (the config), ``metadata``, and the key
  (``key_source``, ``fingerprint``) the id was computed from.

``<id>`` is a sha256 of ``(key_source, fingerprint, CACHE_FORMAT)``; the fingerprint carries
the preprocessing config's hash and the source file's size and ``mtime_ns``
(:func:`source_fingerprint`), so changing either gives a new entry (old ones are simply
never read again).

Writes are atomic: an entry is built in ``root/.tmp-<id>-<pid>-<host>-<random>/``, its
files are fsync'ed, and the directory is renamed into place. A crash mid-write leaves only
a ``.tmp-*`` directory, which is never read; opening the cache removes it once its writer
is gone (same machine, pid not running) or after an hour (:meth:`RecordingCache.clean_tmp`).
A full disk raises an OSError that names the entry. :meth:`RecordingCache.get_or_create`
builds a missing entry under an exclusive lock on ``root/.lock-<id>`` (``fcntl.flock``,
where available; the file is removed on release), so two processes asking for the same
entry preprocess once and the second reads the first's entry. Writers that race anyway
(:meth:`RecordingCache.put`, platforms without ``fcntl``) both write; the rename of the
second fails because the first's directory exists, and the second uses the first's entry.

Open memory maps are bounded: the :class:`CacheEntry` objects whose signal is mapped form a
least-recently-used list of at most 64 (``EEGFM_MAX_OPEN_MAPS`` at import, or
:func:`set_max_open_maps`); past the bound the least recently read entry drops its map
(closed once nothing else holds it) and reopens it on its next read. The list is shared by
all threads of the process and guarded by a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .npy_map import open_npy_map
from .preprocessing import PreprocessConfig, preprocess
from .recording import Recording
from .._fsutil import HOST_TAG, clean_stale_tmp, disk_full_error, out_of_space
from .._fsutil import fsync_dir as _fsync_dir

try:
    import fcntl
except ImportError:  # Windows: no build lock, concurrent builders race (see the module docstring)
    fcntl = None

__all__ = [
    "CACHE_FORMAT", "CacheCorruptError", "CacheEntry", "RecordingCache", "cached_preprocess",
    "max_open_maps", "set_max_open_maps", "source_fingerprint",
]

logger = logging.getLogger("eegfm.data")

#: Version of the on-disk layout; part of every entry id.
CACHE_FORMAT = 1

_DATA = "data.npy"
_META = "meta.json"
_TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]+-(?P<pid>\d+)-(?:(?P<host>[0-9a-f]{8})-)?[0-9a-f]+$")
_LOCK_PREFIX = ".lock-"
_DISK_HINT = "free space or point cache_dir to a larger disk"
_REQUIRED = ("ch_names", "positions", "sfreq", "n_times", "n_channels", "source")
# EEGLAB and BrainVision keep the signal beside the header file.
_COMPANIONS = {".set": (".fdt",), ".vhdr": (".eeg", ".vmrk")}


class _OpenMaps:
    """Least-recently-used list of the entries holding a memory map; thread-safe."""

    def __init__(self, bound: int):
        self.bound = bound
        self._lock = threading.Lock()
        self._refs: OrderedDict[int, weakref.ref] = OrderedDict()  # id(entry) -> entry, oldest first

    def touch(self, entry: "CacheEntry") -> None:
        """Mark ``entry`` (which holds a map) most recently used; drop the maps past the bound."""
        with self._lock:
            key = id(entry)
            ref = self._refs.get(key)
            if ref is not None and ref() is entry:
                self._refs.move_to_end(key)
                return
            self._refs.pop(key, None)  # a dead entry whose id was reused
            self._refs[key] = weakref.ref(entry)
            self._evict()

    def _evict(self) -> None:
        while len(self._refs) > self.bound:
            _, ref = self._refs.popitem(last=False)
            old = ref()
            if old is not None:
                old._data = None

    def set_bound(self, bound: int) -> None:
        with self._lock:
            self.bound = bound
            self._evict()


def _bound_from_env() -> int:
    text = os.environ.get("EEGFM_MAX_OPEN_MAPS", "64")
    try:
        bound = int(text)
    except ValueError:
        bound = 0
    if bound < 1:
        raise ValueError(f"EEGFM_MAX_OPEN_MAPS={text!r} is not a positive integer; unset it or set e.g. 64")
    return bound


_open_maps = _OpenMaps(_bound_from_env())
_held_locks = threading.local()  # .paths: the build locks this thread holds


def max_open_maps() -> int:
    """The bound on open memory maps (:func:`set_max_open_maps`); readers with their own maps obey it too."""
    return _open_maps.bound


def set_max_open_maps(n: int) -> None:
    """Keep at most ``n`` cache entries' memory maps open (default 64, or ``EEGFM_MAX_OPEN_MAPS``).

    Parameters
    ----------
    n : int
        Positive bound; entries past it (least recently read first) drop their maps now.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"set_max_open_maps needs a positive integer, got {n!r}")
    _open_maps.set_bound(int(n))


def _lock_file(path: Path) -> int | None:
    """Open and ``flock`` ``path`` exclusively (waiting); its descriptor, or None if locking fails."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            logger.debug("no build lock %s (%s); building unlocked", path, err)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:  # the holder before us unlinked the file on release: lock the current one
                now = os.stat(path)
                current = (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)
            except FileNotFoundError:
                current = False
        except OSError as err:
            os.close(fd)
            logger.debug("no build lock %s (%s); building unlocked", path, err)
            return None
        except BaseException:
            os.close(fd)
            raise
        if current:
            return fd
        os.close(fd)


class CacheCorruptError(RuntimeError):
    """A cache entry on disk is unreadable or inconsistent; the message names it."""


def source_fingerprint(path) -> dict:
    """What identifies a source file's version: resolved path, size and ``mtime_ns``.

    Companion files that hold the signal (EEGLAB ``.fdt`` beside a ``.set``, BrainVision
    ``.eeg``/``.vmrk`` beside a ``.vhdr``) are included when present.

    Parameters
    ----------
    path : str | os.PathLike
        The recording's file.

    Returns
    -------
    dict
        ``{"path": str, "size": int, "mtime_ns": int}`` plus ``"companions"`` (a list of
        such dicts) when the format has any.
    """
    path = Path(path).resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"source file not found: {path}") from None
    out = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    companions = []
    for ext in _COMPANIONS.get(path.suffix.lower(), ()):
        other = path.with_suffix(ext)
        if other.exists():
            cst = other.stat()
            companions.append({"path": str(other), "size": cst.st_size, "mtime_ns": cst.st_mtime_ns})
    if companions:
        out["companions"] = companions
    return out


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable: {obj!r}")


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file, reading only its header."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        return shape, dtype, fortran, fh.tell()


class CacheEntry:
    """One preprocessed recording on disk; the signal is memory-mapped on first use.

    Opening validates ``meta.json`` against ``data.npy``'s header and size (cheap: the
    samples are not read), so a truncated or corrupt entry fails here, by name.

    Attributes
    ----------
    path : pathlib.Path
        The entry's directory.
    meta : dict
        Contents of ``meta.json``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.meta = self._validate()
        self._data = None

    def _corrupt(self, what: str) -> CacheCorruptError:
        return CacheCorruptError(
            f"corrupt cache entry {self.path}: {what}. Delete it (shutil.rmtree of that "
            "directory) and it will be rebuilt."
        )

    def _validate(self) -> dict:
        meta_path, data_path = self.path / _META, self.path / _DATA
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self._corrupt(f"{meta_path} is missing") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise self._corrupt(f"{meta_path} is not valid JSON ({err})") from err
        if not isinstance(meta, dict):
            raise self._corrupt(f"{meta_path} does not hold a JSON object")
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise self._corrupt(f"{meta_path} lacks {missing}")
        try:
            shape, dtype, fortran, offset = _npy_header(data_path)
            size = data_path.stat().st_size
        except FileNotFoundError:
            raise self._corrupt(f"{data_path} is missing") from None
        except (ValueError, OSError, EOFError) as err:
            raise self._corrupt(f"{data_path} has no valid .npy header ({err})") from err
        expected = (meta["n_channels"], meta["n_times"])
        if tuple(shape) != expected or dtype != np.float32 or fortran:
            raise self._corrupt(
                f"{data_path} holds {dtype} {tuple(shape)} (fortran_order={fortran}), "
                f"meta.json says float32 {expected}"
            )
        if size != offset + int(np.prod(shape)) * dtype.itemsize:
            raise self._corrupt(
                f"{data_path} is truncated: {size} bytes, expected "
                f"{offset + int(np.prod(shape)) * dtype.itemsize}"
            )
        if len(meta["ch_names"]) != shape[0] or np.shape(meta["positions"]) != (shape[0], 2):
            raise self._corrupt(
                f"{meta_path}: {len(meta['ch_names'])} ch_names and positions of shape "
                f"{np.shape(meta['positions'])} for {shape[0]} channels"
            )
        return meta

    @property
    def data(self) -> np.memmap:
        """Read-only memory map, shape (C, T), float32, µV.

        Opened on first read; one of a bounded number of open maps (see the module docstring).
        """
        data = self._data  # local: another thread may drop self._data meanwhile
        if data is None:
            data = self._data = open_npy_map(self.path / _DATA)
        _open_maps.touch(self)
        return data

    @property
    def ch_names(self) -> list[str]:
        return list(self.meta["ch_names"])

    @property
    def positions(self) -> np.ndarray:
        """Proportion coordinates, shape (C, 2), float64."""
        return np.asarray(self.meta["positions"], dtype=np.float64).reshape(-1, 2)

    @property
    def sfreq(self) -> float:
        return float(self.meta["sfreq"])

    @property
    def n_times(self) -> int:
        return int(self.meta["n_times"])

    @property
    def n_channels(self) -> int:
        return int(self.meta["n_channels"])

    def window(self, start: int, length: int) -> np.ndarray:
        """A copy of samples ``[start, start + length)``, shape (C, length), float32."""
        start, length = int(start), int(length)
        if start < 0 or length <= 0 or start + length > self.n_times:
            raise IndexError(
                f"window(start={start}, length={length}) is outside {self.path} "
                f"(n_times={self.n_times})"
            )
        return np.array(self.data[:, start : start + length])

    def to_recording(self) -> Recording:
        """The entry as an in-memory :class:`Recording` (reads all samples)."""
        metadata = dict(self.meta.get("metadata", {}))
        metadata["positions"] = self.meta["positions"]
        return Recording(np.array(self.data), self.ch_names, self.sfreq, self.meta["source"], metadata)

    def __repr__(self) -> str:
        return (
            f"CacheEntry({str(self.path)!r}, channels={self.n_channels}, "
            f"n_times={self.n_times}, sfreq={self.sfreq:g})"
        )


class RecordingCache:
    """Directory of preprocessed recordings (see the module docstring for the layout).

    Parameters
    ----------
    root : str | os.PathLike
        Cache directory; created if missing. Leftovers of killed writers in it are removed
        (see :meth:`clean_tmp`).
    """

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_tmp()

    def entry_id(self, key_source: str, fingerprint: Mapping) -> str:
        """32-hex-digit id of ``(key_source, fingerprint)``."""
        payload = {"format": CACHE_FORMAT, "key_source": str(key_source), "fingerprint": fingerprint}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key_source: str, fingerprint: Mapping) -> CacheEntry | None:
        """The entry for this key, or None when there is none."""
        path = self.root / self.entry_id(key_source, fingerprint)
        return CacheEntry(path) if path.is_dir() else None

    def get_or_create(
        self, key_source: str, fingerprint: Mapping, build: Callable[[], Recording]
    ) -> CacheEntry:
        """The entry for ``(key_source, fingerprint)``, calling ``build`` only when missing.

        A missing entry is built under a per-entry lock (see the module docstring): another
        process asking for it meanwhile waits, then reads it instead of building it again.

        Parameters
        ----------
        key_source : str
            What the entry is of (usually the source file's resolved path).
        fingerprint : dict
            JSON-safe; everything the result depends on (config hash, source version).
        build : callable
            ``build() -> Recording`` with ``metadata["positions"]`` of shape (C, 2), as
            :func:`eegfm.data.preprocessing.preprocess` returns.

        Returns
        -------
        CacheEntry

        Raises
        ------
        CacheCorruptError
            The existing entry is unreadable (the message says which and to delete it).
        OSError
            The disk is full (the message names the entry and says what to do).
        """
        entry = self.get(key_source, fingerprint)
        if entry is not None:
            return entry
        with self.build_lock(self.entry_id(key_source, fingerprint)):
            entry = self.get(key_source, fingerprint)  # built by another process while we waited
            return entry if entry is not None else self.put(key_source, fingerprint, build())

    @contextlib.contextmanager
    def build_lock(self, entry_id: str):
        """Hold an exclusive lock on ``root/.lock-<entry_id>``; reentrant within a thread.

        Builders of one entry (``get_or_create``, :class:`eegfm.data.EEGCorpus`) take it, look
        for the entry again, and build only when it is still missing.

        Without ``fcntl``, or where the lock cannot be taken (e.g. a file system without
        locks), nothing is locked and concurrent builders race as before.
        """
        path = self.root / f"{_LOCK_PREFIX}{entry_id}"
        held = _held_locks.__dict__.setdefault("paths", set())  # this thread's
        key = os.path.abspath(path)
        fd = None if fcntl is None or key in held else _lock_file(path)
        if fd is None:
            yield
            return
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while still locked, so a waiter sees it is stale
            os.close(fd)

    def put(self, key_source: str, fingerprint: Mapping, recording: Recording) -> CacheEntry:
        """Write ``recording`` as the entry for ``(key_source, fingerprint)``, atomically.

        Returns the existing entry untouched when there is one (e.g. written concurrently).
        ``recording`` needs ``metadata["positions"]`` of shape (C, 2).
        """
        entry_id = self.entry_id(key_source, fingerprint)
        final = self.root / entry_id
        if final.is_dir():
            return CacheEntry(final)
        if not isinstance(recording, Recording):
            raise TypeError(f"build() must return a Recording, got {type(recording).__name__}")
        tmp = self.root / f"{_TMP_PREFIX}{entry_id}-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}"
        try:
            self._write(tmp, recording, key_source, fingerprint)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                # another writer won the race: its entry is equivalent; use it
                logger.debug("cache entry %s was written concurrently; using it", final)
            else:
                _fsync_dir(self.root)
        except (OSError, RuntimeError) as err:
            if out_of_space(err, self.root):  # checked before the partial entry is removed
                raise disk_full_error(err, "cache entry", final, _DISK_HINT) from err
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return CacheEntry(final)

    def _write(self, tmp: Path, rec: Recording, key_source: str, fingerprint: Mapping) -> None:
        data = np.ascontiguousarray(rec.data, dtype=np.float32)  # (C, T)
        positions = np.asarray(rec.metadata.get("positions", []), dtype=np.float64)
        if positions.shape != (data.shape[0], 2):
            raise ValueError(
                f"{rec.source}: metadata['positions'] must have shape ({data.shape[0]}, 2), "
                f"got {positions.shape}; build() should return preprocess(...)'s Recording"
            )
        tmp.mkdir()
        with open(tmp / _DATA, "wb") as fh:
            np.save(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        extras = {k: v for k, v in rec.metadata.items() if k != "positions"}
        meta = {
            "format": CACHE_FORMAT,
            "key_source": str(key_source),
            "fingerprint": fingerprint,
            "ch_names": list(rec.ch_names),
            "positions": positions.tolist(),
            "sfreq": float(rec.sfreq),
            "n_times": int(data.shape[1]),
            "n_channels": int(data.shape[0]),
            "source": rec.source,
            "preprocess_hash": rec.metadata.get("preprocess_hash"),
            "preprocess": rec.metadata.get("preprocess"),
            "metadata": extras,
            "created": time.time(),
        }
        text = json.dumps(meta, indent=1, default=_json_default)
        with open(tmp / _META, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)

    def entries(self) -> list[Path]:
        """Directories of the complete entries (temporary directories excluded)."""
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(_TMP_PREFIX))

    def clean_tmp(self, max_age_s: float = 3600.0) -> list[Path]:
        """Remove leftover ``.tmp-*`` directories of interrupted writes (called on opening).

        A directory whose writer is gone (a pid of this machine that no longer runs) is
        removed at once; any other only once it is ``max_age_s`` old.

        Parameters
        ----------
        max_age_s : float
            Age, from the last modification, at which a directory whose writer may still run
            (same machine and pid running, another machine's, or a name of an older version
            without pid and host) is removed, so a write in progress survives; 0 removes all.

        Returns
        -------
        list of pathlib.Path
            The directories removed (each is logged).
        """
        return clean_stale_tmp(self.root, _TMP_NAME, max_age_s=max_age_s, what="cache build directory")


def _raw_fingerprint(raw) -> dict:
    """What identifies an in-memory Raw: its file's version, or a hash of its samples."""
    files = [f for f in getattr(raw, "filenames", ()) if f is not None]
    layout = {
        "ch_names": list(raw.ch_names),
        "ch_types": raw.get_channel_types(),
        "bads": list(raw.info["bads"]),
        "sfreq": float(raw.info["sfreq"]),
        "first_samp": int(raw.first_samp),
        "n_times": int(raw.n_times),
    }
    if files and Path(files[0]).exists():
        return {"source": source_fingerprint(files[0]), "layout": layout}
    digest = hashlib.sha256(np.ascontiguousarray(raw.get_data()).tobytes()).hexdigest()
    return {"data_sha256": digest, "layout": layout}


def cached_preprocess(
    path_or_raw,
    cache: RecordingCache,
    config: PreprocessConfig = PreprocessConfig(),
    *,
    reader: Callable | None = None,
    positions=None,
) -> CacheEntry:
    """Preprocess a file or Raw once; later calls read the cached entry.

    Parameters
    ----------
    path_or_raw : str | os.PathLike | mne.io.BaseRaw
        A recording file (read with ``reader(path)``, default
        ``mne.io.read_raw(path, preload=False)``) or a Raw.
    cache : RecordingCache
    config : PreprocessConfig
    reader : callable | None
        ``reader(path) -> mne.io.BaseRaw``, e.g. one that sets channel types. Its
        qualified name is part of the key; change the name when you change what it does.
    positions : dict | None
        Explicit channel positions (see :func:`preprocess`); part of the key.

    Returns
    -------
    CacheEntry
    """
    import mne

    fingerprint = {"preprocess_hash": config.hash(), "positions": positions}
    if isinstance(path_or_raw, mne.io.BaseRaw):
        raw = path_or_raw
        fingerprint.update(_raw_fingerprint(raw))
        key = str(fingerprint.get("source", {}).get("path", "<raw>"))

        def build():
            return preprocess(raw, config, positions=positions)
    else:
        path = Path(path_or_raw).resolve()
        fingerprint["source"] = source_fingerprint(path)
        if reader is not None:
            fingerprint["reader"] = f"{getattr(reader, '__module__', '')}.{getattr(reader, '__qualname__', repr(reader))}"
        key = str(path)

        def build():
            raw = reader(path) if reader is not None else mne.io.read_raw(path, preload=False, verbose=False)
            return preprocess(raw, config, positions=positions, source_name=str(path))

    return cache.get_or_create(key, fingerprint, build)
