"""Preprocessing: any recording -> EEG channels in µV at a fixed rate, with positions.

The steps, in order (:func:`preprocess`):

1. pick the EEG channels (``config.picks``; channels marked bad in ``info["bads"]`` are
   excluded and listed in ``metadata["excluded_bads"]``), load the data;
2. refuse non-finite samples (NaN/Inf), naming the file, the channels and the counts;
3. notch filter at ``config.notch_freq`` and its harmonics below the source's Nyquist;
4. band-pass ``[l_freq, h_freq]`` with MNE's zero-phase FIR (a low edge at or above the
   source's Nyquist is skipped: the source has nothing there to remove);
5. resample to ``config.sfreq`` (skipped when equal);
6. convert to µV, float32;
7. refuse implausible amplitudes (median channel std above ``IMPLAUSIBLE_STD_UV`` = 5000 µV:
   wrong units), then drop flat channels (std below ``config.flat_threshold_uv``), with a
   logged warning and ``metadata["dropped_channels"]``; too many flat channels is an error;
8. proportion coordinates of the remaining channels (:func:`eegfm.montage.proportion_coordinates`).

The configuration is a frozen dataclass whose :meth:`PreprocessConfig.hash` (with
:data:`PREPROCESS_VERSION`) keys caches and is saved beside a model as its input contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass

import mne
import numpy as np

from .._validation import with_guess
from ..montage import UnknownChannelError, proportion_coordinates
from .recording import Recording

__all__ = ["PREPROCESS_VERSION", "PreprocessConfig", "PreprocessError", "preprocess"]

logger = logging.getLogger("eegfm.data")

#: Bumped whenever :func:`preprocess` changes what it outputs for a given config, so that
#: every :meth:`PreprocessConfig.hash` (and every cache entry keyed on it) changes too.
PREPROCESS_VERSION = 2  # 2: downsampling resamples before filtering

_UNITS = ("uV",)


#: A recording whose median channel standard deviation (µV, after filtering) exceeds this is
#: not plausible scalp EEG: almost always µV numbers read as volts (10^6 too large).
IMPLAUSIBLE_STD_UV = 5000.0


class PreprocessError(ValueError):
    """A recording cannot be preprocessed (non-finite samples, too many flat channels)."""


def _number(name: str, value, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        allowed = "a number or None" if optional else "a number"
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


@dataclass(frozen=True)
class PreprocessConfig:
    """How :func:`preprocess` turns a recording into model input.

    Parameters
    ----------
    sfreq : float
        Output sampling rate in Hz (LaBraM, CBraMod and EEGMirror use 200).
    l_freq : float | None
        High-pass edge in Hz; None for no high-pass.
    h_freq : float | None
        Low-pass edge in Hz, below ``sfreq / 2``; None for no low-pass.
    notch_freq : float | None
        Power-line frequency (50 or 60 Hz); its harmonics below the source's Nyquist are
        notched too. None for no notch.
    units : str
        Output units; only ``"uV"`` (microvolts).
    picks : str
        Channels to keep, as ``raw.pick(picks)`` reads it (``"eeg"``).
    montage : str
        Template for channels without digitised positions (an MNE built-in name).
    flat_threshold_uv : float
        A channel whose standard deviation (after filtering) is below this, in µV, is flat
        and dropped.
    max_bad_channel_fraction : float
        More flat channels than this fraction of the picked channels is an error.
    """

    sfreq: float = 200.0  # LaBraM / EEGMirror rate
    l_freq: float | None = 0.1  # removes drift and DC offsets
    h_freq: float | None = 75.0
    notch_freq: float | None = None  # 50 (Europe, Asia) or 60 (Americas)
    units: str = "uV"
    picks: str = "eeg"
    montage: str = "standard_1005"
    flat_threshold_uv: float = 0.1
    max_bad_channel_fraction: float = 0.5

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        for name in ("sfreq", "flat_threshold_uv", "max_bad_channel_fraction"):
            set_(name, _number(name, getattr(self, name), optional=False))
        for name in ("l_freq", "h_freq", "notch_freq"):
            set_(name, _number(name, getattr(self, name), optional=True))
        for name in ("units", "picks", "montage"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty str, got {value!r}")
        if self.sfreq <= 0:
            raise ValueError(f"sfreq must be > 0 Hz, got {self.sfreq!r}")
        nyquist = self.sfreq / 2
        if self.l_freq is not None and not 0 < self.l_freq < nyquist:
            raise ValueError(
                f"l_freq must be None or in (0, sfreq/2 = {nyquist:g}) Hz, got {self.l_freq!r}"
            )
        if self.h_freq is not None and not 0 < self.h_freq < nyquist:
            raise ValueError(
                f"h_freq must be None or in (0, sfreq/2 = {nyquist:g}) Hz (sfreq={self.sfreq:g}), "
                f"got {self.h_freq!r}"
            )
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(
                f"l_freq must be < h_freq, got l_freq={self.l_freq!r} and h_freq={self.h_freq!r}"
            )
        if self.notch_freq is not None and self.notch_freq <= 0:
            raise ValueError(f"notch_freq must be None or > 0 Hz (50 or 60), got {self.notch_freq!r}")
        if self.units in ("µV", "μV"):  # micro sign and Greek mu read as "uV"
            set_("units", "uV")
        if self.units not in _UNITS:
            raise ValueError(f"units must be one of {_UNITS}, got {self.units!r}")
        if self.flat_threshold_uv < 0:
            raise ValueError(f"flat_threshold_uv must be >= 0 µV, got {self.flat_threshold_uv!r}")
        if not 0 <= self.max_bad_channel_fraction <= 1:
            raise ValueError(
                "max_bad_channel_fraction must be in [0, 1], "
                f"got {self.max_bad_channel_fraction!r}"
            )

    def to_dict(self) -> dict:
        """JSON-safe dict of every field (floats as floats)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; an unknown key is an error that names it."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in fields]
        if unknown:
            hints = ", ".join(with_guess(k, fields) for k in unknown)
            raise ValueError(f"unknown PreprocessConfig key(s): {hints}; known keys: {fields}")
        return cls(**d)

    def hash(self) -> str:
        """Stable 16-hex-digit sha256 of the config and :data:`PREPROCESS_VERSION`."""
        payload = {"eegfm_preprocess_version": PREPROCESS_VERSION, **self.to_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _source_name(raw: mne.io.BaseRaw) -> str:
    names = [str(f) for f in getattr(raw, "filenames", ()) if f is not None]
    return names[0] if names else f"<{type(raw).__name__} without a file>"


def _check_finite(data: np.ndarray, ch_names: list[str], source: str) -> None:
    bad = ~np.isfinite(data)  # (C, T)
    if not bad.any():
        return
    counts = bad.sum(axis=1)
    rows = np.flatnonzero(counts)
    listed = ", ".join(f"{ch_names[i]!r} ({counts[i]} of {data.shape[1]} samples)" for i in rows)
    raise PreprocessError(
        f"{source}: non-finite samples (NaN/Inf) in {len(rows)} channel(s): {listed}. "
        "Interpolate or crop them, or drop the channels (raw.drop_channels([...])) first."
    )


def _run_quietly(step: str, source: str, func, *args, **kwargs):
    """Call an MNE step, turning its RuntimeWarnings into logged warnings that name the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = func(*args, **kwargs)
    for w in caught:
        logger.warning("%s: %s: %s", source, step, w.message)
    return out


def preprocess(
    source,
    config: PreprocessConfig = PreprocessConfig(),
    *,
    positions=None,
    source_name: str | None = None,
    verbose=None,
) -> Recording:
    """Turn a recording into EEG channels in µV at ``config.sfreq``, with positions.

    Parameters
    ----------
    source : mne.io.BaseRaw | Recording
        The recording (volts in a Raw, µV in a Recording). A Raw is copied, never changed;
        it need not be preloaded.
    config : PreprocessConfig
        The steps' parameters.
    positions : dict of str to tuple | None
        Explicit channel positions, passed to
        :func:`eegfm.montage.proportion_coordinates`.
    source_name : str | None
        Name used in messages and ``Recording.source``; default: the Raw's file (or the
        Recording's ``source``).
    verbose : bool | str | int | None
        MNE verbosity of the filter and resampling steps; None means quiet (``False``).
        MNE's warnings (e.g. a filter longer than the signal) are logged on
        ``"eegfm.data"`` with the file's name, never raised as Python warnings.

    Returns
    -------
    Recording
        ``data`` of shape (C', T') float32 in µV, where C' counts the picked, non-flat
        channels and ``T' ≈ T * config.sfreq / source_sfreq``. ``metadata`` holds the
        source's metadata plus ``positions`` (C' lists ``[x_p, y_p]``), ``preprocess``
        (``config.to_dict()``), ``preprocess_hash``, ``source_sfreq``,
        ``dropped_channels`` (flat channels removed), ``excluded_bads`` and ``filter``
        (the band actually applied).

    Raises
    ------
    PreprocessError
        Non-finite samples, no channel picked, or more flat channels than
        ``config.max_bad_channel_fraction`` allows.
    UnknownChannelError
        A channel without a position; the message starts with the source.
    """
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"config must be a PreprocessConfig, got {type(config).__name__}")
    mne_verbose = False if verbose is None else verbose
    if isinstance(source, Recording):
        name = source_name or source.source
        base_metadata = dict(source.metadata)
        raw = source.to_raw(verbose=False)
    elif isinstance(source, mne.io.BaseRaw):
        name = source_name or _source_name(source)
        base_metadata = {}
        raw = source.copy()
    else:
        raise TypeError(f"source must be an mne.io.BaseRaw or a Recording, got {type(source).__name__}")
    source_sfreq = float(raw.info["sfreq"])

    # 1. pick, load
    excluded_bads = [b for b in raw.info["bads"]]
    try:
        raw.pick(config.picks, exclude="bads", verbose=False)
    except ValueError as err:
        raise PreprocessError(f"{name}: picks={config.picks!r} selects no channel ({err})") from err
    excluded_bads = [b for b in excluded_bads if b not in raw.ch_names]
    raw.load_data(verbose=False)
    # 2. non-finite samples (on the loaded array itself: no copy)
    _check_finite(raw._data, raw.ch_names, name)

    # 3-5. notch, band-pass and resampling. Downsampling resamples first (MNE's FFT resampling
    # removes everything above the new Nyquist), so the filters run on fewer samples;
    # otherwise filter at the source rate, then resample.
    downsample_first = config.sfreq < source_sfreq
    if downsample_first:
        _run_quietly("resample", name, raw.resample, config.sfreq, verbose=mne_verbose)
    nyquist = raw.info["sfreq"] / 2
    if config.notch_freq is not None:  # the line frequency and its harmonics below Nyquist
        freqs = np.arange(config.notch_freq, nyquist, config.notch_freq)
        freqs = freqs[freqs < nyquist - 1.0]  # leave room for the notch's own width
        if len(freqs):
            _run_quietly("notch filter", name, raw.notch_filter, freqs, verbose=mne_verbose)
    # a low-pass at/above the Nyquist has nothing to remove
    l_freq, h_freq = config.l_freq, config.h_freq
    if h_freq is not None and h_freq >= nyquist:
        h_freq = None
    if l_freq is not None and l_freq >= nyquist:
        raise PreprocessError(
            f"{name}: l_freq={l_freq!r} Hz is not below the source's Nyquist ({nyquist:g} Hz)"
        )
    if l_freq is not None or h_freq is not None:
        _run_quietly("band-pass filter", name, raw.filter, l_freq, h_freq, verbose=mne_verbose)
    if raw.info["sfreq"] != config.sfreq:
        _run_quietly("resample", name, raw.resample, config.sfreq, verbose=mne_verbose)

    # 6. µV float32, (C, T), in one pass
    data = np.multiply(raw._data, 1e6, out=np.empty(raw._data.shape, np.float32), casting="same_kind")
    ch_names = list(raw.ch_names)

    # 7. implausible amplitude (wrong units), then flat channels
    stds = data.std(axis=1)  # (C,)
    typical = float(np.median(stds)) if len(stds) else 0.0
    if typical > IMPLAUSIBLE_STD_UV:
        raise PreprocessError(
            f"{name}: the median channel standard deviation is {typical:.3g} µV after filtering, far above "
            f"scalp EEG (< {IMPLAUSIBLE_STD_UV:g} µV): check the units (µV numbers stored as volts? "
            "an EDF header saying V for µV data?) and scale the data to volts before passing it"
        )
    flat = stds < config.flat_threshold_uv  # (C,)
    dropped = [ch_names[i] for i in np.flatnonzero(flat)]
    if dropped:
        fraction = len(dropped) / len(ch_names)
        if fraction > config.max_bad_channel_fraction or len(dropped) == len(ch_names):
            raise PreprocessError(
                f"{name}: {len(dropped)} of {len(ch_names)} channels are flat "
                f"(std < flat_threshold_uv={config.flat_threshold_uv:g} µV): {dropped}; "
                f"max_bad_channel_fraction={config.max_bad_channel_fraction:g} allows at most "
                f"{math.floor(config.max_bad_channel_fraction * len(ch_names))}. "
                "Check the file's units and channel types."
            )
        logger.warning(
            "%s: dropped %d flat channel(s) (std < %g µV): %s",
            name, len(dropped), config.flat_threshold_uv, ", ".join(dropped),
        )
        raw.drop_channels(dropped)
        data = data[~flat]
        ch_names = [c for c, f in zip(ch_names, flat) if not f]

    # 8. positions
    try:
        coords = proportion_coordinates(raw.info, montage=config.montage, positions=positions)
    except UnknownChannelError as err:
        raise UnknownChannelError(f"{name}: {err}") from err

    metadata = {
        **base_metadata,
        "positions": coords.tolist(),
        "preprocess": config.to_dict(),
        "preprocess_hash": config.hash(),
        "source_sfreq": source_sfreq,
        "dropped_channels": dropped,
        "excluded_bads": excluded_bads,
        "filter": {"l_freq": l_freq, "h_freq": h_freq},
    }
    return Recording(np.ascontiguousarray(data), ch_names, float(config.sfreq), name, metadata)
