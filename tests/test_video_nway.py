"""N-way top-K (SPEC 7): GT = top-3 classes of the ground truth, seeded distractor draws, exact chance level."""

import itertools
import math

import numpy as np
import pytest
import torch

from eegfm_video.evaluation import NWayResult, chance_level, gt_classes, n_way_top_k
from eegfm_video.evaluation import nway as nway_module


def dirichlet(n_samples, n_classes, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(n_classes), size=n_samples)


def test_gt_classes_are_the_top_three_of_the_ground_truth_best_first():
    gt = np.array([[0.1, 0.4, 0.05, 0.3, 0.15], [0.2, 0.2, 0.2, 0.1, 0.3]])
    np.testing.assert_array_equal(gt_classes(gt), [[1, 3, 4], [4, 0, 1]])  # ties: lower index first
    np.testing.assert_array_equal(gt_classes(gt, n_gt_classes=1), [[1], [4]])


@pytest.mark.parametrize("n_way,top_k", [(2, 1), (40, 1), (40, 5)])
def test_a_perfect_predictor_scores_one(n_way, top_k):
    gt = dirichlet(50, 100, seed=1)
    res = n_way_top_k(gt.copy(), gt, n_way, top_k=top_k)
    assert isinstance(res, NWayResult)
    assert res.per_sample.shape == (50,)
    np.testing.assert_array_equal(res.per_sample, 1.0)
    assert res.mean == 1.0


@pytest.mark.parametrize("n_way", [2, 10, 40])
def test_an_unrelated_predictor_scores_near_chance(n_way):
    gt = dirichlet(600, 100, seed=2)
    pred = np.roll(gt, 1, axis=0)  # every sample gets another sample's probabilities
    res = n_way_top_k(pred, gt, n_way)
    assert res.mean == pytest.approx(chance_level(n_way), abs=0.03)  # SE about 0.01


def test_hand_computed_cases_with_a_known_rank():
    # One GT class (0) ranked 3rd of 5 by the predictor: 2 classes above it, 2 below.
    gt = np.array([[0.6, 0.1, 0.1, 0.1, 0.1]])
    pred = np.array([[0.2, 0.3, 0.25, 0.15, 0.1]])
    kw = dict(n_gt_classes=1, n_trials=50)
    # 5-way draws all 4 others: 2 distractors above -> in the top 3, never in the top 2.
    assert n_way_top_k(pred, gt, 5, top_k=3, **kw).mean == 1.0
    assert n_way_top_k(pred, gt, 5, top_k=2, **kw).mean == 0.0
    # 2-way: success iff the one distractor is one of the 2 below, probability 1/2.
    assert n_way_top_k(pred, gt, 2, n_gt_classes=1, n_trials=20000).mean == pytest.approx(0.5, abs=0.015)


def test_success_for_any_gt_class_and_ties_count_as_failures():
    # GT classes are 0, 1, 2 (in that order); the predictor ranks GT class 2 highest of all.
    gt = np.array([[0.5, 0.3, 0.15, 0.05, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, 0.9, 0.04, 0.03, 0.03]])
    assert n_way_top_k(pred, gt, 4).mean == 1.0
    # A distractor tied with the best GT class counts against it.
    flat = np.full((1, 6), 1 / 6)
    assert n_way_top_k(flat, gt, 2).mean == 0.0


def test_seeded_reproducible_and_seed_dependent():
    gt, pred = dirichlet(40, 50, seed=4), dirichlet(40, 50, seed=5)
    a = n_way_top_k(pred, gt, 2, seed=7)
    b = n_way_top_k(pred, gt, 2, seed=7)
    c = n_way_top_k(pred, gt, 2, seed=8)
    np.testing.assert_array_equal(a.per_sample, b.per_sample)
    assert not np.array_equal(a.per_sample, c.per_sample)
    from_generator = n_way_top_k(pred, gt, 2, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(from_generator.per_sample, a.per_sample)
    as_torch = n_way_top_k(torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), 2, seed=7)
    np.testing.assert_array_equal(as_torch.per_sample, a.per_sample)  # float32 keeps the order here


def test_results_do_not_depend_on_the_memory_chunking(monkeypatch):
    gt, pred = dirichlet(30, 50, seed=6), dirichlet(30, 50, seed=7)
    whole = n_way_top_k(pred, gt, 40, n_trials=20, seed=3)
    monkeypatch.setattr(nway_module, "_MAX_KEYS_PER_CHUNK", 1)  # one sample per chunk
    chunked = n_way_top_k(pred, gt, 40, n_trials=20, seed=3)
    np.testing.assert_array_equal(whole.per_sample, chunked.per_sample)


