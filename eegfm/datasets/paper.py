"""Loaders for the licensed datasets named by the paper (SEED-DV, SEED, FACED), read from a local copy.

Nothing is downloaded: each loader takes ``root``, the folder of the official release, and
yields :class:`~eegfm.data.Recording` objects (or :class:`SeedDVClip` segments). Signals are
assumed to be in microvolts, as in the preprocessed releases; ``unit_scale`` multiplies them
otherwise (e.g. ``1e6`` for volts). Layout, file-name, subject and ``ch_names`` errors are
raised when a loader is called. A file that cannot be read (truncated, corrupt, the wrong
shape, an unsafe pickle) is yielded as a :class:`~eegfm.data.RecordingSource` whose ``load()``
raises that error naming the file, so :class:`~eegfm.data.EEGCorpus` skips and counts it and
reads the other files (``on_error="raise"`` raises it); ``seed_dv_clips`` raises it. Files are
read one at a time, SEED-DV through a memory map, one block at a time.

Layouts
-------
SEED-DV (``load_seed_dv``, ``seed_dv_clips``)
    ``root/EEG/sub<N>.npy`` or ``root/EEG/sub<N>_session<K>.npy``, each a float array of shape
    (7 blocks, 62 channels, 104000 samples) at 200 Hz, channels in :data:`SEED_CHANNELS` order.
    A block is 40 concept slots of 13 s: a 3 s hint then 5 video clips of 2 s (520 s).
    ``root/meta_info/All_video_label.npy``, shape (7, 40), gives the concept class of every
    slot of every block (the order differs per block). Blocks 1-6 are the paper's training
    split, block 7 its test split.
SEED (``load_seed``)
    ``root/Preprocessed_EEG/<subject>_<yyyymmdd>.mat`` (one file per session), each holding 15
    trials of shape (62, T) under keys ``<prefix>_eeg1`` .. ``<prefix>_eeg15`` (the prefix
    varies per subject), 200 Hz; optional ``root/Preprocessed_EEG/label.mat`` with key
    ``label``, shape (1, 15), values -1 (negative), 0 (neutral), 1 (positive).
FACED (``load_faced``)
    ``root/Processed_data/sub000.pkl`` .. ``sub122.pkl``, each a pickled array of shape
    (28 trials, 32 channels, 7500 samples) at 250 Hz. The release has no label file, so no
    labels are attached. Only the (trials, channels) dimensions are checked; the number of
    samples is free.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.recording import Recording
from ..data.sources import RecordingSource

__all__ = [
    "FACED_CHANNELS",
    "SEED_CHANNELS",
    "SeedDVClip",
    "UnsafePickleError",
    "load_faced",
    "load_seed",
    "load_seed_dv",
    "seed_dv_clip_onset",
    "seed_dv_clips",
]

#: The 62 channels of the SEED family (SEED, SEED-DV), in file row order.
SEED_CHANNELS = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 "
    "T7 C5 C3 C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 P6 "
    "P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2"
).split()

#: Assumed order of FACED's 32 channels. ``Processed_data`` documents no channel order, and
#: the raw release came in two batches with different orders (the first runs
#: ... C4, T3, T4, A1, A2, CP1 ...), so this default is an assumption: pass ``ch_names`` to
#: :func:`load_faced` to override it.
FACED_CHANNELS = (
    "FP1 FP2 FZ F3 F4 F7 F8 FC1 FC2 FC5 FC6 CZ C3 C4 T7 T8 CP1 CP2 CP5 CP6 PZ P3 P4 P7 P8 "
    "PO3 PO4 OZ O1 O2 A2 A1"
).split()

SEED_DV_SFREQ, SEED_DV_BLOCKS, SEED_DV_CONCEPTS, SEED_DV_CLIPS = 200.0, 7, 40, 5
SEED_DV_HINT_SECONDS, SEED_DV_CLIP_SECONDS = 3, 2
SEED_DV_SLOT_SECONDS = SEED_DV_HINT_SECONDS + SEED_DV_CLIPS * SEED_DV_CLIP_SECONDS  # 13
SEED_DV_BLOCK_SAMPLES = int(SEED_DV_CONCEPTS * SEED_DV_SLOT_SECONDS * SEED_DV_SFREQ)  # 104000
SEED_DV_TEST_BLOCKS = (7,)
SEED_SFREQ, SEED_TRIALS = 200.0, 15
FACED_SFREQ, FACED_TRIALS = 250.0, 28
_SEED_EMOTIONS = {-1: "negative", 0: "neutral", 1: "positive"}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than numpy array reconstruction."""


