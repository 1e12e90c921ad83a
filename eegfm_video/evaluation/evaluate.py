"""The whole evaluation (EEGMirror Sec. 4.3): SSIM and frame/video N-way top-K, with chance beside every figure."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .classifiers import (
    HFImageClassifier,
    VideoMAEClassifier,
)
from .nway import chance_level, n_way_top_k
from .ssim import as_uint8_frames, ssim_score

__all__ = ["evaluate_clips", "format_results"]


def evaluate_clips(
    pred_videos,
    gt_videos,
    frame_classifier=None,
    video_classifier=None,
    n_ways: Sequence[int] = (2, 40),
    top_k: int = 1,
    n_trials: int = 100,
    seed: int = 0,
    *,
    n_gt_classes: int = 3,
) -> dict:
    """SSIM and frame-/video-based N-way top-K of generated clips, with chance levels.

    Parameters
    ----------
    pred_videos : numpy.ndarray | torch.Tensor, shape (B, F, H, W, 3), uint8
        Generated clips, RGB.
    gt_videos : numpy.ndarray | torch.Tensor, shape (B, F, H, W, 3), uint8
        Ground-truth clips at the same resolution, same order.
    frame_classifier : FrameClassifier | str | None
        Per-frame classifier (frames (N, H, W, 3) -> probabilities (N, C)); a str is loaded with
        :meth:`HFImageClassifier.from_pretrained` (reference: ``"google/vit-base-patch16-224"``);
        None skips the frame-based metric.
    video_classifier : VideoClassifier | str | None
        Clip classifier (clips (B, F, H, W, 3) -> probabilities (B, C)); a str is loaded with
        :meth:`VideoMAEClassifier.from_pretrained` with ``num_frames=F`` (reference:
        ``"MCG-NJU/videomae-base-finetuned-kinetics"``); None skips the video-based metric.
    n_ways : sequence of int
        The N of each N-way score (the paper: 2 and 40).
    top_k : int
        K (1).
    n_trials : int
        Trials per frame/clip (100).
    seed : int
        Seed of the distractor draws; each (metric, N) pair starts from it.
    n_gt_classes : int
        Top classes of the ground truth that count as GT classes (3).

    Returns
    -------
    dict
        JSON-safe::

            {"n_clips": B, "n_frames": F,
             "protocol": {"top_k", "n_trials", "n_gt_classes", "seed"},
             "ssim": {"mean", "std", "per_clip": [B floats]},
             "frame": {"2-way": {"n_way", "mean", "std", "chance", "n_classes", "per_clip"}, ...},
             "video": {...same...}}

        ``"frame"``/``"video"`` are absent when their classifier is None. The frame-based
        per-clip value is the success rate averaged over the clip's frames; ``std`` is over clips
        (ddof = 0); ``chance`` is :func:`chance_level` for the classifier's number of classes.
    """
    pred = as_uint8_frames(pred_videos, "pred_videos", 5)
    gt = as_uint8_frames(gt_videos, "gt_videos", 5)
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred_videos and gt_videos must have the same shape (B, F, H, W, 3), got {pred.shape} and {gt.shape}"
        )
    n_ways = _check_n_ways(n_ways)
    n_clips, n_frames = pred.shape[:2]
    ssim = ssim_score(pred, gt)
    results = {
        "n_clips": int(n_clips),
        "n_frames": int(n_frames),
        "protocol": {"top_k": top_k, "n_trials": n_trials, "n_gt_classes": n_gt_classes, "seed": seed},
        "ssim": {"mean": ssim.mean, "std": ssim.std, "per_clip": ssim.per_clip.tolist()},
    }
    if frame_classifier is not None:
        if isinstance(frame_classifier, str):
            frame_classifier = HFImageClassifier.from_pretrained(frame_classifier)
        flat = (n_clips * n_frames,) + pred.shape[2:]
        p_pred = _call_classifier(frame_classifier, pred.reshape(flat), "frame_classifier", n_clips * n_frames)
        p_gt = _call_classifier(frame_classifier, gt.reshape(flat), "frame_classifier", n_clips * n_frames)
        results["frame"] = _n_way_block(p_pred, p_gt, (n_clips, n_frames), n_ways, top_k, n_trials, n_gt_classes, seed)
    if video_classifier is not None:
        if isinstance(video_classifier, str):
            video_classifier = VideoMAEClassifier.from_pretrained(video_classifier, num_frames=int(n_frames))
        p_pred = _call_classifier(video_classifier, pred, "video_classifier", n_clips)
        p_gt = _call_classifier(video_classifier, gt, "video_classifier", n_clips)
        results["video"] = _n_way_block(p_pred, p_gt, (n_clips, 1), n_ways, top_k, n_trials, n_gt_classes, seed)
    return results


def format_results(results: dict) -> str:
    """A plain-text table of :func:`evaluate_clips`'s results, chance level beside every figure.

    Parameters
    ----------
    results : dict
        As returned by :func:`evaluate_clips` (or read back from its JSON).

    Returns
    -------
    str
        One header line, then ``metric | score (mean ± std over clips) | chance`` rows.
    """
    proto = results["protocol"]
    k = proto["top_k"]
    lines = [
        f"{results['n_clips']} clips x {results['n_frames']} frames; N-way top-{k}: "
        f"{proto['n_trials']} trials, top-{proto['n_gt_classes']} GT classes, seed {proto['seed']}",
        f"{'metric':<24}{'score (mean ± std)':>20}{'chance':>10}",
    ]
    ssim = results["ssim"]
    lines.append(f"{'SSIM':<24}{_pm(ssim):>20}{'-':>10}")
    for kind, label in (("frame", "frame-based"), ("video", "video-based")):
        for key, row in results.get(kind, {}).items():
            lines.append(f"{f'{label} {key} top-{k}':<24}{_pm(row):>20}{row['chance']:>10.3f}")
    return "\n".join(lines)


def _pm(row: dict) -> str:
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def _check_n_ways(n_ways) -> tuple[int, ...]:
    if isinstance(n_ways, (int, np.integer)) and not isinstance(n_ways, bool):
        n_ways = (int(n_ways),)
    if not isinstance(n_ways, (list, tuple)) or not n_ways:
        raise ValueError(f"n_ways must be a non-empty sequence of ints (e.g. (2, 40)), got {n_ways=!r}")
    return tuple(n_ways)


def _call_classifier(classifier, x: np.ndarray, name: str, n_expected: int) -> np.ndarray:
    if not callable(classifier):
        raise TypeError(f"{name} must be callable (uint8 pixels -> probabilities), a str or None, got {classifier!r}")
    probs = classifier(x)
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().float().numpy()
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != n_expected:
        raise ValueError(
            f"{name} must return probabilities of shape ({n_expected}, n_classes) for input {x.shape}, "
            f"got shape {probs.shape}"
        )
    return probs


def _n_way_block(p_pred, p_gt, clip_shape, n_ways, top_k, n_trials, n_gt_classes, seed) -> dict:
    n_classes = p_pred.shape[1]
    block = {}
    for n_way in n_ways:
        res = n_way_top_k(p_pred, p_gt, n_way, top_k=top_k, n_trials=n_trials, n_gt_classes=n_gt_classes, seed=seed)
        per_clip = res.per_sample.reshape(clip_shape).mean(axis=1)  # frames -> clip
        block[f"{n_way}-way"] = {
            "n_way": int(n_way),
            "mean": float(per_clip.mean()),
            "std": float(per_clip.std()),
            "chance": chance_level(n_way, top_k, n_gt_classes, n_classes),
            "n_classes": int(n_classes),
            "per_clip": per_clip.tolist(),
        }
    return block
