"""N-way top-K semantic accuracy (the MinD-Video/EEG2Video protocol, EEGMirror Sec. 4.3) and its chance level.

Protocol, per sample (a frame for the frame-based metric, a clip for the video-based one):

1. the classifier's top-``n_gt_classes`` (3) classes on the **ground truth** are the GT classes;
2. in each of ``n_trials`` (100) trials, ``n_way - 1`` distractor classes are drawn uniformly,
   without replacement, from the classes that are not GT classes; one draw serves all GT classes
   of that trial;
3. the trial succeeds if, for any GT class g, the predicted probability ``p[g]`` is in the top
   ``top_k`` of ``[p[g], p[distractors]]``.

The sample's score is its success rate over the trials.

Notes on the references' code (``n_way_top_k_acc`` in MinD-Video, copied into EEG2Video), which
this module follows step by step, with these deliberate differences:

- they draw with the global, unseeded ``np.random.choice`` in a Python loop per trial; here a
  seeded ``numpy.random.Generator`` draws all trials at once (the same distribution: each trial
  is a uniform random subset of the non-GT classes). Results are reproducible for a seed and
  independent of the chunking used to bound memory;
- they decide "in the top K" with ``argsort(...)[-top_k:]``, so a tie between ``p[g]`` and a
  distractor is resolved by the sort's order (with a stable sort the GT loses it); here a
  distractor whose probability is **greater than or equal to** ``p[g]`` counts against g, so ties
  are failures, deterministically;
- they return, per sample, the rate and its binomial standard error ``sqrt(r (1 - r) / n)``;
  here the per-sample rates are returned, and the spread over samples/clips is left to the
  caller (:func:`eegfm_video.evaluation.evaluate_clips` reports the std over clips).

"For any GT class" is the same as "for the GT class with the highest predicted probability"
(it has the fewest distractors above it), which is how it is computed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["NWayResult", "chance_level", "gt_classes", "n_way_top_k"]

#: Upper bound on the number of random keys drawn at once (samples x trials x candidates).
_MAX_KEYS_PER_CHUNK = 1 << 22


class NWayResult(NamedTuple):
    """N-way top-K success rates.

    Attributes
    ----------
    per_sample : numpy.ndarray, shape (S,)
        Success rate of each sample over the trials, float64 in [0, 1].
    mean : float
        Mean of ``per_sample``.
    """

    per_sample: np.ndarray
    mean: float


def gt_classes(gt_probs, n_gt_classes: int = 3) -> np.ndarray:
    """The classifier's top classes on the ground truth, best first.

    Parameters
    ----------
    gt_probs : numpy.ndarray | torch.Tensor, shape (S, C)
        Classifier probabilities (or logits: only the order matters) on the ground truth.
    n_gt_classes : int
        How many top classes are GT classes (3 in the references).

    Returns
    -------
    numpy.ndarray, shape (S, n_gt_classes), int64
        Class indices sorted by decreasing probability; ties go to the lower index.
    """
    gt = _as_probs(gt_probs, "gt_probs")
    _check_int(n_gt_classes, "n_gt_classes", 1, gt.shape[1] - 1, "the number of classes - 1")
    return np.argsort(-gt, axis=1, kind="stable")[:, :n_gt_classes]


def n_way_top_k(
    pred_probs,
    gt_probs,
    n_way: int,
    top_k: int = 1,
    n_trials: int = 100,
    n_gt_classes: int = 3,
    seed: int | np.random.Generator = 0,
) -> NWayResult:
    """N-way top-K accuracy of predicted class probabilities against the ground truth's.

    Parameters
    ----------
    pred_probs : numpy.ndarray | torch.Tensor, shape (S, C)
        Classifier probabilities on the generated frames/clips.
    gt_probs : numpy.ndarray | torch.Tensor, shape (S, C)
        Classifier probabilities on the matching ground-truth frames/clips; its top
        ``n_gt_classes`` classes are the GT classes.
    n_way : int
        Candidates per trial: one GT class plus ``n_way - 1`` distractors (2 and 40 in the paper).
        At most ``C - n_gt_classes + 1``.
    top_k : int
        A trial succeeds if a GT class ranks within the top ``top_k``; ``1 <= top_k < n_way``.
    n_trials : int
        Trials per sample (100).
    n_gt_classes : int
        Number of GT classes (3).
    seed : int | numpy.random.Generator
        Seed of the distractor draws, or a generator to draw from (it is advanced).

    Returns
    -------
    NWayResult
        ``per_sample`` (S,) success rates and their ``mean``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.random.default_rng(0).dirichlet(np.ones(10), size=4)
    >>> n_way_top_k(p, p, n_way=2).mean  # the ground truth itself scores 1
    1.0
    """
    pred = _as_probs(pred_probs, "pred_probs")
    gt = _as_probs(gt_probs, "gt_probs")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred_probs and gt_probs must have the same shape (S, C), got {pred.shape} and {gt.shape}"
        )
    n_samples, n_classes = pred.shape
    _check_protocol(n_way, top_k, n_gt_classes, n_classes)
    _check_int(n_trials, "n_trials", 1, None, None)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(_check_seed(seed))

    top = gt_classes(gt, n_gt_classes)  # (S, G)
    is_gt = np.zeros((n_samples, n_classes), dtype=bool)
    np.put_along_axis(is_gt, top, True, axis=1)
    n_others = n_classes - n_gt_classes
    others = np.nonzero(~is_gt)[1].reshape(n_samples, n_others)  # (S, M), ascending per row
    p_best_gt = np.take_along_axis(pred, top, axis=1).max(axis=1)  # (S,)
    p_others = np.take_along_axis(pred, others, axis=1)  # (S, M)

    n_dis = n_way - 1
    per_sample = np.empty(n_samples, dtype=np.float64)
    chunk = max(1, _MAX_KEYS_PER_CHUNK // (n_trials * n_others))
    for start in range(0, n_samples, chunk):  # loop over memory-sized chunks of samples, not trials
        stop = min(start + chunk, n_samples)
        keys = rng.random((stop - start, n_trials, n_others))  # (s, T, M) i.i.d. uniform
        # The n_dis smallest keys of a row are a uniform random subset of the non-GT classes.
        picked = np.argpartition(keys, n_dis - 1, axis=-1)[..., :n_dis]  # (s, T, N-1)
        p_dis = np.take_along_axis(p_others[start:stop, None, :], picked, axis=-1)  # (s, T, N-1)
        n_above = (p_dis >= p_best_gt[start:stop, None, None]).sum(axis=-1)  # (s, T)
        per_sample[start:stop] = (n_above < top_k).mean(axis=1)
    return NWayResult(per_sample, float(per_sample.mean()) if n_samples else float("nan"))


def chance_level(n_way: int, top_k: int = 1, n_gt_classes: int = 3, n_classes: int | None = None) -> float:
    """Expected N-way top-K score of a predictor unrelated to the ground truth.

    If the predicted probabilities are independent of the ground truth (and have no ties), the
    ranks of the ``n_gt_classes`` GT classes and the ``n_way - 1`` distractors of a trial are a
    uniformly random order of these ``G + N - 1`` classes. The trial succeeds if and only if the
    best-ranked GT class is among the first ``K``, i.e. unless the first ``K`` are all
    distractors::

        chance = 1 - C(N - 1, K) / C(N - 1 + G, K)

    With G = 3, K = 1: 2-way 1 - 1/4 = 0.75 (not 0.5), 40-way 1 - 39/42 = 0.0714 (not 0.025).
    It does not depend on the number of classes, which is only checked.

    Parameters
    ----------
    n_way : int
        Candidates per trial (>= 2).
    top_k : int
        ``1 <= top_k < n_way``.
    n_gt_classes : int
        Number of GT classes (3).
    n_classes : int | None
        The classifier's number of classes; if given, checked to allow ``n_way`` distractors.

    Returns
    -------
    float
        The chance level in [0, 1].
    """
    _check_protocol(n_way, top_k, n_gt_classes, n_classes)
    n_dis = n_way - 1
    return 1.0 - math.comb(n_dis, top_k) / math.comb(n_dis + n_gt_classes, top_k)


def _check_protocol(n_way, top_k, n_gt_classes, n_classes) -> None:
    _check_int(n_way, "n_way", 2, None, None)
    _check_int(top_k, "top_k", 1, n_way - 1, "n_way - 1")
    if n_classes is not None:
        _check_int(n_classes, "n_classes", 2, None, None)
        _check_int(n_gt_classes, "n_gt_classes", 1, n_classes - 1, "the number of classes - 1")
        if n_way - 1 > n_classes - n_gt_classes:
            raise ValueError(
                f"n_way must be at most n_classes - n_gt_classes + 1 = {n_classes - n_gt_classes + 1} "
                f"(n_way - 1 distractors drawn from the {n_classes - n_gt_classes} non-GT classes of "
                f"{n_classes} classes), got {n_way=}"
            )
    else:
        _check_int(n_gt_classes, "n_gt_classes", 1, None, None)


def _check_int(value, name: str, low: int, high: int | None, high_text: str | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}] ({high_text} = {high})"
        raise ValueError(f"{name} must be {bound}, got {name}={value}")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {seed!r} ({type(seed).__name__})")
    return int(seed)


def _as_probs(x, name: str) -> np.ndarray:
    """(S, C) float64 numpy array from a numpy array or a torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().float().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor of shape (S, C), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (S, C) (samples, classes), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point probabilities, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(x)).sum())} NaN/inf values")
    return x.astype(np.float64, copy=False)