@dataclass
class SeedDVClip:
    """One 2-s SEED-DV segment aligned to a video clip.

    ``data`` has shape (62, 400), float32, in microvolts. ``subject`` and ``session`` come
    from the file name (session 1 without ``_sessionN``); ``block`` is 1-based (1..7),
    ``slot`` 0-based (0..39), ``clip`` 0-based (0..4). ``label`` is the raw class id of
    ``All_video_label.npy``; ``concept`` its 0-based index (``label - 1`` when the file is
    1-based, i.e. its minimum is 1). ``split`` is "train" (blocks 1-6) or "test" (block 7);
    ``source`` is ``path#block{b}/slot{j}/clip{i}``.
    """

    data: np.ndarray
    subject: int
    session: int
    block: int
    slot: int
    label: int
    concept: int
    clip: int
    split: str
    source: str


# ----------------------------------------------------------------------------- helpers


def _folder(root, sub: str, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist; expected layout: {layout}")
    folder = root / sub
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; expected layout: {layout}")
    return folder


def _files(folder: Path, pattern: str, regex: str, subjects, exclude=()) -> list[tuple[Path, re.Match]]:
    """Files of ``folder`` matching ``pattern``, parsed by ``regex`` (group 1 = subject)."""
    wanted = None if subjects is None else {int(s) for s in subjects}
    out = []
    for path in sorted(folder.glob(pattern)):
        if path.name in exclude:
            continue
        m = re.fullmatch(regex, path.name)
        if m is None:
            raise ValueError(f"{path}: unexpected file name; expected names matching {regex!r}")
        if wanted is None or int(m.group(1)) in wanted:
            out.append((path, m))
    if not out:
        which = "" if wanted is None else f" for subjects {sorted(wanted)}"
        raise FileNotFoundError(f"no files matching {folder / pattern}{which}")
    return out


def _check_ch_names(ch_names, n_channels: int, where: str) -> list[str]:
    names = [str(c) for c in ch_names]
    if len(names) != n_channels:
        raise ValueError(f"{where}: ch_names has {len(names)} names for {n_channels} channels")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: ch_names has duplicates")
    return names


def _read(path: Path, reader):
    """``reader(path)``, re-raising any failure as a ValueError that names the file."""
    try:
        return reader(path)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - wrapped with the file name
        raise ValueError(
            f"{path}: cannot read ({type(exc).__name__}: {exc}); is it truncated or corrupt?"
        ) from exc


def _unreadable(path: Path, err: Exception):
    """A source for a file that cannot be read: a corpus skips and counts it by name (or raises
    it under ``on_error="raise"``) and goes on with the other files."""
    def load():
        raise err

    return RecordingSource(str(path), load, {"unreadable": str(path), "error": str(err)}, {"file": path.name})


def _scaled(x, unit_scale: float) -> np.ndarray:
    out = np.asarray(x, dtype=np.float32)
    if unit_scale != 1.0:
        out = out * np.float32(unit_scale)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------- SEED-DV

_SEED_DV_LAYOUT = "root/EEG/sub<N>[_session<K>].npy, each (7, 62, 104000) at 200 Hz"
_SEED_DV_REGEX = r"sub(\d+)(?:_session(\d+))?\.npy"


def _seed_dv_arrays(root, subjects, ch_names):
    folder = _folder(root, "EEG", _SEED_DV_LAYOUT)
    names = _check_ch_names(ch_names, len(SEED_CHANNELS), "SEED-DV")
    expected = (SEED_DV_BLOCKS, len(SEED_CHANNELS), SEED_DV_BLOCK_SAMPLES)
    entries = []
    for path, m in _files(folder, "sub*.npy", _SEED_DV_REGEX, subjects):
        subject, session = int(m.group(1)), int(m.group(2) or 1)
        entries.append((subject, session, path))
    entries.sort()

    def arrays():
        for subject, session, path in entries:
            try:
                arr = _read(path, lambda p: np.load(p, mmap_mode="r"))
                if tuple(arr.shape) != expected:
                    raise ValueError(f"{path}: shape {tuple(arr.shape)}, expected {expected}")
            except (ValueError, pickle.UnpicklingError) as err:
                arr = err  # the caller decides: skip (corpus) or raise
            yield subject, session, path, arr

    return names, arrays()


def load_seed_dv(root, subjects: Iterable[int] | None = None,
                 ch_names: Sequence[str] = SEED_CHANNELS, unit_scale: float = 1.0) -> Iterator[Recording]:
    """SEED-DV, one :class:`Recording` per block.

    Parameters
    ----------
    root : str | Path
        The SEED-DV folder (holding ``EEG/``).
    subjects : iterable of int | None
        Subject numbers to keep (``sub3.npy`` is subject 3); None keeps all.
    ch_names : sequence of str, length 62
        Row names of every block.
    unit_scale : float
        Factor from file units to microvolts.

    Returns
    -------
    Iterator[Recording]
        Each ``data`` of shape (62, 104000), float32, at 200 Hz; source ``path#block{b}``;
        metadata ``dataset, subject, session, block`` (block 1-based) and ``split``.

    Raises
    ------
    FileNotFoundError
        Missing folder, or no ``EEG/sub*.npy`` (for the requested subjects).
    ValueError
        A file of the wrong shape, unreadable, or ``ch_names`` not of length 62.
    """
    names, arrays = _seed_dv_arrays(root, subjects, ch_names)  # checks the layout now

    def recordings():
        for subject, session, path, arr in arrays:
            if isinstance(arr, Exception):
                yield _unreadable(path, arr)
                continue
            for b in range(SEED_DV_BLOCKS):
                block = b + 1
                data = _read(path, lambda p: _scaled(arr[b], unit_scale))  # one block in memory
                meta = {"dataset": "SEED-DV", "subject": subject, "session": session,
                        "block": block, "split": "test" if block in SEED_DV_TEST_BLOCKS else "train"}
                yield Recording(data, list(names), SEED_DV_SFREQ, f"{path}#block{block}", meta)

    return recordings()


def seed_dv_clip_onset(slot: int, clip: int) -> int:
    """First sample of clip ``clip`` (0..4) of concept slot ``slot`` (0..39) within a block.

    Returns
    -------
    int
        ``(13 * slot + 3 + 2 * clip) * 200``.
    """
    if not (0 <= slot < SEED_DV_CONCEPTS and 0 <= clip < SEED_DV_CLIPS):
        raise ValueError(f"slot must be in [0, {SEED_DV_CONCEPTS}) and clip in [0, {SEED_DV_CLIPS})")
    seconds = slot * SEED_DV_SLOT_SECONDS + SEED_DV_HINT_SECONDS + clip * SEED_DV_CLIP_SECONDS
    return int(round(seconds * SEED_DV_SFREQ))


def _seed_dv_labels(root) -> tuple[np.ndarray, int]:
    folder = _folder(root, "meta_info", "root/meta_info/All_video_label.npy, shape (7, 40)")
    path = folder / "All_video_label.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected shape (7, 40) of concept ids")
    labels = _read(path, np.load)
    expected = (SEED_DV_BLOCKS, SEED_DV_CONCEPTS)
    if labels.shape != expected:
        raise ValueError(f"{path}: shape {labels.shape}, expected {expected}")
    labels = labels.astype(np.int64)
    offset = int(labels.min())
    if offset not in (0, 1) or int(labels.max()) - offset >= SEED_DV_CONCEPTS:
        raise ValueError(f"{path}: concept ids must be 0..39 or 1..40, got {labels.min()}..{labels.max()}")
    return labels, offset


