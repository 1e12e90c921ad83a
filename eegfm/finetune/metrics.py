"""Classification and regression metrics in numpy (no scikit-learn needed by eegfm itself)."""

from __future__ import annotations

import numpy as np

__all__ = ["balanced_accuracy", "classification_report", "regression_report", "roc_auc"]


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean over the classes present in ``y_true`` of the recall of that class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of one length, got {y_true.shape} and {y_pred.shape}")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count 1/2)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
    scores : array-like, shape (N,) (binary: score of class 1) or (N, n_classes)
        With two columns the second is used; with more, the macro average of one-vs-rest AUCs
        over the classes present.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores = scores[:, 1]
    if scores.ndim == 1:
        return _binary_auc(y_true == 1, scores)
    aucs = [_binary_auc(y_true == c, scores[:, c]) for c in np.unique(y_true)]
    return float(np.nanmean(aucs)) if aucs else float("nan")


def classification_report(y_true, logits) -> dict:
    """``balanced_accuracy``, ``accuracy``, ``auroc`` and ``n`` from logits (N, n_classes)."""
    y_true, logits = np.asarray(y_true), np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    pred = logits.argmax(axis=1)
    return {"balanced_accuracy": balanced_accuracy(y_true, pred), "accuracy": float(np.mean(pred == y_true)),
            "auroc": roc_auc(y_true, probs), "n": int(len(y_true))}


def regression_report(y_true, y_pred) -> dict:
    """``mse``, ``mae``, ``r2`` and ``n``."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    err = y_pred - y_true
    var = ((y_true - y_true.mean(0)) ** 2).sum()
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "r2": float(1 - (err ** 2).sum() / var) if var > 0 else float("nan"), "n": int(len(y_true))}
