"""Classification and regression metrics in numpy (no scikit-learn needed by eegfm itself).

Classification figures as EEG papers report them: balanced accuracy, AUROC, Cohen's kappa,
weighted F1 and the confusion matrix (:func:`classification_report`), and a check that a
classifier does not predict one class for (nearly) everything (:func:`one_class_warning`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["ONE_CLASS_SHARE", "balanced_accuracy", "classification_report", "cohen_kappa", "confusion_matrix",
           "one_class_warning", "regression_report", "roc_auc", "warn_one_class", "weighted_f1"]

logger = logging.getLogger("eegfm.finetune")

#: A classifier whose predictions fall in one class at least this often "predicts one class".
ONE_CLASS_SHARE = 0.95


def _labels_1d(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of one length, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean over the classes present in ``y_true`` of the recall of that class."""
    y_true, y_pred = _labels_1d(y_true, y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of int >= 0, shape (N,)
    n_classes : int, optional
        Rows and columns of the matrix (default: ``max(y_true, y_pred) + 1``). Classes absent
        from both get a row and a column of zeros.

    Returns
    -------
    np.ndarray of int64, shape (n_classes, n_classes)
        ``m[i, j]`` = examples of class ``i`` predicted as ``j``: rows sum to the true class
        counts, columns to the predicted ones (scikit-learn's ``confusion_matrix(y_true, y_pred,
        labels=range(n_classes))``).
    """
    y_true, y_pred = _labels_1d(y_true, y_pred)
    y_true, y_pred = y_true.astype(np.int64), y_pred.astype(np.int64)
    if len(y_true) and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("class labels must be >= 0")
    top = int(max(y_true.max(), y_pred.max())) + 1 if len(y_true) else 0
    n = top if n_classes is None else int(n_classes)
    if n < top:
        raise ValueError(f"labels go up to {top - 1} but n_classes={n}")
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n).astype(np.int64)


def cohen_kappa(y_true, y_pred) -> float:
    """Cohen's kappa: agreement beyond chance, ``(p_o - p_e) / (1 - p_e)``.

    ``p_o`` is the accuracy and ``p_e = sum_k p_true(k) p_pred(k)`` the agreement expected
    from the two label distributions alone. 1 is perfect, 0 chance level (e.g. a classifier
    that predicts one class for everything), negative worse than chance. NaN when it is
    undefined (``p_e = 1``: truth and predictions are the same single class), as in
    scikit-learn's ``cohen_kappa_score``.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
    """
    y_true, y_pred = _labels_1d(y_true, y_pred)
    classes = np.union1d(y_true, y_pred)
    if len(y_true) == 0:
        return float("nan")
    p_true = np.array([np.mean(y_true == c) for c in classes])
    p_pred = np.array([np.mean(y_pred == c) for c in classes])
    p_o, p_e = float(np.mean(y_true == y_pred)), float(np.dot(p_true, p_pred))
    return float("nan") if np.isclose(p_e, 1.0, rtol=0, atol=1e-12) else (p_o - p_e) / (1.0 - p_e)


def weighted_f1(y_true, y_pred) -> float:
    """F1 of each class, averaged with weights equal to the class counts in ``y_true``.

    A class never predicted (precision undefined) or never true (recall undefined) has F1 0,
    as scikit-learn's ``f1_score(average="weighted", zero_division=0)``; classes absent from
    ``y_true`` weigh nothing. NaN for empty inputs.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
    """
    y_true, y_pred = _labels_1d(y_true, y_pred)
    if len(y_true) == 0:
        return float("nan")
    total = 0.0
    for c in np.unique(y_true):
        tp = float(np.sum((y_true == c) & (y_pred == c)))
        denominator = float(np.sum(y_true == c) + np.sum(y_pred == c))  # 2 tp + fp + fn
        total += np.sum(y_true == c) * (2 * tp / denominator)
    return float(total / len(y_true))


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
    aucs = np.array([_binary_auc(y_true == c, scores[:, c]) for c in np.unique(y_true)])
    defined = aucs[~np.isnan(aucs)]  # a class that is all or none of the set has no AUC
    return float(defined.mean()) if len(defined) else float("nan")


def classification_report(y_true, logits) -> dict:
    """The figures EEG papers report, from logits.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
        Classes ``0..n_classes-1``.
    logits : array-like, shape (N, n_classes)
        Scores of each class (softmax-ed for the AUROC); the prediction is the argmax.

    Returns
    -------
    dict
        ``balanced_accuracy``, ``accuracy``, ``auroc`` (macro one-vs-rest with more than two
        classes; NaN when ``y_true`` holds one class), ``cohen_kappa``, ``weighted_f1``
        (floats), ``confusion_matrix`` (list of ``n_classes`` lists of ``n_classes`` ints, rows:
        true class, columns: predicted class; a plain list so that it goes to JSON) and ``n``.
    """
    y_true, logits = np.asarray(y_true), np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ValueError(f"logits must be (N, n_classes) with N = len(y_true) = {len(y_true)}, got {logits.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    pred = logits.argmax(axis=1)
    n_classes = max(logits.shape[1], int(y_true.max()) + 1 if len(y_true) else 0)
    return {"balanced_accuracy": balanced_accuracy(y_true, pred), "accuracy": float(np.mean(pred == y_true)),
            "auroc": roc_auc(y_true, probs), "cohen_kappa": cohen_kappa(y_true, pred),
            "weighted_f1": weighted_f1(y_true, pred),
            "confusion_matrix": confusion_matrix(y_true, pred, n_classes).tolist(), "n": int(len(y_true))}


def one_class_warning(confusion, *, where: str = "the evaluated set", classes: Sequence[str] | None = None,
                      threshold: float = ONE_CLASS_SHARE) -> str | None:
    """The warning to give when a classifier predicts (nearly) one class only, else None.

    Parameters
    ----------
    confusion : array-like of int, shape (n_classes, n_classes)
        :func:`confusion_matrix` (rows: true class, columns: predicted class).
    where : str
        Name of the evaluated set in the message (``"the validation set"``, ...).
    classes : sequence of str, optional
        Class names, in index order.
    threshold : float
        Share of the predictions one class must reach (default :data:`ONE_CLASS_SHARE`).

    Returns
    -------
    str or None
        A message naming the class and the set when one column holds at least ``threshold`` of
        the predictions and the set holds more than one true class (with one true class there
        is nothing to tell apart); None otherwise.
    """
    m = np.asarray(confusion, dtype=np.int64)
    n = int(m.sum())
    if m.ndim != 2 or n < 2 or int((m.sum(axis=1) > 0).sum()) < 2:
        return None
    predicted = m.sum(axis=0)
    top = int(predicted.argmax())
    share = predicted[top] / n
    if share < threshold:
        return None
    name = f"{classes[top]!r}" if classes is not None and top < len(classes) else f"{top}"
    true_share = m[top].sum() / n
    what = "all" if predicted[top] == n else f"{share:.0%} of"
    return (f"the classifier predicts one class on {where}: {what} {n} predictions are class {name} "
            f"(index {top}; {true_share:.0%} of the true labels). It has collapsed to one class: check the class "
            "balance of the training data, the learning rate and the number of epochs")


def warn_one_class(report: dict, *, where: str = "the evaluated set", classes: Sequence[str] | None = None,
                   threshold: float = ONE_CLASS_SHARE) -> str | None:
    """Log :func:`one_class_warning` of ``report["confusion_matrix"]`` as a WARNING; return it.

    ``report`` is a :func:`classification_report`; one without ``confusion_matrix`` (e.g. a
    regression report) gives None.
    """
    if "confusion_matrix" not in report:
        return None
    message = one_class_warning(report["confusion_matrix"], where=where, classes=classes, threshold=threshold)
    if message is not None:
        logger.warning(message)
    return message


def regression_report(y_true, y_pred) -> dict:
    """``mse``, ``mae``, ``r2`` and ``n``."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    err = y_pred - y_true
    var = ((y_true - y_true.mean(0)) ** 2).sum()
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "r2": float(1 - (err ** 2).sum() / var) if var > 0 else float("nan"), "n": int(len(y_true))}