def seed_dv_clips(root, subjects: Iterable[int] | None = None, ch_names: Sequence[str] = SEED_CHANNELS,
                  split: str | None = None, unit_scale: float = 1.0) -> Iterator[SeedDVClip]:
    """SEED-DV 2-s segments aligned to the video clips (1400 per subject and session).

    Within slot ``j`` of a block, the hint spans [13 j, 13 j + 3) s and clip ``i`` spans
    [13 j + 3 + 2 i, 13 j + 5 + 2 i) s. The concept of slot ``j`` of block ``b`` is
    ``All_video_label.npy[b - 1, j]``, kept raw as ``label``; ``concept`` is its 0-based
    index (the file is taken as 1-based when its minimum is 1, 0-based when it is 0).

    Parameters
    ----------
    root : str | Path
        The SEED-DV folder (holding ``EEG/`` and ``meta_info/``).
    subjects : iterable of int | None
        Subject numbers to keep; None keeps all.
    ch_names : sequence of str, length 62
        Only checked here (clips carry no names); the rows follow :data:`SEED_CHANNELS`.
    split : {"train", "test"} | None
        The paper's split: blocks 1-6 are "train" (1200 clips), block 7 "test" (200 clips);
        None yields both.
    unit_scale : float
        Factor from file units to microvolts.

    Returns
    -------
    Iterator[SeedDVClip]
        Each ``data`` of shape (62, 400), float32, in block, slot, clip order.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_seed_dv`, plus a missing or malformed ``All_video_label.npy``.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f'split must be "train", "test" or None, got {split!r}')
    labels, offset = _seed_dv_labels(root)
    _, arrays = _seed_dv_arrays(root, subjects, ch_names)
    n = int(round(SEED_DV_CLIP_SECONDS * SEED_DV_SFREQ))

    def clips():
        for subject, session, path, arr in arrays:
            if isinstance(arr, Exception):  # clips feed a training set directly: a bad file is an error
                raise arr
            for b in range(SEED_DV_BLOCKS):
                block = b + 1
                block_split = "test" if block in SEED_DV_TEST_BLOCKS else "train"
                if split is not None and split != block_split:
                    continue
                data = _read(path, lambda p: _scaled(arr[b], unit_scale))
                for j in range(SEED_DV_CONCEPTS):
                    label = int(labels[b, j])
                    for i in range(SEED_DV_CLIPS):
                        start = seed_dv_clip_onset(j, i)
                        yield SeedDVClip(data[:, start:start + n].copy(), subject, session, block,
                                         j, label, label - offset, i, block_split,
                                         f"{path}#block{block}/slot{j}/clip{i}")

    return clips()


# ----------------------------------------------------------------------------- SEED

_SEED_LAYOUT = "root/Preprocessed_EEG/<subject>_<yyyymmdd>.mat with keys <prefix>_eeg1..15, (62, T) each"


def _seed_labels(folder: Path):
    path = folder / "label.mat"
    if not path.is_file():
        return None
    import scipy.io

    mat = _read(path, scipy.io.loadmat)
    if "label" not in mat or np.asarray(mat["label"]).size != SEED_TRIALS:
        raise ValueError(f"{path}: expected key 'label' with {SEED_TRIALS} values")
    return [int(v) for v in np.asarray(mat["label"]).ravel()]


def load_seed(root, subjects: Iterable[int] | None = None, ch_names: Sequence[str] = SEED_CHANNELS,
              unit_scale: float = 1.0) -> Iterator[Recording]:
    """SEED, one :class:`Recording` per trial (15 per session file).

    Parameters
    ----------
    root : str | Path
        The SEED folder (holding ``Preprocessed_EEG/``).
    subjects : iterable of int | None
        Subject numbers to keep (``3_20140603.mat`` is subject 3); None keeps all.
    ch_names : sequence of str
        Row names of every trial; its length must match the files (62).
    unit_scale : float
        Factor from file units to microvolts.

    Returns
    -------
    Iterator[Recording]
        Each ``data`` of shape (62, T), float32, at 200 Hz; source ``path#trial{k}``; metadata
        ``dataset, subject, session`` (1-based rank of the date among the subject's files),
        ``date, trial`` (1..15) and, with ``label.mat``, ``label`` (-1/0/1) and ``emotion``.

    Raises
    ------
    FileNotFoundError
        Missing folder, or no ``*.mat`` besides ``label.mat`` (for the requested subjects).
    ValueError
        Unreadable files, missing ``_eeg1``..``_eeg15`` keys, wrong shapes, bad ``ch_names``.
    """
    import scipy.io

    folder = _folder(root, "Preprocessed_EEG", _SEED_LAYOUT)
    names = _check_ch_names(ch_names, len(SEED_CHANNELS), "SEED")
    entries = _files(folder, "*.mat", r"(\d+)_(\d+)\.mat", subjects, exclude=("label.mat",))
    labels = _seed_labels(folder)
    dates: dict[int, list[str]] = {}
    for _, m in entries:
        dates.setdefault(int(m.group(1)), []).append(m.group(2))
    entries.sort(key=lambda e: (int(e[1].group(1)), e[1].group(2)))

    def recordings():
        for path, m in entries:
            subject, date = int(m.group(1)), m.group(2)
            try:
                mat = _read(path, scipy.io.loadmat)
            except ValueError as err:  # skipped and counted by a corpus
                yield _unreadable(path, err)
                continue
            trials = {}
            for key in mat:
                k = re.fullmatch(r".+_eeg(\d+)", key)
                if k:
                    trials[int(k.group(1))] = key
            if sorted(trials) != list(range(1, SEED_TRIALS + 1)):
                raise ValueError(f"{path}: expected keys <prefix>_eeg1..<prefix>_eeg{SEED_TRIALS}, "
                                 f"found {sorted(trials.values())}")
            for t in range(1, SEED_TRIALS + 1):
                x = np.asarray(mat[trials[t]])
                if x.ndim != 2 or x.shape[0] != len(names):
                    raise ValueError(f"{path}: {trials[t]} has shape {x.shape}, expected "
                                     f"({len(names)}, T)")
                meta = {"dataset": "SEED", "subject": subject,
                        "session": sorted(dates[subject]).index(date) + 1, "date": date, "trial": t}
                if labels is not None:
                    meta["label"] = labels[t - 1]
                    meta["emotion"] = _SEED_EMOTIONS.get(labels[t - 1], str(labels[t - 1]))
                yield Recording(_scaled(x, unit_scale), list(names), SEED_SFREQ, f"{path}#trial{t}", meta)

    return recordings()


# ----------------------------------------------------------------------------- FACED


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a pickled numpy array needs, found by introspection (no imports
    of deprecated ``numpy.core``), under both numpy 1.x and 2.x module names."""
    objs = {
        "_reconstruct": np.zeros(1).__reduce__()[0],
        "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
        "scalar": np.float32(0).__reduce__()[0],
    }
    import _codecs  # protocols 0-2 store bytes through _codecs.encode (runs no code)

    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for name, obj in objs.items():
        for pkg in ("numpy.core", "numpy._core"):
            for mod in ("multiarray", "numeric"):
                allowed[(f"{pkg}.{mod}", name)] = obj
    return allowed


class _NumpyUnpickler(pickle.Unpickler):
    _allowed = _numpy_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load global {module}.{name}: only numpy arrays may be unpickled"
            ) from None


