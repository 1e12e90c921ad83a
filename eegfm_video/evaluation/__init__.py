"""Evaluation of generated clips exactly as the MinD-Video/EEG2Video protocol (EEGMirror Sec. 4.3).

- :func:`ssim_score`: per-frame RGB SSIM (scikit-image, ``data_range=255``), averaged over frames,
  mean +- std over clips;
- :func:`n_way_top_k`: seeded N-way top-K with the ground truth's top-3 classes as GT classes,
  100 trials; :func:`chance_level` is its exact value for an unrelated predictor (2-way: 0.75);
- frame-based (ImageNet classifier per frame, averaged over frames) and video-based (Kinetics-400
  VideoMAE) scores through pluggable :class:`FrameClassifier` / :class:`VideoClassifier`;
- :func:`evaluate_clips` puts them together and :func:`format_results` prints a table with the
  chance level beside every figure.

Example
-------
>>> from eegfm_video.evaluation import (HFImageClassifier, VideoMAEClassifier,
...                                     evaluate_clips, format_results)
>>> frame_clf = HFImageClassifier.from_pretrained("google/vit-base-patch16-224")  # doctest: +SKIP
>>> video_clf = VideoMAEClassifier.from_pretrained(num_frames=6)                   # doctest: +SKIP
>>> res = evaluate_clips(pred, gt, frame_clf, video_clf)                           # doctest: +SKIP
>>> print(format_results(res))                                                     # doctest: +SKIP
"""

from __future__ import annotations

from .classifiers import (
    EfficientNetLite0,
    EfficientNetLite0Classifier,
    FrameClassifier,
    HFImageClassifier,
    TorchClassifier,
    VideoClassifier,
    VideoMAEClassifier,
)
from .nway import NWayResult, chance_level, gt_classes, n_way_top_k
from .evaluate import evaluate_clips, format_results
from .ssim import SSIMResult, as_uint8_frames, ssim_score, ssim_video

__all__ = [
    "EfficientNetLite0",
    "EfficientNetLite0Classifier",
    "FrameClassifier",
    "HFImageClassifier",
    "NWayResult",
    "SSIMResult",
    "TorchClassifier",
    "VideoClassifier",
    "VideoMAEClassifier",
    "as_uint8_frames",
    "chance_level",
    "evaluate_clips",
    "format_results",
    "gt_classes",
    "n_way_top_k",
    "ssim_score",
    "ssim_video",
]

