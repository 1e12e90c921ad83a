"""A synthetic paired EEG-video set (moving shapes): the real data's stand-in on a CPU.

What the real data are replaced by, so that the whole chain can be trained and checked on a CPU
without licensed data or downloaded models:

- **videos**: ``n_frames`` frames of ``size x size`` RGB (default 6 x 64 x 64; 8 x 8 latents
  with an 8x VAE): one filled shape of a fixed colour per shape class (red square, green
  circle, blue triangle, yellow cross) on a dark background, moving left-to-right or
  right-to-left across the frame; its height and start jitter per clip. The class of a clip is
  ``shape * n_directions + direction``.
- **EEG**: 8 channels of the 10-20 system (:data:`SYNTHETIC_CHANNELS`) at 200 Hz, ``seconds``
  long (2 s = 400 samples, as SEED-DV's clips). Each channel is pink (1/f) background noise plus
  a sinusoid whose frequency is the shape's (:data:`SHAPE_FREQUENCIES`, 6 / 10 / 17 / 25 Hz)
  and whose amplitude is lateralised by the motion: larger over the left-hemisphere channels
  (F3, C3, P3, O1) for leftward motion, over the right ones for rightward motion, and larger
  over occipital channels (as visual responses). Random phase, amplitude and noise per clip: a
  linear classifier on band powers separates the classes, a single sample does not.
- **captions / text targets**: no BLIP or CLIP offline. :class:`ShapeCaptioner` captions a
  clip's first frame from its colours ("a red square": like BLIP on the first frame it cannot
  see the motion) and :class:`CaptionEmbedder` maps each caption to a fixed random embedding
  ``(seq_len, width)`` (the stand-in for CLIP text embeddings). Both plug into
  :func:`eegfm_video.targets.precompute_targets`.

:func:`make_synthetic_clips` returns a :class:`~eegfm_video.paired_clips.PairedClips`, the
on-disk format the ``eegfm-video`` CLI reads (``.save(directory)`` writes it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

from .paired_clips import PairedClips

__all__ = [
    "COLORS",
    "DIRECTIONS",
    "SHAPES",
    "SHAPE_FREQUENCIES",
    "SYNTHETIC_CHANNELS",
    "CaptionEmbedder",
    "ShapeCaptioner",
    "band_powers",
    "make_synthetic_clips",
    "render_clip",
    "synthetic_eeg",
]

#: Eight 10-20 channels, four per hemisphere (left first in each pair).
SYNTHETIC_CHANNELS = ("F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2")
SHAPES = ("square", "circle", "triangle", "cross")
COLORS = {"square": (230, 40, 40), "circle": (40, 210, 60), "triangle": (50, 90, 240), "cross": (235, 220, 40)}
COLOR_NAMES = {"square": "red", "circle": "green", "triangle": "blue", "cross": "yellow"}
DIRECTIONS = ("left", "right")
#: Frequency (Hz) of each shape's rhythm in the EEG.
SHAPE_FREQUENCIES = {"square": 6.0, "circle": 10.0, "triangle": 17.0, "cross": 25.0}
BACKGROUND = 24  # grey level of the background
_LEFT = np.array([ch[-1] in "13579" for ch in SYNTHETIC_CHANNELS])
_OCCIPITAL = np.array([ch.startswith(("O", "P")) for ch in SYNTHETIC_CHANNELS])


# ---------------------------------------------------------------------------- videos
def _shape_mask(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean (size, size) mask of a filled shape centred at (cx, cy)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "square":
        return (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85)
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= radius ** 2
    if shape == "triangle":  # apex up: |dx| grows linearly from the top to the base
        return (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    if shape == "cross":
        arm = radius * 0.35
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def render_clip(shape: str, direction: str, *, n_frames: int = 6, size: int = 64, y: float | None = None,
                start: float | None = None) -> np.ndarray:
    """Frames of one shape moving horizontally.

    Parameters
    ----------
    shape : {"square", "circle", "triangle", "cross"}
    direction : {"left", "right"}
        Motion direction (towards which side the shape moves).
    n_frames, size : int
        Frames and their side in pixels.
    y : float, optional
        Vertical centre in pixels (default: the middle).
    start : float, optional
        Horizontal centre in the first frame (default: a quarter of the width from the side the
        shape starts at).

    Returns
    -------
    numpy.ndarray, shape (n_frames, size, size, 3), uint8
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    radius = size * 0.16
    y = size / 2 if y is None else y
    travel = size * 0.5
    sign = 1.0 if direction == "right" else -1.0
    start = size / 2 - sign * travel / 2 if start is None else start
    frames = np.full((n_frames, size, size, 3), BACKGROUND, dtype=np.uint8)
    for i in range(n_frames):  # a handful of frames per clip
        cx = start + sign * travel * i / max(n_frames - 1, 1)
        frames[i][_shape_mask(shape, size, cx, y, radius)] = COLORS[shape]
    return frames


