"""Small real-EEG sample shipped inside the package (works offline).

Three short excerpts of real human EEG from PhysioNet (ODC-By 1.0), built by
``scripts/make_sample.py`` into ``eegfm/datasets/sample/`` (see the README there for
provenance and citations):

- ``eegbci_S001R04``: EEG Motor Movement/Imagery, subject S001, run R04 (imagined
  left/right fist), 0-30 s, 64 channels (10-10 names) at 160 Hz, annotations T0/T1/T2.
- ``eegmat_sub-02_rest`` / ``eegmat_sub-02_arithmetic``: EEG During Mental Arithmetic,
  subject 02, 10-26 s of each recording (16 s), 19 channels at 500 Hz with the legacy
  10-20 names (``T3``/``T4``/``T5``/``T6``), one annotation with the label.

Example
-------
>>> from eegfm.datasets import list_sample_recordings, load_sample
>>> list_sample_recordings()
['eegbci_S001R04', 'eegmat_sub-02_rest', 'eegmat_sub-02_arithmetic']
>>> raw = load_sample("eegmat_sub-02_rest", verbose=False)[0]
>>> raw.get_data().shape  # (n_channels, n_times), volts
(19, 8000)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import mne
import numpy as np

__all__ = ["list_sample_recordings", "load_sample"]

_SAMPLE_DIR = "sample"
_MANIFEST = "manifest.json"


def _sample_root():
    """Traversable of the ``sample`` data folder (works from a wheel or a zip)."""
    return resources.files(__package__).joinpath(_SAMPLE_DIR)


@lru_cache(maxsize=1)
def _manifest() -> dict:
    """The parsed ``manifest.json``, keyed by recording name (in manifest order)."""
    text = _sample_root().joinpath(_MANIFEST).read_text(encoding="utf-8")
    return {rec["name"]: rec for rec in json.loads(text)["recordings"]}


def list_sample_recordings() -> list[str]:
    """Names of the recordings in the bundled sample.

    Returns
    -------
    list of str
        For example ``["eegbci_S001R04", "eegmat_sub-02_rest",
        "eegmat_sub-02_arithmetic"]``, in manifest order.
    """
    return list(_manifest())


def _description(rec: dict) -> str:
    parts = [
        f"eegfm sample {rec['name']}",
        f"dataset={rec['dataset']}",
        f"subject={rec['subject']}",
        f"task={rec['task']}",
    ]
    if rec.get("run"):
        parts.append(f"run={rec['run']}")
    if rec.get("label"):
        parts.append(f"label={rec['label']}")
    start = float(rec["excerpt_start_s"])
    parts.append(f"excerpt={start:g}-{start + float(rec['duration_s']):g}s of {rec['source']}")
    parts.append(f"licence={rec['licence']}")
    return "; ".join(parts)


def _load_one(rec: dict, verbose) -> mne.io.RawArray:
    blob = _sample_root().joinpath(rec["file"]).read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        counts = npz["data"]  # (n_channels, n_times), int16
        scale = npz["scale"]  # (n_channels,), microvolts per count
        ch_names = [str(name) for name in npz["ch_names"]]
        sfreq = float(npz["sfreq"])
    data = counts.astype(np.float64) * (scale.astype(np.float64)[:, None] * 1e-6)  # volts
    info = mne.create_info(ch_names, sfreq, ch_types="eeg", verbose=verbose)
    info["description"] = _description(rec)
    info["subject_info"] = {"his_id": str(rec["subject"])}
    raw = mne.io.RawArray(data, info, verbose=verbose)
    annotations = rec.get("annotations") or []
    raw.set_annotations(
        mne.Annotations(
            onset=[a["onset"] for a in annotations],
            duration=[a["duration"] for a in annotations],
            description=[a["description"] for a in annotations],
        ),
        verbose=verbose,
    )
    return raw


def load_sample(
    names: str | Iterable[str] | None = None, *, verbose: bool | str | int | None = None
) -> list[mne.io.RawArray]:
    """Load recordings of the bundled real-EEG sample as MNE Raw objects.

    Parameters
    ----------
    names : str | iterable of str | None
        Recording names from :func:`list_sample_recordings` (a single string loads one).
        ``None`` loads all of them, in manifest order.
    verbose : bool | str | int | None
        MNE verbosity for building the Raw objects (``None``: MNE's global level;
        ``False``: silent).

    Returns
    -------
    list of mne.io.RawArray
        One Raw per name, in the order asked. Each holds ``data`` of shape
        ``(n_channels, n_times)`` in volts (float64; stored as int16 counts times a
        per-channel scale), all channels of type ``"eeg"``, no montage (positions are
        resolved from channel names elsewhere), no measurement date, annotations restored
        (``T0``/``T1``/``T2`` for eegbci, one annotation spanning the excerpt with the label
        ``"rest"``/``"arithmetic"`` for eegmat), ``info["description"]`` a short
        ``"key=value; ..."`` string with dataset, subject, task, label, excerpt and licence,
        and ``info["subject_info"]["his_id"]`` the subject id.
        Shapes: ``eegbci_S001R04`` (64, 4800) at 160 Hz; ``eegmat_sub-02_rest`` and
        ``eegmat_sub-02_arithmetic`` (19, 8000) at 500 Hz.

    Raises
    ------
    ValueError
        If a name is not in the sample; the message lists the available names.
    """
    manifest = _manifest()
    if names is None:
        wanted = list(manifest)
    elif isinstance(names, str):
        wanted = [names]
    else:
        wanted = list(names)
    unknown = [name for name in wanted if name not in manifest]
    if unknown:
        raise ValueError(
            f"Unknown sample recording(s) {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(manifest)}"
        )
    return [_load_one(manifest[name], verbose) for name in wanted]
