"""Metrics against hand computations and scikit-learn (scikit-learn is used by the tests only)."""

import logging

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score, r2_score, roc_auc_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from eegfm.finetune import (balanced_accuracy, classification_report, cohen_kappa, confusion_matrix,
                            one_class_warning, regression_report, roc_auc, weighted_f1)
from eegfm.finetune.metrics import warn_one_class


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


# (y_true, y_pred, n_classes, kappa, weighted F1, confusion matrix): exact fractions, checked below against sklearn
CASES = [
    # 3 classes, every kind of error. p_o = 5/9, p_e = (4*3 + 2*3 + 3*3)/81 = 1/3; F1 = 4/7, 2/5, 2/3
    ([0, 0, 0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 2, 1, 0, 2, 2, 1], 3, 1 / 3, (4 * 4 / 7 + 2 * 2 / 5 + 3 * 2 / 3) / 9,
     [[2, 1, 1], [1, 1, 0], [0, 1, 2]]),
    # class 2 is never predicted (its F1 is 0) and class 3 is absent from both (a zero row and column)
    ([0, 1, 1, 2, 2, 2], [0, 1, 0, 1, 1, 0], 4, 1 / 9, (1 * 1 / 2 + 2 * 2 / 5) / 6,
     [[1, 0, 0, 0], [1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0]]),
    # class 2 is predicted but never true: it weighs nothing in F1, and lowers kappa
    ([0, 0, 1, 1], [0, 2, 1, 1], 3, 0.6, (2 * 2 / 3 + 2 * 1) / 4, [[1, 0, 1], [0, 2, 0], [0, 0, 0]]),
    # one class predicted for everything: kappa 0 (chance), F1 of the other class 0
    ([0, 0, 0, 1, 1], [0, 0, 0, 0, 0], 2, 0.0, 3 * (2 * 3 / 8) / 5, [[3, 0], [2, 0]]),
    # perfect
    ([1, 0, 2, 1], [1, 0, 2, 1], 3, 1.0, 1.0, [[1, 0, 0], [0, 2, 0], [0, 0, 1]]),
]


@pytest.mark.parametrize("y, pred, n_classes, kappa, f1, matrix", CASES)
def test_kappa_weighted_f1_and_confusion_matrix_by_hand_and_sklearn(y, pred, n_classes, kappa, f1, matrix):
    assert cohen_kappa(y, pred) == pytest.approx(kappa, abs=1e-12)
    assert cohen_kappa(y, pred) == pytest.approx(cohen_kappa_score(y, pred), abs=1e-12)
    assert weighted_f1(y, pred) == pytest.approx(f1, abs=1e-12)
    assert weighted_f1(y, pred) == pytest.approx(f1_score(y, pred, average="weighted", zero_division=0), abs=1e-12)
    m = confusion_matrix(y, pred, n_classes)
    assert m.dtype == np.int64 and m.tolist() == matrix
    assert matrix == sk_confusion_matrix(y, pred, labels=list(range(n_classes))).tolist()


def test_kappa_f1_matrix_on_random_labels_equal_sklearn():
    rng = np.random.default_rng(2)
    for n_classes in (2, 3, 5):
        y, pred = rng.integers(0, n_classes, 400), rng.integers(0, n_classes, 400)
        pred[:100] = y[:100]  # better than chance
        assert cohen_kappa(y, pred) == pytest.approx(cohen_kappa_score(y, pred), abs=1e-12)
        assert weighted_f1(y, pred) == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-12)
        assert np.array_equal(confusion_matrix(y, pred), sk_confusion_matrix(y, pred))


def test_edge_cases():
    assert np.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))  # undefined (p_e = 1), as sklearn's default
    assert np.isnan(cohen_kappa([], [])) and np.isnan(weighted_f1([], []))
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
    assert confusion_matrix([0, 2], [2, 2]).shape == (3, 3)  # default: max label + 1
    with pytest.raises(ValueError, match="labels go up to 2 but n_classes=2"):
        confusion_matrix([0, 2], [0, 0], 2)
    with pytest.raises(ValueError, match="must be 1-d of one length"):
        cohen_kappa([0, 1], [0])


def test_reports():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    report = classification_report([0, 1, 1, 1], logits)  # predictions 0, 1, 0, 1
    assert report == {"balanced_accuracy": pytest.approx(5 / 6), "accuracy": 0.75, "auroc": 1.0,
                      "cohen_kappa": pytest.approx(0.5), "weighted_f1": pytest.approx((2 / 3 + 3 * 0.8) / 4),
                      "confusion_matrix": [[1, 0], [1, 2]], "n": 4}
    # a class the model knows but the set lacks and it never predicts: still a row and column
    report3 = classification_report([0, 1], np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert report3["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]] and report3["cohen_kappa"] == 1.0
    y, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.5, 4.0])
    reg = regression_report(y, pred)
    assert reg["mse"] == pytest.approx(0.125) and reg["mae"] == pytest.approx(0.25)
    assert reg["r2"] == pytest.approx(r2_score(y, pred))


def test_one_class_warning_names_the_class_and_the_set(caplog):
    all_rest = [[5, 0], [3, 0]]  # 8 predictions, all class 0
    message = one_class_warning(all_rest, where="the validation set", classes=["rest", "arithmetic"])
    assert message.startswith("the classifier predicts one class on the validation set: all 8 predictions are "
                              "class 'rest' (index 0; 62% of the true labels)")
    nearly = np.array([[50, 0], [46, 4]])  # 96 % predicted class 0
    assert "96% of 100 predictions are class 1" not in one_class_warning(nearly)
    assert "96% of 100 predictions are class 0" in one_class_warning(nearly)
    assert one_class_warning([[50, 0], [40, 10]]) is None  # 90 %: below the threshold
    assert one_class_warning([[0, 0], [0, 7]]) is None  # one true class: nothing to tell apart
    with caplog.at_level(logging.WARNING, logger="eegfm.finetune"):
        assert warn_one_class({"confusion_matrix": all_rest}, where="test subjects 07", classes=["a", "b"])
        assert warn_one_class({"mse": 1.0}) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "on test subjects 07: all 8 predictions are class 'a'" in caplog.records[0].getMessage()


def test_roc_auc_of_a_one_class_set_with_three_outputs_is_nan_without_a_warning():
    import warnings

    from eegfm.finetune.metrics import roc_auc

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(roc_auc([2, 2, 2], np.eye(3)[[0, 1, 2]]))
