"""Channel names -> 3-D positions -> 2-D "proportion" coordinates (EEGMirror, 3.1.2).

Every channel gets ``(x_p, y_p)``: ``x_p`` runs from the left preauricular point (0) to
the right one (100), ``y_p`` from the nasion (0) to the inion (100), so that Cz is
``(50, 50)``, Fpz ``(50, 10)``, Oz ``(50, 90)``, T7 ``(10, 50)`` and T8 ``(90, 50)``.
The coordinate is derived from a 3-D position, never read from a table keyed on names,
so any digitised electrode gets one:

1. a head sphere is fitted to the positions (least squares), giving a centre;
2. each position becomes a unit vector from that centre, with polar angle ``theta`` from
   the pole (the direction of Cz) and azimuth ``phi`` (0 toward the nasion, +90 deg toward
   the right ear);
3. an azimuthal equidistant projection: ``r = 40 * s(phi) * theta / 72 deg`` (on an ideal
   sphere the Fpz-T7-Oz-T8 ring lies 72 deg from the vertex and lands at ``r = 40``),
   ``x_p = 50 + r sin(phi)``, ``y_p = 50 - r cos(phi)``.

Real heads are not spheres, so ``s(phi) = s_ap cos^2(phi) + s_lr sin^2(phi)`` is
calibrated on the positions themselves: ``s_ap`` puts Fpz/Oz and ``s_lr`` puts T7/T8 on
the ring. Centre, pole and scales are computed once per template (cached), or per
recording for a real cap with at least 8 digitised EEG positions (landmarks the cap lacks
come from the template). Digitised positions equal to the template's (as after
``raw.set_montage("standard_1005")``) use the template's frame, so they give exactly the
template's coordinates. Points below the ring may fall outside ``[0, 100]``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence

import mne
import numpy as np

from ._validation import did_you_mean

__all__ = [
    "DEFAULT_MONTAGE", "LEGACY_ALIASES", "DuplicateChannelError", "UnknownChannelError", "check_unique_channels",
    "head_to_proportion",
    "normalize_channel_name", "polar_to_proportion", "proportion_coordinates",
]

DEFAULT_MONTAGE = "standard_1005"
LEGACY_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

# Electrodes no MNE 10-05 template has, in EEGLAB polar coordinates (theta deg, radius),
# from EEG2Video's dataset/channel_62_pos.locs (62-channel NeuroScan caps of the SEED family).
EXTRA_POLAR = {"CB1": (-150.0, 0.51111), "CB2": (150.0, 0.51111)}

_RING_DEG = 72.0  # the 10-20 ring (Fpz, T7, Oz, T8) lies 10 % of the 180 deg arc up...
_RING_R = 40.0  # ...and lands 40 units from Cz
# EEGLAB: radius = polar angle / 180 deg on its own sphere, where its standard caps
# (BESA spherical, Standard-10-20-Cap81) put the 10-20 ring at 92 deg.
_EEGLAB_RING_RADIUS = 92.0 / 180.0
_LANDMARKS = ("CZ", "FPZ", "OZ", "T7", "T8")
_MIN_FIT = 8  # digitised EEG positions needed to fit a sphere to a user's cap
# MNE 1.13 renamed these (FutureWarning on the old names); the positions are identical.
_RENAMED = {
    f"standard_{k}": f"colin27_{k}"
    for k in ("1005", "1020", "alphabetic", "postfixed", "prefixed", "primed")
}
_PREFIX = re.compile(r"^EEG[\s_\-]+", re.IGNORECASE)
_REF_SUFFIX = re.compile(r"[\s_]*-\s*(REF|LE|AR|AVG|CAR)$", re.IGNORECASE)


class UnknownChannelError(ValueError):
    """A channel has no position in any source; the message says how to give it one."""


class DuplicateChannelError(ValueError):
    """Two channels name the same electrode (after case and prefix normalisation)."""


def check_unique_channels(names, where: str = "channels") -> None:
    """Raise :class:`DuplicateChannelError` if two names are one electrode (``Fz``/``FZ``/``EEG Fz``).

    Parameters
    ----------
    names : sequence of str
    where : str
        What the names belong to, for the message (a file or recording name).
    """
    seen: dict[str, str] = {}
    clashes = []
    for name in names:
        key = normalize_channel_name(str(name))
        if key in seen:
            clashes.append(f"{seen[key]!r} and {name!r}")
        else:
            seen[key] = str(name)
    if clashes:
        raise DuplicateChannelError(
            f"{where}: duplicate channels name the same electrode: {'; '.join(clashes)}. "
            "Keep one of each (e.g. raw.drop_channels([...]) or raw.rename_channels({...}))."
        )


def normalize_channel_name(name: str) -> str:
    """Canonical key used to match channel names.

    Strips a leading ``"EEG"`` plus separator (``"EEG Fp1"``), a reference suffix
    (``"-REF"``, ``"-LE"``, ``"-AR"``, ``"-AVG"``, ``"-CAR"``, any case), surrounding dots
    and whitespace (BCI2000 ``"Fc5."``, ``"C3.."``), then upper-cases. A bipolar name such
    as ``"A2-A1"`` keeps its hyphen, so it never matches an electrode.

    Parameters
    ----------
    name : str
        A channel name as found in a recording.

    Returns
    -------
    str
        The key, e.g. ``"FC5"`` for ``"Fc5."`` and ``"FP1"`` for ``"EEG Fp1-REF"``.
    """
    key = _REF_SUFFIX.sub("", _PREFIX.sub("", name.strip()))
    return key.strip(" \t.").upper()


@dataclasses.dataclass(frozen=True)
class _Frame:
    """Projection frame: sphere centre, rotation to (right, anterior, pole), scales."""

    center: np.ndarray  # (3,), metres, MNE head frame
    rotation: np.ndarray  # (3, 3), rows: right, anterior, pole
    scale_ap: float
    scale_lr: float

    def angles(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = (np.asarray(pos, dtype=float) - self.center) @ self.rotation.T  # (..., 3)
        v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        theta = np.degrees(np.arccos(np.clip(v[..., 2], -1.0, 1.0)))
        return theta, np.arctan2(v[..., 0], v[..., 1])  # polar (deg), azimuth (rad)

    def project(self, pos: np.ndarray) -> np.ndarray:
        theta, phi = self.angles(pos)
        scale = self.scale_ap * np.cos(phi) ** 2 + self.scale_lr * np.sin(phi) ** 2
        r = _RING_R * scale * theta / _RING_DEG
        return np.stack([50.0 + r * np.sin(phi), 50.0 - r * np.cos(phi)], axis=-1)


def _fit_sphere(pos: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points (N, 3): |p|^2 = 2 p.c + (r^2 - |c|^2)."""
    design = np.column_stack([2.0 * pos, np.ones(len(pos))])
    return np.linalg.lstsq(design, (pos**2).sum(axis=1), rcond=None)[0][:3]