# ---------------------------------------------------------------------------- EEG
def _pink_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance 1/f noise along the last axis (spectrum shaped in the Fourier domain)."""
    n = shape[-1]
    spectrum = rng.standard_normal(shape[:-1] + (n // 2 + 1,)) + 1j * rng.standard_normal(shape[:-1] + (n // 2 + 1,))
    freqs = np.arange(n // 2 + 1, dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=n, axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def synthetic_eeg(shape_ids: np.ndarray, direction_ids: np.ndarray, *, sfreq: float = 200.0, seconds: float = 2.0,
                  noise_uv: float = 10.0, signal_uv: float = 6.0, seed: int | np.random.Generator = 0) -> np.ndarray:
    """EEG-like signals whose spectrum encodes the shape (frequency) and motion (lateralisation).

    Parameters
    ----------
    shape_ids, direction_ids : numpy.ndarray of int, shape (N,)
        Index into :data:`SHAPES` and :data:`DIRECTIONS` of each clip.
    sfreq, seconds : float
        Sampling rate (Hz) and duration.
    noise_uv, signal_uv : float
        Standard deviation of the background and amplitude of the class rhythm, in µV.
    seed : int | numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (N, 8, round(sfreq * seconds)), float32, µV
        Channels in :data:`SYNTHETIC_CHANNELS` order.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shape_ids, direction_ids = np.asarray(shape_ids), np.asarray(direction_ids)
    n, n_chans, n_times = len(shape_ids), len(SYNTHETIC_CHANNELS), int(round(sfreq * seconds))
    t = np.arange(n_times) / sfreq  # (T,)
    freq = np.array([SHAPE_FREQUENCIES[SHAPES[s]] for s in shape_ids])  # (N,)
    freq = freq * rng.uniform(0.95, 1.05, size=n)  # per-clip jitter
    phase = rng.uniform(0, 2 * np.pi, size=(n, n_chans))  # (N, C)
    rightward = (np.array([DIRECTIONS[d] for d in direction_ids]) == "right")[:, None]  # (N, 1)
    lateral = np.where(_LEFT[None, :] ^ rightward, 1.6, 0.4)  # left channels strong for leftward motion
    gain = lateral * np.where(_OCCIPITAL, 1.3, 0.8)[None, :] * rng.uniform(0.7, 1.3, size=(n, 1))  # (N, C)
    rhythm = np.sin(2 * np.pi * freq[:, None, None] * t[None, None, :] + phase[..., None])  # (N, C, T)
    eeg = noise_uv * _pink_noise(rng, (n, n_chans, n_times)) + signal_uv * gain[..., None] * rhythm
    return eeg.astype(np.float32)


def band_powers(eeg: np.ndarray, sfreq: float = 200.0,
                bands: Sequence[tuple[float, float]] = ((4, 8), (8, 13), (13, 20), (20, 30), (30, 45))) -> np.ndarray:
    """Log band power of each channel: features for a linear check of the synthetic EEG.

    Parameters
    ----------
    eeg : numpy.ndarray, shape (N, C, T)
    sfreq : float
    bands : sequence of (low, high) in Hz

    Returns
    -------
    numpy.ndarray, shape (N, C * len(bands)), float64
    """
    spectrum = np.abs(np.fft.rfft(eeg, axis=-1)) ** 2  # (N, C, T//2+1)
    freqs = np.fft.rfftfreq(eeg.shape[-1], 1 / sfreq)
    powers = [spectrum[..., (freqs >= lo) & (freqs < hi)].mean(-1) for lo, hi in bands]  # each (N, C)
    return np.log(np.stack(powers, axis=-1) + 1e-12).reshape(len(eeg), -1)


