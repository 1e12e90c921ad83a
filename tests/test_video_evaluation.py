"""evaluate_clips / format_results: SSIM + frame- and video-based N-way top-K with chance beside each figure."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from eegfm_video.evaluation import TorchClassifier, evaluate_clips, format_results, n_way_top_k, ssim_score


class PooledLinear(nn.Module):
    """Deterministic toy classifier: 4 x 4 average pool of each frame -> linear -> 64 logits; clips average frames."""

    def __init__(self, n_classes=64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(n_classes, 3 * 4 * 4, generator=g) * 20)

    def forward(self, x):  # (N, 3, H, W) or (B, F, 3, H, W)
        lead = x.shape[:-3]
        pooled = nn.functional.adaptive_avg_pool2d(x.flatten(0, -4), 4).flatten(1)  # (N*, 48)
        logits = (pooled - 0.5) @ self.weight.T
        return logits.reshape(*lead, -1).mean(dim=1) if len(lead) == 2 else logits


@pytest.fixture(scope="module")
def classifiers():
    net = PooledLinear()
    return TorchClassifier(net, device="cpu"), TorchClassifier(net, ndim=5, device="cpu")


def clips(seed, n=4, frames=3, size=16):
    return np.random.default_rng(seed).integers(0, 256, (n, frames, size, size, 3), dtype=np.uint8)


def test_identical_clips_score_one_with_chance_beside_and_json_round_trip(classifiers):
    frame_clf, video_clf = classifiers
    gt = clips(0)
    res = evaluate_clips(gt.copy(), gt, frame_clf, video_clf)
    assert res["n_clips"] == 4 and res["n_frames"] == 3
    assert res["protocol"] == {"top_k": 1, "n_trials": 100, "n_gt_classes": 3, "seed": 0}
    assert res["ssim"]["mean"] == pytest.approx(1.0) and res["ssim"]["std"] == pytest.approx(0.0, abs=1e-12)
    for kind in ("frame", "video"):
        assert list(res[kind]) == ["2-way", "40-way"]
        assert res[kind]["2-way"]["chance"] == 0.75
        assert res[kind]["40-way"]["chance"] == pytest.approx(3 / 42)
        for row in res[kind].values():
            assert row["mean"] == 1.0 and row["std"] == 0.0 and row["per_clip"] == [1.0] * 4
            assert row["n_classes"] == 64
    assert json.loads(json.dumps(res)) == res


def test_scores_are_the_protocol_composed_exactly(classifiers):
    frame_clf, video_clf = classifiers
    pred, gt = clips(1), clips(2)
    res = evaluate_clips(pred, gt, frame_clf, video_clf, n_ways=(2, 10), n_trials=50, seed=3)
    ssim = ssim_score(pred, gt)
    assert res["ssim"] == {"mean": ssim.mean, "std": ssim.std, "per_clip": ssim.per_clip.tolist()}
    flat_pred, flat_gt = frame_clf(pred.reshape(12, 16, 16, 3)), frame_clf(gt.reshape(12, 16, 16, 3))
    for n_way in (2, 10):
        frames = n_way_top_k(flat_pred, flat_gt, n_way, n_trials=50, seed=3).per_sample.reshape(4, 3)
        row = res["frame"][f"{n_way}-way"]
        np.testing.assert_allclose(row["per_clip"], frames.mean(axis=1), rtol=0, atol=1e-15)  # frames -> clip
        assert row["mean"] == pytest.approx(frames.mean(axis=1).mean()) and row["std"] == pytest.approx(frames.mean(axis=1).std())
        video = n_way_top_k(video_clf(pred), video_clf(gt), n_way, n_trials=50, seed=3)
        np.testing.assert_array_equal(res["video"][f"{n_way}-way"]["per_clip"], video.per_sample)


def test_classifiers_are_optional():
    gt = clips(0, n=2)
    res = evaluate_clips(gt, gt)
    assert set(res) == {"n_clips", "n_frames", "protocol", "ssim"}
    assert format_results(res).splitlines()[-1].split() == ["SSIM", "1.000", "±", "0.000", "-"]


def test_format_results_puts_chance_beside_every_figure():
    row = lambda m, s, c: {"mean": m, "std": s, "chance": c}  # noqa: E731
    results = {
        "n_clips": 200, "n_frames": 6,
        "protocol": {"top_k": 1, "n_trials": 100, "n_gt_classes": 3, "seed": 0},
        "ssim": {"mean": 0.261, "std": 0.08},
        "frame": {"2-way": row(0.786, 0.1, 0.75), "40-way": row(0.154, 0.05, 3 / 42)},
        "video": {"2-way": row(0.821, 0.2, 0.75), "40-way": row(0.172, 0.07, 3 / 42)},
    }
    assert format_results(results) == "\n".join([
        "200 clips x 6 frames; N-way top-1: 100 trials, top-3 GT classes, seed 0",
        "metric                    score (mean ± std)    chance",
        "SSIM                           0.261 ± 0.080         -",
        "frame-based 2-way top-1        0.786 ± 0.100     0.750",
        "frame-based 40-way top-1       0.154 ± 0.050     0.071",
        "video-based 2-way top-1        0.821 ± 0.200     0.750",
        "video-based 40-way top-1       0.172 ± 0.070     0.071",
    ])


def test_errors_name_the_argument(classifiers):
    frame_clf, _ = classifiers
    gt = clips(0, n=2)
    with pytest.raises(ValueError, match=r"pred_videos and gt_videos must have the same shape \(B, F, H, W, 3\), got \(2, 2, 16, 16, 3\) and \(2, 3, 16, 16, 3\)"):
        evaluate_clips(gt[:, :2], gt)
    with pytest.raises(ValueError, match=r"gt_videos must have shape \(B, F, H, W, 3\)"):
        evaluate_clips(gt, gt[0])
    with pytest.raises(TypeError, match=r"pred_videos must have dtype uint8"):
        evaluate_clips(gt.astype(np.float32), gt)
    with pytest.raises(ValueError, match=r"n_ways must be a non-empty sequence of ints \(e.g. \(2, 40\)\), got n_ways=\(\)"):
        evaluate_clips(gt, gt, frame_clf, n_ways=())
    small = TorchClassifier(PooledLinear(n_classes=10), device="cpu")
    with pytest.raises(ValueError, match=r"n_way must be at most n_classes - n_gt_classes \+ 1 = 8 .* got n_way=40"):
        evaluate_clips(gt, gt, small)
    with pytest.raises(ValueError, match=r"frame_classifier must return probabilities of shape \(6, n_classes\) for input \(6, 16, 16, 3\), got shape \(6,\)"):
        evaluate_clips(gt, gt, lambda frames: np.ones(len(frames)))
    with pytest.raises(TypeError, match=r"video_classifier must be callable \(uint8 pixels -> probabilities\), a str or None, got 3"):
        evaluate_clips(gt, gt, video_classifier=3)