def _calibrate(keys: Sequence[str], pos: np.ndarray, fallback: _Frame | None) -> _Frame:
    """Frame fitted to named positions (N, 3); landmarks missing here come from fallback."""
    center = _fit_sphere(pos)
    found = {k: p for k, p in zip(keys, pos) if k in _LANDMARKS}
    for k, p in zip(keys, pos):  # a legacy T3/T4 stands in for a missing T7/T8
        found.setdefault(LEGACY_ALIASES.get(k, k), p)
    pole = found["CZ"] - center if "CZ" in found else fallback.rotation[2]
    pole = pole / np.linalg.norm(pole)
    right = np.array([1.0, 0.0, 0.0]) - pole[0] * pole  # head-frame +x, made orthogonal
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(pole, right), pole])  # pole x right = anterior
    frame = _Frame(center, rotation, 1.0, 1.0)
    scales = []
    for pair, attr in ((("FPZ", "OZ"), "scale_ap"), (("T7", "T8"), "scale_lr")):
        thetas = [frame.angles(found[k])[0] for k in pair if k in found]
        scales.append(_RING_DEG / np.mean(thetas) if thetas else getattr(fallback, attr))
    return _Frame(center, rotation, float(scales[0]), float(scales[1]))


@dataclasses.dataclass(frozen=True)
class _Template:
    positions: dict[str, np.ndarray]  # normalised name -> (3,) head-frame metres
    names: dict[str, str]  # normalised name -> the template's own spelling
    frame: _Frame

    def lookup(self, key: str) -> np.ndarray | None:
        """Position of a normalised name, legacy aliases first (T3 -> T7's position)."""
        return self.positions.get(LEGACY_ALIASES.get(key, key), self.positions.get(key))


