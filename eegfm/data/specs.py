"""Name EEG sources in one string, for the command line and configs.

Sources are separated by ``;``; each is ``kind:argument[:subjects]``:

=============================  ===========================================================
``sample``                     the real EEG excerpts bundled with eegfm
``files:GLOB``                 files MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB ``.set``)
``bids:ROOT[:02,03]``          a BIDS dataset (optionally some subjects), via mne-bids
``moabb:NAME[:1,2]``           a MOABB dataset class name (optionally some subjects)
``seed-dv:ROOT[:1,2]``         SEED-DV local copy (``EEG/sub*.npy``)
``seed:ROOT[:1,2]``            SEED local copy (``Preprocessed_EEG/*.mat``)
``faced:ROOT[:0,1]``           FACED local copy (``Processed_data/sub*.pkl``)
=============================  ===========================================================
"""

from __future__ import annotations

import glob
from pathlib import Path

from .sources import from_bids, from_files, from_moabb, from_raw

__all__ = ["SOURCE_KINDS", "sources_from_spec"]

SOURCE_KINDS = ("sample", "files", "bids", "moabb", "seed-dv", "seed", "faced")


def _subjects(text: str | None, cast):
    return [cast(s) for s in text.split(",") if s.strip()] if text else None


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
        paths = sorted(glob.glob(str(Path(rest).expanduser())))
        if not paths:
            raise FileNotFoundError(f"source {spec!r}: no files match {rest!r}")
        return from_files(paths)
    root, _, subjects = rest.partition(":")
    if kind == "bids":
        return from_bids(Path(root).expanduser(), subjects=_subjects(subjects, str))
    if kind == "moabb":
        import moabb.datasets

        if not hasattr(moabb.datasets, root):
            raise ValueError(f"source {spec!r}: moabb.datasets has no dataset {root!r}")
        return from_moabb(getattr(moabb.datasets, root)(), subjects=_subjects(subjects, int))
    from . import paper_datasets

    loaders = {"seed-dv": paper_datasets.load_seed_dv, "seed": paper_datasets.load_seed,
               "faced": paper_datasets.load_faced}
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