def _load_pickle(path: Path):
    with open(path, "rb") as f:
        return _NumpyUnpickler(f).load()


def load_faced(root, subjects: Iterable[int] | None = None, ch_names: Sequence[str] = FACED_CHANNELS,
               unit_scale: float = 1.0) -> Iterator[Recording]:
    """FACED ``Processed_data``, one :class:`Recording` per trial (28 per subject).

    Pickle can execute arbitrary code: load only local copies of the official release.
    Files are read by a restricted unpickler that allows numpy array reconstruction and
    nothing else (anything else raises :class:`UnsafePickleError`).

    Parameters
    ----------
    root : str | Path
        The FACED folder (holding ``Processed_data/``).
    subjects : iterable of int | None
        Subject numbers to keep (``sub007.pkl`` is subject 7); None keeps all.
    ch_names : sequence of str
        Row names, default :data:`FACED_CHANNELS`. ``Processed_data`` documents no channel
        order and the raw release came in two batches with different orders, so the default
        is an assumption; pass the right order here if you know it.
    unit_scale : float
        Factor from file units to microvolts.

    Returns
    -------
    Iterator[Recording]
        Each ``data`` of shape (32, T), float32 (T = 7500 in the release; not checked), at
        250 Hz; source ``path#trial{k}``; metadata ``dataset, subject, trial`` (1..28).

    Raises
    ------
    FileNotFoundError
        Missing folder, or no ``sub*.pkl`` (for the requested subjects).
    UnsafePickleError
        A pickle referring to anything but numpy array reconstruction.
    ValueError
        Unreadable files, arrays not of shape (28, len(ch_names), T).
    """
    folder = _folder(root, "Processed_data", "root/Processed_data/sub000.pkl..sub122.pkl, (28, 32, 7500) each")
    names = _check_ch_names(ch_names, len(ch_names), "FACED")  # checked against each file below
    entries = _files(folder, "sub*.pkl", r"sub(\d+)\.pkl", subjects)

    def recordings():
        for path, m in entries:
            subject = int(m.group(1))
            try:
                x = _read(path, _load_pickle)
                if not isinstance(x, np.ndarray):
                    raise ValueError(f"{path}: expected a numpy array, got {type(x).__name__}")
                if x.ndim != 3 or x.shape[0] != FACED_TRIALS:
                    raise ValueError(f"{path}: shape {x.shape}, expected ({FACED_TRIALS}, 32, 7500)")
            except (ValueError, pickle.UnpicklingError) as err:  # skipped and counted by a corpus
                yield _unreadable(path, err)
                continue
            if x.shape[1] != len(names):
                raise ValueError(f"{path}: ch_names has {len(names)} names for {x.shape[1]} channels")
            for t in range(FACED_TRIALS):
                meta = {"dataset": "FACED", "subject": subject, "trial": t + 1}
                yield Recording(_scaled(x[t], unit_scale), list(names), FACED_SFREQ,
                                f"{path}#trial{t + 1}", meta)

    return recordings()