def _build_template(montage: mne.channels.DigMontage, fallback: _Frame | None) -> _Template:
    info = mne.create_info(montage.ch_names, 100.0, "eeg")
    info.set_montage(montage)  # head-frame positions exactly as a user's Info gets them
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    keys = [normalize_channel_name(n) for n in montage.ch_names]
    frame = _calibrate(keys, pos, fallback)
    return _Template(dict(zip(keys, pos)), dict(zip(keys, montage.ch_names)), frame)


def _resolve_name(name: str) -> str:
    builtin = mne.channels.get_builtin_montages()
    resolved = _RENAMED[name] if _RENAMED.get(name) in builtin else name
    if resolved not in builtin:
        hint = did_you_mean(name, [*builtin, *_RENAMED], n=3)
        raise ValueError(
            f"montage={name!r} is not a built-in MNE montage.{hint} Pass one of "
            "mne.channels.get_builtin_montages(), a DigMontage, or None."
        )
    return resolved


@functools.lru_cache(maxsize=None)
def _named_template(resolved: str) -> _Template:
    """Template of a built-in montage, by its current MNE name (computed once)."""
    is_default = resolved == _resolve_name(DEFAULT_MONTAGE)
    montage = mne.channels.make_standard_montage(resolved)
    return _build_template(montage, None if is_default else _default_frame())


def _default_frame() -> _Frame:
    return _named_template(_resolve_name(DEFAULT_MONTAGE)).frame


def _template(montage) -> _Template | None:
    if montage is None:
        return None
    if isinstance(montage, str):
        return _named_template(_resolve_name(montage))
    if isinstance(montage, mne.channels.DigMontage):
        return _build_template(montage, _default_frame())
    raise TypeError(
        f"montage must be a str, an mne.channels.DigMontage or None, got {montage!r}"
    )


def polar_to_proportion(theta_deg, radius) -> np.ndarray:
    """Proportion coordinates of EEGLAB polar coordinates (``.locs`` files).

    EEGLAB's ``theta`` is the azimuth in degrees (0 = nose, +90 = right ear) and its
    ``radius`` the polar angle divided by 180 deg on a sphere whose 10-20 ring (Fpz, T7, Oz,
    T8) sits at radius 92/180; that ring maps to ours (``r = 40``), so EEGLAB's standard
    Oz ``(180, 0.511)`` gives ``(50, 90)`` and C3 ``(-90, 0.256)`` gives ``(30, 50)``.

    Parameters
    ----------
    theta_deg : array_like, shape (...)
        EEGLAB azimuth in degrees.
    radius : array_like, shape (...)
        EEGLAB radius (broadcast against ``theta_deg``).

    Returns
    -------
    np.ndarray, shape (..., 2), float64
        ``(x_p, y_p)``.
    """
    phi = np.radians(np.asarray(theta_deg, dtype=float))
    r = _RING_R * np.asarray(radius, dtype=float) / _EEGLAB_RING_RADIUS
    x, y = np.broadcast_arrays(50.0 + r * np.sin(phi), 50.0 - r * np.cos(phi))
    return np.stack([x, y], axis=-1)