def make_synthetic_clips(
    n_train_per_class: int = 24,
    n_test_per_class: int = 6,
    *,
    shapes: Sequence[str] = SHAPES[:3],
    n_frames: int = 6,
    size: int = 64,
    sfreq: float = 200.0,
    seconds: float = 2.0,
    noise_uv: float = 10.0,
    signal_uv: float = 6.0,
    seed: int = 0,
) -> PairedClips:
    """The synthetic paired set: ``len(shapes) * 2`` classes (shape x motion direction).

    Parameters
    ----------
    n_train_per_class, n_test_per_class : int
        Clips per class in each split.
    shapes : sequence of str
        Subset of :data:`SHAPES` (default the first three: 6 classes).
    n_frames, size : int
        Frames per clip and their side in pixels (a multiple of the VAE's factor, 8).
    sfreq, seconds, noise_uv, signal_uv : float
        EEG sampling rate, duration and amplitudes (see :func:`synthetic_eeg`).
    seed : int

    Returns
    -------
    PairedClips
        Clip ids ``"{split}_{index:04d}"``, class names ``"{shape}-{direction}"``.
    """
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {list(shapes)}")
    for name, value in (("n_train_per_class", n_train_per_class), ("n_test_per_class", n_test_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    rng = np.random.default_rng(seed)
    class_names = [f"{s}-{d}" for s in shapes for d in DIRECTIONS]
    n_classes = len(class_names)
    labels = np.concatenate([np.repeat(np.arange(n_classes), n_train_per_class),
                             np.repeat(np.arange(n_classes), n_test_per_class)])
    split = np.array(["train"] * (n_classes * n_train_per_class) + ["test"] * (n_classes * n_test_per_class))
    shape_ids = np.array([SHAPES.index(shapes[c // len(DIRECTIONS)]) for c in labels])
    direction_ids = labels % len(DIRECTIONS)
    margin = size * 0.22
    videos = np.stack([
        render_clip(SHAPES[s], DIRECTIONS[d], n_frames=n_frames, size=size, y=rng.uniform(margin, size - margin),
                    start=size / 2 - (1 if DIRECTIONS[d] == "right" else -1) * size * 0.25 + rng.uniform(-2, 2))
        for s, d in zip(shape_ids, direction_ids)
    ])  # (N, F, H, W, 3)
    eeg = synthetic_eeg(shape_ids, direction_ids, sfreq=sfreq, seconds=seconds, noise_uv=noise_uv,
                        signal_uv=signal_uv, seed=rng)
    clip_ids = [f"{s}_{i:04d}" for i, s in enumerate(split)]
    return PairedClips(eeg, list(SYNTHETIC_CHANNELS), sfreq, videos, labels.astype(np.int64), split, clip_ids,
                       class_names)


# ---------------------------------------------------------------------------- text targets
class ShapeCaptioner:
    """Caption a first frame by its shape colour ("a red square"): the offline stand-in for BLIP.

    Callable ``images (list of (H, W, 3) uint8) -> list[str]``, for
    :func:`eegfm_video.targets.precompute_targets`. The shape is the one whose colour is nearest
    to the mean colour of the non-background pixels.
    """

    def __call__(self, images: Sequence[np.ndarray]) -> list[str]:
        names = list(COLORS)
        palette = np.array([COLORS[s] for s in names], dtype=np.float64)  # (S, 3)
        captions = []
        for image in images:
            pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
            foreground = pixels[np.abs(pixels - BACKGROUND).max(axis=1) > 40]
            if len(foreground) == 0:
                captions.append("an empty frame")
                continue
            shape = names[int(np.argmin(((palette - foreground.mean(0)) ** 2).sum(1)))]
            captions.append(f"a {COLOR_NAMES[shape]} {shape}")
        return captions


class CaptionEmbedder:
    """Fixed random "text embeddings" per caption: the offline stand-in for CLIP's text encoder.

    Callable ``captions -> (N, seq_len, width)`` float32 tensor. Each distinct caption gets an
    embedding drawn once from ``N(0, 1)`` with a generator seeded by ``seed`` and the caption's
    text (so it does not depend on which other captions exist or their order).

    Parameters
    ----------
    seq_len, width : int
        Shape of one embedding (``(77, 768)`` for SD 1.x; small for tiny UNets).
    seed : int
    """

    def __init__(self, seq_len: int, width: int, *, seed: int = 0):
        self.seq_len, self.width, self.seed = int(seq_len), int(width), int(seed)

    def embed(self, caption: str) -> torch.Tensor:
        """Embedding (seq_len, width) of one caption."""
        digest = hashlib.sha256(f"{self.seed}\n{caption}".encode("utf-8")).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        return torch.randn(self.seq_len, self.width, generator=generator)

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        if not len(captions):
            return torch.empty(0, self.seq_len, self.width)
        return torch.stack([self.embed(str(c)) for c in captions])
