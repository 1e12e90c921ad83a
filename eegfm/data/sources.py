"""Where recordings come from: any EEG source as a list of lazily loaded ``RecordingSource``.

A :class:`RecordingSource` names one recording (``key``), says what would make a cached copy
stale (``fingerprint``: the files' sizes and modification times) and loads it on demand
(``load()`` returns an ``mne.io.BaseRaw`` or a :class:`~eegfm.data.recording.Recording`).
Nothing is read until the preprocessed cache needs it, so listing a corpus is cheap.

Supported:

- any ``mne.io.BaseRaw`` in memory (:func:`from_raw`);
- any file MNE reads, EDF/BDF/FIF/BrainVision/EEGLAB ``.set``/... (:func:`from_files`);
- BIDS datasets through mne-bids (:func:`from_bids`);
- MOABB datasets, offline from a local MNE data path (:func:`from_moabb`);
- braindecode ``BaseConcatDataset`` (raw or windows datasets, :func:`from_braindecode`);
- OpenBCI GUI text recordings (:func:`from_openbci`) and ARFF tables (:func:`from_arff`),
  read by :mod:`eegfm.data.text_formats`;
- PhysioNet EEG Motor Movement/Imagery EDF files already on disk in MNE's ``eegbci`` layout
  (:func:`from_eegbci`; never downloads);
- the paper's SEED-DV, SEED and FACED releases (:mod:`eegfm.datasets.paper`).

Channel types: many files type every channel ``eeg``. :func:`infer_channel_types` retypes
channels whose names say otherwise (``EOG1``, ``HEOG``, ``ECG``, ``EMG``, ``A2-A1``, ...) so
that "EEG channels only" means what it says; pass ``channel_types=`` to override.
"""

from __future__ import annotations

import operator
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mne

from ..montage import DuplicateChannelError
from .recording import Recording
from .text_formats import read_arff, read_openbci_txt

__all__ = [
    "RecordingSource",
    "file_fingerprint",
    "from_bids",
    "from_arff",
    "from_braindecode",
    "from_eegbci",
    "from_files",
    "from_moabb",
    "from_openbci",
    "from_raw",
    "infer_channel_types",
]

_TYPE_PATTERNS = [
    (re.compile(r"^(EEG[ _-]?)?([HV]?EOG|LOC|ROC)(?![A-Za-z])", re.I), "eog"),
    (re.compile(r"^(EEG[ _-]?)?(ECG|EKG)(?![A-Za-z])", re.I), "ecg"),
    (re.compile(r"^(EEG[ _-]?)?EMG(?![A-Za-z])", re.I), "emg"),
    (re.compile(r"^(STI|TRIG|STATUS|EVENT)", re.I), "stim"),
    (re.compile(r"^(EEG[ _-]?)?\w+-\w+$"), "misc"),  # bipolar derivations such as "A2-A1"
]
_REFERENCE_SUFFIX = re.compile(r"-(REF|LE|AR|AVG|CAR)$", re.I)


@dataclass
class RecordingSource:
    """One recording, loaded on demand.

    Attributes
    ----------
    key : str
        Stable identifier (absolute file path, optionally ``#part``); names it in messages.
    load : callable
        ``load() -> mne.io.BaseRaw | Recording``.
    fingerprint : dict
        JSON-safe values that change when the recording changes (file sizes, mtimes).
    metadata : dict
        JSON-safe extras carried into the cache (dataset, subject, session, run, task...).
    """

    key: str
    load: Callable[[], object]
    fingerprint: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def file_fingerprint(*paths) -> dict:
    """Sizes and modification times (ns) of files; what makes a cached copy stale."""
    out = {}
    for path in paths:
        stat = os.stat(path)
        out[str(Path(path).resolve())] = [stat.st_size, stat.st_mtime_ns]
    return out


def infer_channel_types(raw: mne.io.BaseRaw, channel_types: dict | None = None) -> mne.io.BaseRaw:
    """Retype channels typed ``eeg`` whose names say they are not EEG (in place).

    Parameters
    ----------
    raw : mne.io.BaseRaw
    channel_types : dict, optional
        Explicit ``{name: type}``; applied last, so it wins.

    Returns
    -------
    raw : the same object.
    """
    kinds = dict(zip(raw.ch_names, raw.get_channel_types()))
    mapping = {}
    for name, kind in kinds.items():
        if kind != "eeg":
            continue
        bare = _REFERENCE_SUFFIX.sub("", name.strip())
        for pattern, new in _TYPE_PATTERNS:
            if pattern.search(bare):
                mapping[name] = new
                break
    mapping.update(channel_types or {})
    if mapping:
        raw.set_channel_types(mapping, on_unit_change="ignore", verbose=False)
    return raw