def head_to_proportion(pos, *, center=None) -> np.ndarray:
    """Proportion coordinates of 3-D positions in the MNE head frame.

    Uses the frame calibrated on the default template (``standard_1005``): its sphere
    centre, pole (Cz) and scales.

    Parameters
    ----------
    pos : array_like, shape (N, 3) | (3,)
        Positions in metres, MNE head frame (+x right ear, +y nasion, +z up).
    center : array_like, shape (3,) | None
        Sphere centre in metres; None uses the template's fitted centre.

    Returns
    -------
    np.ndarray, shape (N, 2) | (2,), float64
        ``(x_p, y_p)`` per position.
    """
    pos = np.asarray(pos, dtype=float)
    if pos.shape[-1:] != (3,):
        raise ValueError(f"pos must have shape (N, 3) in metres, got shape {pos.shape}")
    frame = _default_frame()
    if center is not None:
        frame = dataclasses.replace(frame, center=np.asarray(center, dtype=float).reshape(3))
    return frame.project(pos)


def _explicit(positions: Mapping | None, frame: _Frame) -> dict[str, np.ndarray]:
    """Validated explicit positions as proportion coordinates, by normalised name."""
    out: dict[str, np.ndarray] = {}
    spelled: dict[str, str] = {}
    for name, value in (positions or {}).items():
        key = normalize_channel_name(name)
        if key in out:
            raise ValueError(
                f"positions has two keys for one channel: {spelled[key]!r} and {name!r}"
            )
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            arr = np.empty(0)
        if arr.shape not in ((2,), (3,)) or not np.isfinite(arr).all():
            raise ValueError(
                f"positions[{name!r}] must be a 2-tuple (x_p, y_p) in proportion coordinates "
                "(Cz = (50, 50)) or a 3-tuple (x, y, z) head-frame position in metres, "
                f"got {value!r}"
            )
        out[key] = arr if arr.shape == (2,) else frame.project(arr)
        spelled[key] = name
    return out


def _info_frame(info: mne.Info, valid: np.ndarray, template: _Template | None) -> _Frame:
    """Frame for the Info's digitised positions: the template's if they are the template's."""
    fallback = template.frame if template is not None else _default_frame()
    keys = [normalize_channel_name(n) for n in info.ch_names]
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    if template is not None:
        refs = [(i, template.lookup(keys[i])) for i in np.flatnonzero(valid)]
        same = [np.allclose(pos[i], ref, rtol=0, atol=1e-6) for i, ref in refs if ref is not None]
        if same and all(same):
            return template.frame
    eeg = np.zeros(len(keys), bool)
    eeg[mne.pick_types(info, eeg=True, exclude=[])] = True
    fit = np.flatnonzero(valid & eeg)
    if len(fit) < _MIN_FIT:
        return fallback
    spread = np.linalg.svd(pos[fit] - pos[fit].mean(0), compute_uv=False)
    if spread[-1] < 0.1 * spread[0]:  # (nearly) flat or collinear: no sphere to fit
        return fallback
    return _calibrate([keys[i] for i in fit], pos[fit], fallback)


