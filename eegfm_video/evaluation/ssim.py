"""SSIM of generated clips against the ground truth (the MinD-Video/EEG2Video protocol, EEGMirror Sec. 4.3).

Per frame, RGB, at full resolution::

    skimage.metrics.structural_similarity(pred, gt, data_range=255, channel_axis=-1)

averaged over the frames of a clip, then mean +- std over clips (``np.std``, ddof = 0, as the
references). scikit-image's defaults are kept: a 7 x 7 uniform window, K1 = 0.01, K2 = 0.03,
sample covariance. Frames must therefore be at least 7 x 7 pixels.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["SSIMResult", "ssim_score", "ssim_video"]

#: scikit-image's default window side; a frame smaller than this cannot be scored.
SSIM_WIN_SIZE = 7


class SSIMResult(NamedTuple):
    """SSIM over clips.

    Attributes
    ----------
    mean : float
        Mean over clips of the per-clip SSIM.
    std : float
        Standard deviation over clips (ddof = 0).
    per_clip : numpy.ndarray, shape (B,)
        SSIM of each clip (mean over its frames), float64.
    """

    mean: float
    std: float
    per_clip: np.ndarray


def as_uint8_frames(x, name: str, ndim: int, layout: str | None = None) -> np.ndarray:
    """Return ``x`` as a numpy uint8 array of ``ndim`` dims with 3 channels last.

    Parameters
    ----------
    x : numpy.ndarray | torch.Tensor
        uint8 pixels, channels last: (..., H, W, 3).
    name : str
        The argument's name, used in error messages.
    ndim : int
        Expected number of dimensions, 4 for frames (F, H, W, 3), 5 for clips (B, F, H, W, 3).
    layout : str | None
        The expected shape as written in error messages; default from ``ndim``.

    Returns
    -------
    numpy.ndarray, shape like ``x``, uint8
    """
    if layout is None:
        layout = {3: "(H, W, 3)", 4: "(F, H, W, 3)", 5: "(B, F, H, W, 3)"}.get(ndim, f"{ndim}-D (..., H, W, 3)")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor of uint8 pixels {layout}, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise TypeError(
            f"{name} must have dtype uint8 (pixels 0..255), got dtype {x.dtype}; "
            "convert with (x.clip(0, 1) * 255).round().astype(np.uint8) for [0, 1] floats"
        )
    if x.ndim != ndim or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape {layout} (RGB, channels last), got shape {tuple(x.shape)}")
    return x


def ssim_video(pred, gt) -> float:
    """SSIM of one generated clip against its ground truth, averaged over frames.

    Parameters
    ----------
    pred : numpy.ndarray | torch.Tensor, shape (F, H, W, 3), uint8
        Generated frames, RGB, channels last.
    gt : numpy.ndarray | torch.Tensor, shape (F, H, W, 3), uint8
        Ground-truth frames at the same resolution.

    Returns
    -------
    float
        ``mean_f structural_similarity(pred[f], gt[f], data_range=255, channel_axis=-1)``.
    """
    pred, gt = _check_pair(pred, gt, "pred", "gt")
    return _ssim_frames(pred, gt)


def ssim_score(preds, gts) -> SSIMResult:
    """SSIM over clips: per-clip :func:`ssim_video`, then mean and std over clips.

    Parameters
    ----------
    preds : numpy.ndarray | torch.Tensor, shape (B, F, H, W, 3), uint8 | sequence of (F, H, W, 3)
        Generated clips.
    gts : numpy.ndarray | torch.Tensor, shape (B, F, H, W, 3), uint8 | sequence of (F, H, W, 3)
        Ground-truth clips, in the same order.

    Returns
    -------
    SSIMResult
        ``mean``, ``std`` (ddof = 0) and ``per_clip`` (B,).
    """
    preds = _as_clip_list(preds, "preds")
    gts = _as_clip_list(gts, "gts")
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts must hold the same number of clips, got {len(preds)} and {len(gts)}")
    if len(preds) == 0:
        raise ValueError("preds must hold at least one clip, got 0")
    pairs = [_check_pair(p, g, f"preds[{i}]", f"gts[{i}]") for i, (p, g) in enumerate(zip(preds, gts))]
    per_clip = np.array([_ssim_frames(p, g) for p, g in pairs], dtype=np.float64)
    return SSIMResult(float(per_clip.mean()), float(per_clip.std()), per_clip)


def _as_clip_list(x, name: str) -> Sequence:
    """A 5-D array/tensor is split into its clips; a list/tuple is kept (each clip checked later)."""
    if isinstance(x, (list, tuple)):
        return x
    return list(as_uint8_frames(x, name, 5))


def _check_pair(pred, gt, pred_name: str, gt_name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = as_uint8_frames(pred, pred_name, 4)
    gt = as_uint8_frames(gt, gt_name, 4)
    if pred.shape != gt.shape:
        raise ValueError(
            f"{pred_name} and {gt_name} must have the same shape (F, H, W, 3), got {pred.shape} and {gt.shape}"
        )
    if pred.shape[0] == 0:
        raise ValueError(f"{pred_name} must hold at least one frame, got shape {pred.shape}")
    if min(pred.shape[1:3]) < SSIM_WIN_SIZE:
        raise ValueError(
            f"{pred_name} frames must be at least {SSIM_WIN_SIZE} x {SSIM_WIN_SIZE} pixels for SSIM's window, "
            f"got H x W = {pred.shape[1]} x {pred.shape[2]}"
        )
    return pred, gt


def _ssim_frames(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over frames of scikit-image's SSIM; pred, gt (F, H, W, 3) uint8, already checked."""
    from skimage.metrics import structural_similarity

    scores = [structural_similarity(p, g, data_range=255, channel_axis=-1) for p, g in zip(pred, gt)]
    return float(np.mean(scores))
