"""MOABB's PhysioNet MI dataset read from local files only (no download), and MOABB helpers.

Importing this module imports MOABB lazily (inside :func:`offline_physionet_mi`).

MOABB's ``PhysionetMI`` reads each run through MNE's ``eegbci`` layout
(``<path>/MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf``) and downloads any run that
is not there. Offline, three things keep it from trying:

- ``MNE_DATASETS_EEGBCI_PATH`` points MNE and MOABB at the local folder;
- ``MOABB_DOWNLOAD_PROVIDER=upstream`` keeps MOABB from first asking the data.nemar.org mirror;
- only runs that exist are asked for: ``LeftRightImagery`` needs the imagined left/right fist
  runs 4, 8, 12 (``hand_runs``) only, so the imagined feet runs 6, 10, 14 (``feet_runs``) are
  dropped unless every subject has them, and ``subject_list`` is cut to the subjects whose runs
  are all on disk. ``PhysionetMI.data_path()`` also asks for the baseline runs 1-2: never call it.

    from eegfm.finetune.moabb import offline_physionet_mi
    dataset = offline_physionet_mi("data/eegbci")      # the subjects whose runs 4, 8, 12 are there
    X, labels, meta = LeftRightImagery().get_data(dataset, dataset.subject_list)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["HAND_RUNS", "FEET_RUNS", "eegbci_file", "local_subjects", "offline_physionet_mi", "to_microvolts"]

#: PhysioNet MI imagined left/right fist runs (MOABB ``PhysionetMI.hand_runs``, imagined).
HAND_RUNS = (4, 8, 12)
#: PhysioNet MI imagined both-fists/feet runs (MOABB ``PhysionetMI.feet_runs``, imagined).
FEET_RUNS = (6, 10, 14)


def eegbci_file(path: str | os.PathLike, subject: int, run: int) -> Path:
    """Where MNE's ``eegbci.load_data`` (and MOABB) keep one run under ``path``."""
    return (Path(path) / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0" / f"S{subject:03d}"
            / f"S{subject:03d}R{run:02d}.edf")


def local_subjects(path: str | os.PathLike, runs=HAND_RUNS) -> list[int]:
    """The PhysioNet MI subjects (1-109) that have every run of ``runs`` under ``path``."""
    return [s for s in range(1, 110) if all(eegbci_file(path, s, r).is_file() for r in runs)]


def offline_physionet_mi(path: str | os.PathLike, subjects=None, feet: bool | None = None):
    """MOABB's ``PhysionetMI(imagined=True)`` that reads ``path`` and never downloads.

    Parameters
    ----------
    path : str | os.PathLike
        The folder holding ``MNE-eegbci-data`` (what ``eegbci.load_data(..., path=path)`` wrote).
    subjects : iterable of int, optional
        The subjects to keep (default: every subject whose runs are all on disk).
    feet : bool, optional
        Keep the imagined feet runs 6, 10, 14 (``hands``/``feet`` events). Default: only when
        every kept subject has them. ``LeftRightImagery`` does not need them.

    Returns
    -------
    moabb.datasets.PhysionetMI
        With ``subject_list`` and ``feet_runs`` set to what exists locally. Sets
        ``MNE_DATASETS_EEGBCI_PATH`` to ``path`` and ``MOABB_DOWNLOAD_PROVIDER=upstream`` in
        ``os.environ`` (MNE and MOABB read them when a run is loaded).

    Raises
    ------
    FileNotFoundError
        ``path`` has no PhysioNet MI run, or a requested subject lacks one (named, with the
        subjects that are there).
    """
    path = Path(path).expanduser().resolve()
    runs = HAND_RUNS + FEET_RUNS if feet else HAND_RUNS
    available = local_subjects(path, runs)
    if not available:
        raise FileNotFoundError(f"no PhysioNet MI subject has runs {list(runs)} under {path} "
                                f"(expected e.g. {eegbci_file(path, 1, runs[0])})")
    if subjects is None:
        chosen = available
    else:
        chosen = [int(s) for s in subjects]
        missing = [s for s in chosen if s not in available]
        if missing:
            raise FileNotFoundError(f"PhysioNet MI subjects {missing} lack some of runs {list(runs)} under {path}; "
                                    f"the subjects there are {available}")
    if feet is None:
        feet = set(chosen) <= set(local_subjects(path, HAND_RUNS + FEET_RUNS))
    os.environ["MNE_DATASETS_EEGBCI_PATH"] = str(path)
    os.environ["MOABB_DOWNLOAD_PROVIDER"] = "upstream"  # else MOABB first asks data.nemar.org
    from moabb.datasets import PhysionetMI

    dataset = PhysionetMI(imagined=True)
    dataset.subject_list = chosen
    if not feet:
        dataset.feet_runs = []
    return dataset


def to_microvolts(X) -> np.ndarray:
    """MOABB epochs are in volts (float64); eegfm models take µV float32.

    A module-level function, so ``FunctionTransformer(to_microvolts)`` pickles and clones.
    """
    return (np.asarray(X) * 1e6).astype(np.float32)
