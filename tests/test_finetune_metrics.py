"""Metrics against hand computations and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score

from eegfm.finetune import balanced_accuracy, classification_report, regression_report, roc_auc


def test_balanced_accuracy_by_hand_and_sklearn():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 0])
    assert balanced_accuracy(y, pred) == pytest.approx((3 / 4 + 1 / 2) / 2)
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    with pytest.raises(ValueError, match="must be 1-d of one length"):
        balanced_accuracy(y, pred[:5])


def test_auroc_with_ties_equals_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    probs = rng.dirichlet(np.ones(3), 300)
    y3 = rng.integers(0, 3, 300)
    assert roc_auc(y3, probs) == pytest.approx(roc_auc_score(y3, probs, multi_class="ovr", average="macro"))


def test_reports():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    report = classification_report([0, 1, 1, 1], logits)
    assert report == {"balanced_accuracy": pytest.approx(5 / 6), "accuracy": 0.75, "auroc": 1.0, "n": 4}
    y, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.5, 4.0])
    reg = regression_report(y, pred)
    assert reg["mse"] == pytest.approx(0.125) and reg["mae"] == pytest.approx(0.25)
    assert reg["r2"] == pytest.approx(r2_score(y, pred))