def test_distractors_are_uniform_over_the_non_gt_classes():
    # Predictor ranks class j above the GT exactly for one j at a time: the 2-way failure rate
    # over many trials estimates P(distractor == j) = 1 / (C - G) for every non-GT class.
    n_classes, n_gt = 8, 3
    gt = np.tile(np.linspace(1.0, 0.1, n_classes), (n_classes - n_gt, 1))  # GT classes 0, 1, 2
    pred = np.full((n_classes - n_gt, n_classes), 0.1)
    pred[:, :n_gt] = 0.5
    pred[np.arange(n_classes - n_gt), np.arange(n_gt, n_classes)] = 0.9
    res = n_way_top_k(pred, gt, 2, n_trials=40000, seed=0)
    np.testing.assert_allclose(1 - res.per_sample, 1 / (n_classes - n_gt), atol=0.01)


def test_chance_level_closed_form_values():
    assert chance_level(2) == 0.75  # three GT classes: 1 - 1/4, not 0.5
    assert chance_level(40) == pytest.approx(3 / 42)
    assert chance_level(2, n_gt_classes=1) == 0.5
    assert chance_level(40, 1, 1, 1000) == pytest.approx(1 / 40)
    assert chance_level(5, top_k=2, n_gt_classes=3) == pytest.approx(1 - 6 / 21)


def test_chance_level_equals_exhaustive_enumeration():
    # Every ordering of the G + N - 1 candidates is equally likely for an unrelated predictor.
    for n_way, top_k, n_gt in [(2, 1, 3), (4, 1, 3), (4, 2, 2), (5, 3, 1)]:
        n = n_gt + n_way - 1
        wins = sum(any(r < top_k for r in ranks[:n_gt]) for ranks in itertools.permutations(range(n)))
        assert chance_level(n_way, top_k, n_gt) == pytest.approx(wins / math.factorial(n), abs=1e-12)


@pytest.mark.parametrize("n_way,top_k", [(2, 1), (40, 1), (10, 3)])
def test_chance_level_equals_a_large_simulation(n_way, top_k):
    # Independent predictions; many samples (the spread is mostly between samples): SE < 0.004.
    gt, pred = dirichlet(20000, 60, seed=10), dirichlet(20000, 60, seed=11)
    res = n_way_top_k(pred, gt, n_way, top_k=top_k, n_trials=10, seed=1)
    se = res.per_sample.std() / np.sqrt(len(res.per_sample))
    assert se < 0.004
    assert res.mean == pytest.approx(chance_level(n_way, top_k, 3, 60), abs=0.015)


def test_errors_name_the_argument():
    gt, pred = dirichlet(4, 10, seed=0), dirichlet(4, 10, seed=1)
    with pytest.raises(ValueError, match=r"n_way must be at most n_classes - n_gt_classes \+ 1 = 8 .* got n_way=9"):
        n_way_top_k(pred, gt, 9)
    with pytest.raises(ValueError, match=r"pred_probs and gt_probs must have the same shape \(S, C\), got \(4, 10\) and \(3, 10\)"):
        n_way_top_k(pred, gt[:3], 2)
    with pytest.raises(ValueError, match=r"n_way must be >= 2, got n_way=1"):
        n_way_top_k(pred, gt, 1)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 1\] \(n_way - 1 = 1\), got top_k=2"):
        n_way_top_k(pred, gt, 2, top_k=2)
    with pytest.raises(ValueError, match=r"n_trials must be >= 1, got n_trials=0"):
        n_way_top_k(pred, gt, 2, n_trials=0)
    with pytest.raises(TypeError, match=r"n_way must be an int, got 2.0"):
        n_way_top_k(pred, gt, 2.0)
    with pytest.raises(ValueError, match=r"n_gt_classes must be in \[1, 9\] .* got n_gt_classes=10"):
        n_way_top_k(pred, gt, 2, n_gt_classes=10)
    with pytest.raises(TypeError, match=r"seed must be an int or a numpy.random.Generator, got None"):
        n_way_top_k(pred, gt, 2, seed=None)
    with pytest.raises(ValueError, match=r"pred_probs must have shape \(S, C\) \(samples, classes\), got shape \(10,\)"):
        n_way_top_k(pred[0], gt, 2)
    with pytest.raises(TypeError, match=r"gt_probs must hold floating-point probabilities, got dtype int64"):
        n_way_top_k(pred, np.ones((4, 10), dtype=np.int64), 2)
    with pytest.raises(ValueError, match=r"pred_probs must be finite, got 1 NaN/inf values"):
        n_way_top_k(np.where(np.eye(4, 10, k=3, dtype=bool) & (np.arange(4) == 0)[:, None], np.nan, pred), gt, 2)
    with pytest.raises(TypeError, match=r"gt_probs must be a numpy array or a torch tensor of shape \(S, C\), got list"):
        n_way_top_k(pred, gt.tolist(), 2)
    with pytest.raises(ValueError, match=r"n_way must be at most n_classes - n_gt_classes \+ 1 = 998"):
        chance_level(999, 1, 3, 1000)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 39\] \(n_way - 1 = 39\), got top_k=40"):
        chance_level(40, 40)