def proportion_coordinates(channels, *, montage=DEFAULT_MONTAGE, positions=None) -> np.ndarray:
    """Proportion coordinates ``(x_p, y_p)`` of every channel, for MAPE.

    Sources, in order, for each channel: (1) ``positions`` (the user asked for it);
    (2) the digitised position in the Info; (3) ``montage`` (case-insensitive, legacy
    names T3/T4/T5/T6 read as T7/T8/P7/P8); (4) built-in extras (CB1, CB2). A channel
    found in none raises :class:`UnknownChannelError`; there is no silent default.

    Parameters
    ----------
    channels : sequence of str | mne.Info
        Channel names, or an Info (every channel of ``info.ch_names``, in order).
    montage : str | mne.channels.DigMontage | None
        Template for channels without digitised positions: a built-in MNE name
        (``"standard_1005"`` and ``"standard_1020"`` are read from their current MNE names,
        without a warning) or a montage; None skips this source.
    positions : dict of str to tuple | None
        Explicit positions by channel name (matched like the channels): a 2-tuple is
        ``(x_p, y_p)`` in proportion coordinates, used as is; a 3-tuple is an MNE
        head-frame position in metres, projected in the template's frame. Keys that
        match no channel are ignored, so one dict can serve several recordings.

    Returns
    -------
    np.ndarray, shape (n_channels, 2), float64
        One ``(x_p, y_p)`` row per channel, in order.

    Raises
    ------
    UnknownChannelError
        Naming every channel without a position and how to give it one.
    """
    info = channels if isinstance(channels, mne.Info) else None
    if info is None and (isinstance(channels, str) or not isinstance(channels, Sequence)):
        raise TypeError(
            f"channels must be a sequence of names or an mne.Info, got {channels!r}"
        )
    names = list(info.ch_names) if info is not None else [str(n) for n in channels]
    check_unique_channels(names)
    template = _template(montage)
    frame = template.frame if template is not None else _default_frame()
    explicit = _explicit(positions, frame)
    valid = np.zeros(len(names), bool)
    if info is not None:
        locs = np.array([ch["loc"][:3] for ch in info["chs"]]).reshape(-1, 3)
        valid = np.isfinite(locs).all(axis=1) & (np.abs(locs) > 0).any(axis=1)
        info_frame = _info_frame(info, valid, template) if valid.any() else frame
    out = np.full((len(names), 2), np.nan)
    missing = []
    for i, name in enumerate(names):
        key = normalize_channel_name(name)
        ref = template.lookup(key) if template is not None else None
        if key in explicit:
            out[i] = explicit[key]
        elif valid[i]:
            out[i] = info_frame.project(locs[i])
        elif ref is not None:
            out[i] = template.frame.project(ref)
        elif key in EXTRA_POLAR:
            out[i] = polar_to_proportion(*EXTRA_POLAR[key])
        else:
            missing.append(name)
    if missing:
        label = repr(montage) if isinstance(montage, str) else "(the DigMontage passed)"
        message = _unknown_message(missing, info is not None, template, label, explicit)
        raise UnknownChannelError(message)
    return out


def _unknown_message(missing, from_info, template, label, explicit) -> str:
    tried = ["digitised positions in the Info (none for these channels)"] if from_info else []
    tried += [
        f"montage {label} (legacy T3/T4/T5/T6 read as T7/T8/P7/P8)"
        if template is not None else "no montage (montage=None)",
        f"built-in extras ({', '.join(EXTRA_POLAR)})",
        f"explicit positions ({len(explicit)} given)" if explicit else "no explicit positions",
    ]
    known = {**(template.names if template is not None else {}), **{k: k for k in EXTRA_POLAR}}
    lines = [
        f"{len(missing)} channel(s) have no position: {', '.join(map(repr, missing))}.",
        f"Tried: {'; '.join(tried)}.",
    ]
    for name in missing:
        key = normalize_channel_name(name)
        hint = did_you_mean(key, known, n=3, show=lambda close: repr(known[close]))
        if re.fullmatch(r".+-\d+", key) and key.rsplit("-", 1)[0] in known:
            lines.append(f"  {name!r} looks like a duplicate label {key.rsplit('-', 1)[0]!r} that MNE numbered "
                         "while reading: the file has that channel twice; keep one.")
        elif hint:
            lines.append(f"  {name!r}:{hint}")
        elif "-" in key:
            lines.append(f"  {name!r} looks like a bipolar derivation: it has no single position.")
    lines += [
        "Fix it by one of:",
        f"  - positions={{{missing[0]!r}: (x_p, y_p)}} in proportion coordinates "
        "(Cz = (50, 50), x from left to right preauricular, y from nasion to inion), "
        "or a 3-tuple (x, y, z) head-frame position in metres;",
        "  - raw.set_montage(...) with the cap's digitised positions, or another montage=;",
        '  - dropping or picking channels: raw.drop_channels([...]), or raw.pick("eeg") '
        "for non-EEG channels (typed first, e.g. raw.set_channel_types({'ECG': 'ecg'})).",
    ]
    return "\n".join(lines)
