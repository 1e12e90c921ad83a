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
- the paper's SEED-DV, SEED and FACED releases (:mod:`eegfm.data.paper_datasets`).

Channel types: many files type every channel ``eeg``. :func:`infer_channel_types` retypes
channels whose names say otherwise (``EOG1``, ``HEOG``, ``ECG``, ``EMG``, ``A2-A1``, ...) so
that "EEG channels only" means what it says; pass ``channel_types=`` to override.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mne

from .recording import Recording

__all__ = [
    "RecordingSource",
    "file_fingerprint",
    "from_bids",
    "from_braindecode",
    "from_files",
    "from_moabb",
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
    if key is None:
        key = files[0] if files else None
    if key is None:
        import hashlib

        import numpy as np

        digest = hashlib.sha256(np.ascontiguousarray(raw.get_data()).tobytes())
        digest.update(repr((raw.ch_names, raw.info["sfreq"])).encode())
        key = f"raw:{digest.hexdigest()[:16]}"
    fingerprint = file_fingerprint(*files) if files else {"key": key}
    return RecordingSource(key, lambda: infer_channel_types(raw.copy(), channel_types), fingerprint,
                           dict(metadata or {}))


def _read_file(path: str, channel_types: dict | None):
    raw = mne.io.read_raw(path, preload=False, verbose="error")
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
