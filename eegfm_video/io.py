"""Write generated clips: one PNG per frame, a GIF and an MP4 per clip (imageio, imageio-ffmpeg).

Layout written by :func:`save_clips` for clip ``name``::

    out_dir/name/frame_000.png ... frame_{F-1}.png
    out_dir/name.gif            looping, ``fps`` frames per second
    out_dir/name.mp4            H.264 (libx264, yuv420p), ``fps`` frames per second

MP4 needs even frame sides (yuv420p); an odd side is padded by one row/column repeating the
edge (never resized). SEED-DV's 288 x 512 and the synthetic 64 x 64 need no padding.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["FORMATS", "save_clips", "save_frames", "save_gif", "save_mp4"]

FORMATS = ("png", "gif", "mp4")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def _frames(frames, name: str = "frames") -> np.ndarray:
    array = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or array.shape[0] < 1:
        raise ValueError(f"{name} must be uint8 of shape (frames, height, width, 3) with at least one frame, "
                         f"got {array.dtype} {array.shape}")
    return array


def _check_fps(fps) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def save_frames(frames, directory: str | os.PathLike, *, prefix: str = "frame") -> list[Path]:
    """One PNG per frame.

    Parameters
    ----------
    frames : numpy.ndarray | torch.Tensor, shape (F, H, W, 3), uint8
    directory : str | os.PathLike
        Created if missing.
    prefix : str
        Files are ``{prefix}_{i:03d}.png``.

    Returns
    -------
    list of Path
    """
    import imageio.v3 as iio

    frames = _frames(frames)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / f"{prefix}_{i:03d}.png"
        iio.imwrite(path, frame)
        paths.append(path)
    return paths


def save_gif(frames, path: str | os.PathLike, *, fps: float = 3.0) -> Path:
    """A looping GIF, ``fps`` frames per second.

    Parameters
    ----------
    frames : numpy.ndarray | torch.Tensor, shape (F, H, W, 3), uint8
    path : str | os.PathLike
    fps : float

    Returns
    -------
    Path
    """
    import imageio.v3 as iio

    frames, fps = _frames(frames), _check_fps(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def save_mp4(frames, path: str | os.PathLike, *, fps: float = 3.0, quality: int = 8) -> Path:
    """An H.264 MP4 (imageio-ffmpeg), ``fps`` frames per second.

    Parameters
    ----------
    frames : numpy.ndarray | torch.Tensor, shape (F, H, W, 3), uint8
    path : str | os.PathLike
    fps : float
    quality : int
        imageio-ffmpeg's quality, 0 (worst) to 10 (best).

    Returns
    -------
    Path
    """
    import imageio_ffmpeg

    frames, fps = _frames(frames), _check_fps(fps)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 10:
        raise ValueError(f"quality must be an integer in [0, 10], got {quality!r}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:  # yuv420p needs even sides
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec="libx264", quality=quality,
                                         pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)  # start the generator
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def save_clips(
    clips,
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    fps: float = 3.0,
    formats: Sequence[str] = FORMATS,
) -> dict[str, dict[str, object]]:
    """Write every clip as PNG frames, a GIF and an MP4.

    Parameters
    ----------
    clips : numpy.ndarray | torch.Tensor, shape (B, F, H, W, 3), uint8
        E.g. :class:`~eegfm_video.pipeline.EEG2VideoPipeline` output.
    out_dir : str | os.PathLike
    names : sequence of str, optional
        One file-name-safe name per clip (letters, digits, ``._-``); default ``clip_0000``...
    fps : float
        Frames per second of the GIF and MP4 (SEED-DV's frames: 3 fps).
    formats : sequence of {"png", "gif", "mp4"}

    Returns
    -------
    dict
        ``name -> {"png": [paths], "gif": path, "mp4": path}`` (the formats written).
    """
    array = clips.detach().cpu().numpy() if hasattr(clips, "detach") else np.asarray(clips)
    if array.ndim != 5:
        raise ValueError(f"clips must be uint8 of shape (clips, frames, height, width, 3), got {array.shape}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    _check_fps(fps)
    names = [f"clip_{i:04d}" for i in range(len(array))] if names is None else [str(n) for n in names]
    if len(names) != len(array):
        raise ValueError(f"names has {len(names)} entries for {len(array)} clips")
    bad = [n for n in names if not _SAFE.match(n)]
    if bad:
        raise ValueError(f"names must use only letters, digits, '.', '_' and '-', got {bad[:3]}")
    out_dir = Path(out_dir)
    written: dict[str, dict[str, object]] = {}
    for name, frames in zip(names, array):
        frames = _frames(frames, f"clip {name!r}")
        entry: dict[str, object] = {}
        if "png" in formats:
            entry["png"] = save_frames(frames, out_dir / name)
        if "gif" in formats:
            entry["gif"] = save_gif(frames, out_dir / f"{name}.gif", fps=fps)
        if "mp4" in formats:
            entry["mp4"] = save_mp4(frames, out_dir / f"{name}.mp4", fps=fps)
        written[name] = entry
    return written
