"""Name EEG sources in one string, for the command line and configs.

Sources are separated by ``;``; each is ``kind:argument[:subjects]``:

=================================  ===========================================================
``sample``                         the real EEG excerpts bundled with eegfm
``files:GLOB``                     files MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB ``.set``)
``bids:ROOT[:02,03]``              a BIDS dataset (optionally some subjects), via mne-bids
``moabb:NAME[:1,2]``               a MOABB dataset class name (optionally some subjects)
``seed-dv:ROOT[:1,2]``             SEED-DV local copy (``EEG/sub*.npy``)
``seed:ROOT[:1,2]``                SEED local copy (``Preprocessed_EEG/*.mat``)
``faced:ROOT[:0,1]``               FACED local copy (``Processed_data/sub*.pkl``)
``eegbci:ROOT[:1-3,5[:4,8,12]]``   PhysioNet eegmmidb EDFs present under ``ROOT`` (MNE's
                                   ``MNE-eegbci-data/...`` layout), optionally some subjects
                                   and runs (lists and ``a-b`` ranges; ``ROOT::4,8,12`` for
                                   runs of every subject); never downloads
``openbci:GLOB[:Fp1,Fp2,...]``     OpenBCI GUI text files, optionally naming the EXG channels'
                                   sites in order (unnamed channels have no position)
``arff:GLOB:SFREQ``                ARFF tables of EEG samples at ``SFREQ`` Hz (required: ARFF
                                   stores no rate; UCI EEG Eye State is 128)
=================================  ===========================================================

Examples: ``eegbci:/data/eegbci:1,2,3:4,8,12``, ``openbci:/data/OpenBCI-RAW-*.txt``,
``arff:/data/uci_eeg_eye_state/*.arff:128``.
"""

from __future__ import annotations

import glob
from pathlib import Path

from .sources import from_arff, from_bids, from_eegbci, from_files, from_moabb, from_openbci, from_raw

__all__ = ["SOURCE_KINDS", "sources_from_spec"]

SOURCE_KINDS = ("sample", "files", "bids", "moabb", "seed-dv", "seed", "faced", "eegbci", "openbci", "arff")


def _subjects(text: str | None, cast):
    return [cast(s) for s in text.split(",") if s.strip()] if text else None


def _numbers(spec: str, what: str, text: str) -> list[int] | None:
    """``"1-3,5"`` -> ``[1, 2, 3, 5]``; empty -> None (all)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, dash, last = part.partition("-")
        try:
            lo, hi = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"source {spec!r}: {what} {part!r} is not a number or a range a-b") from None
        if hi < lo:
            raise ValueError(f"source {spec!r}: {what} range {part!r} is empty")
        out += range(lo, hi + 1)
    return out or None


def _glob(spec: str, pattern: str) -> list[str]:
    paths = sorted(glob.glob(str(Path(pattern).expanduser())))
    if not paths:
        raise FileNotFoundError(f"source {spec!r}: no files match {pattern!r}")
    folders = [p for p in paths if Path(p).is_dir()]
    if folders:
        raise IsADirectoryError(f"source {spec!r}: {pattern!r} matches the folder {folders[0]}; match files, "
                                f"e.g. {Path(folders[0]) / '*.edf'}")
    return paths


def _one(spec: str) -> list:
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "sample":
        from ..datasets import list_sample_recordings, load_sample
        from ..datasets.sample import _manifest

        def meta(name: str) -> dict:  # subject / task / run / label, for labels and cross-subject splits
            rec = _manifest()[name]
            extra = {k: rec[k] for k in ("subject", "task", "run", "label") if rec.get(k) is not None}
            return {"dataset": "eegfm-sample", "name": name, **extra}

        return [from_raw(raw, key=f"eegfm-sample:{name}", metadata=meta(name))
                for name, raw in zip(list_sample_recordings(), load_sample(verbose=False))]
    if not rest:
        raise ValueError(f"source {spec!r} needs an argument: {kind}:PATH (kinds: {', '.join(SOURCE_KINDS)})")
    if kind == "files":
        return from_files(_glob(spec, rest))
    if kind == "arff":
        pattern, _, rate = rest.rpartition(":")
        try:
            sfreq = float(rate) if pattern else None
        except ValueError:
            sfreq = None
        if sfreq is None or not 0 < sfreq < float("inf"):
            raise ValueError(f"source {spec!r}: write arff:GLOB:SFREQ with the rate in Hz (ARFF files store "
                             "none; e.g. arff:/data/*.arff:128 for UCI EEG Eye State)")
        return from_arff(_glob(spec, pattern), sfreq)
    if kind == "openbci":
        pattern, _, names = rest.partition(":")
        ch_names = [n.strip() for n in names.split(",") if n.strip()] or None
        return from_openbci(_glob(spec, pattern), ch_names=ch_names)
    root, _, subjects = rest.partition(":")
    if kind == "eegbci":
        subjects, _, runs = subjects.partition(":")
        return from_eegbci(Path(root).expanduser(), subjects=_numbers(spec, "subject", subjects),
                           runs=_numbers(spec, "run", runs))
    if kind == "bids":
        return from_bids(Path(root).expanduser(), subjects=_subjects(subjects, str))
    if kind == "moabb":
        import moabb.datasets

        if not hasattr(moabb.datasets, root):
            raise ValueError(f"source {spec!r}: moabb.datasets has no dataset {root!r}")
        return from_moabb(getattr(moabb.datasets, root)(), subjects=_subjects(subjects, int))
    from ..datasets import paper

    loaders = {"seed-dv": paper.load_seed_dv, "seed": paper.load_seed, "faced": paper.load_faced}
    if kind in loaders:
        return loaders[kind](Path(root).expanduser(), subjects=_subjects(subjects, int))
    raise ValueError(f"unknown source kind {kind!r} in {spec!r}; use one of {', '.join(SOURCE_KINDS)}")


def sources_from_spec(spec: str):
    """Iterate the sources named by ``spec`` (``;``-separated), lazily per source kind.

    Returns
    -------
    iterator of RecordingSource | Recording
        What :class:`eegfm.data.EEGCorpus` consumes.
    """
    parts = [p for p in spec.split(";") if p.strip()]
    if not parts:
        raise ValueError("no EEG sources given: pass e.g. 'sample' or 'bids:/path/to/bids'")
    for part in parts:
        yield from _one(part)