def _raw_files(raw: mne.io.BaseRaw) -> list[str]:
    return [str(f) for f in (getattr(raw, "filenames", None) or []) if f is not None and os.path.exists(f)]


def from_raw(raw: mne.io.BaseRaw, *, key: str | None = None, metadata: dict | None = None,
             channel_types: dict | None = None) -> RecordingSource:
    """Wrap an in-memory ``mne.io.Raw``.

    The cache key is the raw's file (if it was read from one) or ``key``; an in-memory raw
    with neither is fingerprinted by a hash of its data, channels and rate.
    """
    files = _raw_files(raw)
    layout = raw_layout_digest(raw)
    content = None
    if raw.preload or not files:  # in memory: maybe cropped, re-referenced or rescaled since it was read
        content = content_digest(raw.get_data(), layout)
    if key is None:
        key = files[0] if files else f"raw:{content[:16]}"
    fingerprint = {**(file_fingerprint(*files) if files else {"key": key}), "layout": layout}
    if content is not None:
        fingerprint["content"] = content
    return RecordingSource(key, lambda: infer_channel_types(raw.copy(), channel_types), fingerprint,
                           dict(metadata or {}))


def content_digest(data, *parts) -> str:
    """sha256 (hex) of an array's bytes, dtype and shape, and of ``parts`` (their repr)."""
    import hashlib

    import numpy as np

    array = np.ascontiguousarray(data)
    digest = hashlib.sha256(f"{array.dtype}:{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    digest.update(repr(parts).encode())
    return digest.hexdigest()


def raw_layout_digest(raw: mne.io.BaseRaw) -> str:
    """What a Raw holds besides its file: channels, types, positions, rate, time span, reference, projectors.

    A Raw read lazily from a file and then cropped, picked or re-montaged gets another digest.
    """
    import hashlib

    locs = [tuple(round(float(v), 9) for v in ch["loc"][:3]) for ch in raw.info["chs"]]
    parts = (raw.ch_names, raw.get_channel_types(), locs, float(raw.info["sfreq"]), int(raw.first_samp),
             int(raw.n_times), bool(raw.info["custom_ref_applied"]), [p["desc"] for p in raw.info["projs"]])
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class TruncatedFileError(OSError):
    """A recording file is shorter than its header says (a copy or a recording cut short)."""


def read_raw_checked(read: Callable, path: str, **kwargs) -> mne.io.BaseRaw:
    """``read(path, **kwargs)`` with MNE quiet, except for what must not pass silently.

    - MNE reads an EDF/BDF cut short as a shorter recording and only warns ("Number of records
      from the header does not match the file size"): here that is a :class:`TruncatedFileError`
      naming the file, so a corpus skips and counts it (or raises under ``on_error="raise"``).
    - MNE renames duplicate labels ``Fz``, ``Fz`` to ``Fz-0``, ``Fz-1`` and only warns (names
      that then read as bipolar derivations and would be dropped): here a
      :class:`~eegfm.DuplicateChannelError` naming the file.
    - A file MNE cannot read (e.g. "Bad EDF file provided.") raises the same error type with
      the file's path in front.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = read(path, verbose="warning", **kwargs)
    except (ValueError, RuntimeError) as err:
        if str(path) in str(err):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        kind = ValueError if isinstance(err, ValueError) else RuntimeError
        raise kind(f"{path}: cannot be read as EEG ({type(err).__name__}: {first})") from err
    for warning in caught:
        text = str(warning.message)
        if "does not match the file size" in text or "truncated" in text.lower():
            raise TruncatedFileError(f"{path}: the file is shorter than its header says (truncated?); "
                                     f"MNE: {text}")
        if "names are not unique" in text:
            raise DuplicateChannelError(f"{path}: two or more channels carry the same label; rename or drop the "
                                        f"duplicates (MNE: {text.splitlines()[0]})")
    return raw


def _read_file(path: str, channel_types: dict | None):
    raw = read_raw_checked(mne.io.read_raw, path, preload=False)
    return infer_channel_types(raw, channel_types)


def from_files(paths: Iterable, *, channel_types: dict | None = None, metadata: dict | None = None,
               reader: Callable[[str], mne.io.BaseRaw] | None = None) -> list[RecordingSource]:
    """One source per EEG file that MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB ``.set``, ...).

    Parameters
    ----------
    paths : iterable of str | Path
    channel_types : dict, optional
        ``{name: type}`` overrides, e.g. ``{"EOG1": "eog"}``.
    metadata : dict, optional
        Added to every source's metadata.
    reader : callable, optional
        ``reader(path) -> Raw`` replacing :func:`mne.io.read_raw`.
    """
    sources = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"EEG file {path} does not exist")
        extra = [path.with_suffix(".fdt")] if path.suffix == ".set" and path.with_suffix(".fdt").exists() else []
        load = (lambda p=str(path): infer_channel_types(reader(p), channel_types)) if reader else \
            (lambda p=str(path): _read_file(p, channel_types))
        sources.append(RecordingSource(str(path.resolve()), load, file_fingerprint(path, *extra),
                                       {"file": path.name, **(metadata or {})}))
    return sources


def from_bids(root, *, subjects: Sequence[str] | None = None, sessions: Sequence[str] | None = None,
              tasks: Sequence[str] | None = None, datatype: str = "eeg",
              extensions: Sequence[str] = (".edf", ".bdf", ".vhdr", ".set", ".fif")) -> list[RecordingSource]:
    """One source per EEG recording of a BIDS dataset (needs ``mne-bids``).

    Channel types come from the dataset's ``channels.tsv`` (mne-bids reads it).
    """
    try:
        from mne_bids import find_matching_paths, read_raw_bids
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("from_bids needs mne-bids: pip install 'eegfm[data]'") from err
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BIDS root {root} does not exist")
    paths = find_matching_paths(root, subjects=subjects, sessions=sessions, tasks=tasks, datatypes=datatype,
                                suffixes=datatype, extensions=list(extensions))
    if not paths:
        raise FileNotFoundError(
            f"no {datatype} recordings in BIDS root {root} matching subjects={subjects}, tasks={tasks}, "
            f"sessions={sessions}, extensions={list(extensions)}"
        )
    sources = []
    for bids_path in sorted(paths, key=str):
        def load(bp=bids_path):
            return infer_channel_types(read_raw_bids(bp, verbose="error"))
        channels_tsv = bids_path.copy().update(suffix="channels", extension=".tsv").fpath
        sidecars = [channels_tsv] if channels_tsv.exists() else []
        meta = {"dataset": root.name, "subject": bids_path.subject, "session": bids_path.session,
                "task": bids_path.task, "run": bids_path.run}
        sources.append(RecordingSource(str(bids_path.fpath.resolve()), load,
                                       file_fingerprint(bids_path.fpath, *sidecars), meta))
    return sources


def from_moabb(dataset, subjects: Sequence[int] | None = None) -> list[RecordingSource]:
    """One source per run of a MOABB dataset (``dataset.get_data``; offline if the files are local).

    For PhysioNet MI offline, set ``MNE_DATASETS_EEGBCI_PATH`` to the folder holding
    ``MNE-eegbci-data`` and ``MOABB_DOWNLOAD_PROVIDER=upstream``.
    """
    subjects = list(subjects) if subjects is not None else list(dataset.subject_list)
    data = dataset.get_data(subjects=subjects)
    sources = []
    for subject, sessions in data.items():
        for session, runs in sessions.items():
            for run, raw in runs.items():
                key = f"moabb:{dataset.code}:{subject}:{session}:{run}"
                files = _raw_files(raw)
                meta = {"dataset": dataset.code, "subject": int(subject), "session": str(session), "run": str(run)}
                sources.append(RecordingSource(
                    key, lambda r=raw: infer_channel_types(r.copy()),
                    file_fingerprint(*files) if files else {"key": key}, meta,
                ))
    return sources


def from_braindecode(concat_dataset) -> list[RecordingSource]:
    """One source per dataset of a braindecode ``BaseConcatDataset``.

    Raw datasets (``MOABBDataset``, ``BIDSDataset``, ...) and windows datasets built on a raw
    (``create_fixed_length_windows``/``create_windows_from_events``) give their continuous
    raw: eegfm cuts its own windows. Epochs-based windows datasets give their epochs
    concatenated in time as one :class:`Recording`.
    """
    sources = []
    description = getattr(concat_dataset, "description", None)
    for i, ds in enumerate(concat_dataset.datasets):
        meta = {}
        if description is not None:
            meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in description.iloc[i].to_dict().items()}
            meta = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in meta.items()}
        if getattr(ds, "raw", None) is not None:
            src = from_raw(ds.raw, metadata=meta)
            if src.key.startswith("raw:") or any(s.key == src.key for s in sources):
                src.key = f"braindecode:{i}:{src.key}"
            sources.append(src)
        elif getattr(ds, "windows", None) is not None:
            def load(epochs=ds.windows):
                picks = mne.pick_types(epochs.info, eeg=True)
                data = epochs.get_data(picks=picks) * 1e6  # (n, C, T) µV
                names = [epochs.ch_names[p] for p in picks]
                return Recording(data.transpose(1, 0, 2).reshape(len(picks), -1).astype("float32"), names,
                                 float(epochs.info["sfreq"]), f"braindecode windows {i}")
            files = _raw_files(ds.windows)
            sources.append(RecordingSource(f"braindecode:{i}:windows", load,
                                           file_fingerprint(*files) if files else {"n": len(ds.windows)}, meta))
        else:
            raise TypeError(f"concat_dataset.datasets[{i}] ({type(ds).__name__}) has neither .raw nor .windows")
    return sources


def _file_list(paths, what: str) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = [Path(p) for p in paths]
    for path in out:
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
    return out


def from_openbci(paths, ch_names: Sequence[str] | None = None, *, channel_types: dict | None = None,
                 metadata: dict | None = None) -> list[RecordingSource]:
    """One source per OpenBCI GUI text recording (:func:`~eegfm.data.text_formats.read_openbci_txt`).

    Parameters
    ----------
    paths : str | Path | iterable of str | Path
        The GUI's ``.txt`` files.
    ch_names : sequence of str, optional
        Electrode site of each EXG column, in order (the file does not record them). Without
        it the channels are ``EXG0``.. and have no scalp position, so :class:`EEGCorpus`
        skips the recording with an "unknown channel" reason unless it gets ``positions=``.
    channel_types : dict, optional
        ``{name: type}`` overrides (after :func:`infer_channel_types`).
    metadata : dict, optional
        Added to every source's metadata (which starts as ``{"file": name}``).
    """
    names = list(ch_names) if ch_names is not None else None
    sources = []
    for path in _file_list(paths, "OpenBCI"):
        def load(p=str(path)):
            return infer_channel_types(read_openbci_txt(p, names), channel_types)
        fingerprint = {**file_fingerprint(path), "reader": {"format": "openbci", "ch_names": names}}
        sources.append(RecordingSource(str(path.resolve()), load, fingerprint,
                                       {"file": path.name, **(metadata or {})}))
    return sources


def from_arff(paths, sfreq: float, *, label_columns: Sequence[str] | None = None, scale: float = 1e-6,
              channel_types: dict | None = None, metadata: dict | None = None) -> list[RecordingSource]:
    """One source per ARFF table of EEG samples (:func:`~eegfm.data.text_formats.read_arff`).

    The label attributes (e.g. ``eyeDetection``) are not channels and are not loaded into the
    corpus; read them with :func:`~eegfm.data.text_formats.read_arff`, which returns them.

    Parameters
    ----------
    paths : str | Path | iterable of str | Path
        The ``.arff`` files.
    sfreq : float
        Sampling rate in Hz of every file (ARFF stores none; UCI "EEG Eye State": 128).
    label_columns : sequence of str, optional
        Attributes that are labels, not channels (default: names like ``eyeDetection``; see
        :func:`~eegfm.data.text_formats.read_arff`).
    scale : float
        Multiplies the values to give volts (default 1e-6: µV).
    channel_types : dict, optional
        ``{name: type}`` overrides (after :func:`infer_channel_types`).
    metadata : dict, optional
        Added to every source's metadata (which starts as ``{"file": name}``).
    """
    labels = list(label_columns) if label_columns is not None else None
    sources = []
    for path in _file_list(paths, "ARFF"):
        def load(p=str(path)):
            raw, _ = read_arff(p, sfreq=sfreq, label_columns=labels, scale=scale)
            return infer_channel_types(raw, channel_types)
        # the reading parameters change the signal, so they invalidate a cached copy too
        reader = {"format": "arff", "sfreq": float(sfreq), "scale": float(scale), "label_columns": labels}
        sources.append(RecordingSource(str(path.resolve()), load, {**file_fingerprint(path), "reader": reader},
                                       {"file": path.name, **(metadata or {})}))
    return sources


#: PhysioNet eegmmidb run number -> task (R01 eyes open, R02 eyes closed; then three rounds of
#: executed L/R fist, imagined L/R fist, executed fists/feet, imagined fists/feet).
EEGBCI_TASKS = {1: "baseline_open", 2: "baseline_closed",
                **{r: "motor_execution" for r in (3, 5, 7, 9, 11, 13)},
                **{r: "motor_imagery" for r in (4, 6, 8, 10, 12, 14)}}
_EEGBCI_LAYOUT = ("MNE-eegbci-data", "files", "eegmmidb", "1.0.0")
_EEGBCI_FILE = re.compile(r"^S(\d{3})R(\d{2})\.edf$")


def _numbers(name: str, values, top: int) -> list[int] | None:
    if values is None:
        return None
    out = []
    for v in values:
        try:
            v = operator.index(v)  # int or numpy integer, not bool-like floats/strings
        except TypeError:
            v = None
        if v is None or isinstance(v, bool) or not 1 <= v <= top:
            raise ValueError(f"eegbci {name}s must be integers in 1-{top}, got {values!r}")
        out.append(v)
    return sorted(set(out))


def _read_eegbci(path: str) -> mne.io.BaseRaw:
    from mne.datasets import eegbci

    raw = read_raw_checked(mne.io.read_raw_edf, path, preload=False)
    eegbci.standardize(raw)  # "Fc5." -> "FC5", "Fp1." -> "Fp1" (MNE's own renaming)
    return infer_channel_types(raw)


def from_eegbci(root, subjects: Sequence[int] | None = None, runs: Sequence[int] | None = None
                ) -> list[RecordingSource]:
    """One source per PhysioNet EEG Motor Movement/Imagery (eegmmidb) EDF file present on disk.

    Finds ``ROOT/MNE-eegbci-data/files/eegmmidb/1.0.0/S###/S###R##.edf`` (the layout of
    ``mne.datasets.eegbci.load_data(..., path=ROOT)`` and MOABB's ``PhysionetMI``) by listing
    the folders; ``ROOT`` may also be that ``1.0.0`` folder itself. Nothing is downloaded.
    Channel names are standardised by ``mne.datasets.eegbci.standardize`` (``"Fc5."`` ->
    ``"FC5"``); every one has a ``standard_1005`` position.

    Parameters
    ----------
    root : str | Path
    subjects : sequence of int, optional
        Subject numbers (1-109); default: every subject present.
    runs : sequence of int, optional
        Run numbers (1-14); default: every run present.

    Returns
    -------
    list of RecordingSource
        Sorted by subject then run, each with metadata ``{"dataset": "eegbci", "subject": int,
        "run": int, "task": str}``; ``task`` is ``"baseline_open"`` (R01), ``"baseline_closed"``
        (R02), ``"motor_execution"`` (R03/05/07/09/11/13) or ``"motor_imagery"``
        (R04/06/08/10/12/14). Runs 3, 4, 7, 8, 11, 12 are left/right fist, runs 5, 6, 9, 10,
        13, 14 both fists/both feet.

    Raises
    ------
    FileNotFoundError
        No eegmmidb files under ``root``, a requested subject or run with no file, or (when
        both ``subjects`` and ``runs`` are given) any requested file missing, all listed.
    ValueError
        A subject outside 1-109 or a run outside 1-14.
    """
    root = Path(root).expanduser()
    folder = root.joinpath(*_EEGBCI_LAYOUT)
    if not folder.is_dir() and root.name == _EEGBCI_LAYOUT[-1] and root.is_dir():
        folder = root
    found = {}
    if folder.is_dir():
        for path in folder.glob("S[0-9][0-9][0-9]/S[0-9][0-9][0-9]R[0-9][0-9].edf"):
            m = _EEGBCI_FILE.match(path.name)
            if m and path.parent.name == path.name[:4]:
                found[int(m.group(1)), int(m.group(2))] = path
    if not found:
        raise FileNotFoundError(f"no eegmmidb EDF files (S###/S###R##.edf) in {folder}; eegfm never downloads: "
                                "fetch them with mne.datasets.eegbci.load_data(subject, runs, path=ROOT)")
    subjects = _numbers("subject", subjects, 109)
    runs = _numbers("run", runs, 14)
    if subjects is not None and runs is not None:
        missing = [f"S{s:03d}R{r:02d}" for s in subjects for r in runs if (s, r) not in found]
    else:
        missing = [f"subject {s}" for s in subjects or [] if not any(k[0] == s for k in found)]
        missing += [f"run {r}" for r in runs or [] if not any(k[1] == r for k in found)]
    if missing:
        raise FileNotFoundError(f"eegbci files not in {folder}: {', '.join(missing)} (eegfm never downloads)")
    sources = []
    for (subject, run), path in sorted(found.items()):
        if (subjects is not None and subject not in subjects) or (runs is not None and run not in runs):
            continue
        meta = {"dataset": "eegbci", "subject": subject, "run": run, "task": EEGBCI_TASKS[run]}
        fingerprint = {**file_fingerprint(path), "reader": {"format": "eegbci", "names": "standardize"}}
        sources.append(RecordingSource(str(path.resolve()), lambda p=str(path): _read_eegbci(p), fingerprint, meta))
    return sources
