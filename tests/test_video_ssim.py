"""SSIM exactly as SPEC 7: skimage per frame, RGB, data_range 255, averaged over frames, mean/std over clips."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from eegfm_video.evaluation import SSIMResult, ssim_score, ssim_video

C1 = (0.01 * 255) ** 2  # skimage's (K1 * data_range) ** 2


def hand_made_pair():
    """Two 3-frame RGB clips 24 x 32: gradients and a checkerboard, and a distorted copy."""
    yy, xx = np.mgrid[0:24, 0:32]
    frames = []
    for f in range(3):
        r = (xx * 8 + f * 20) % 256
        g = (yy * 10) % 256
        b = (((xx // 4 + yy // 4 + f) % 2) * 200 + 30)
        frames.append(np.stack([r, g, b], axis=-1))
    gt = np.stack(frames).astype(np.uint8)
    noise = np.random.default_rng(0).integers(-40, 41, gt.shape)
    pred = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
    return pred, gt


def test_equals_skimage_per_frame_mean_on_a_hand_made_pair():
    pred, gt = hand_made_pair()
    expected = np.mean(
        [structural_similarity(p, g, data_range=255, channel_axis=-1) for p, g in zip(pred, gt)]
    )
    assert ssim_video(pred, gt) == pytest.approx(expected, abs=1e-12)
    assert 0.2 < expected < 0.95  # a real distortion, not a trivial value
    assert ssim_video(torch.from_numpy(pred), torch.from_numpy(gt)) == pytest.approx(expected, abs=1e-12)


def test_constant_frames_give_the_closed_form_luminance_term():
    # Constant frames have zero variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1), per frame and channel.
    a, b = np.array([100.0, 30.0]), np.array([150.0, 30.0])
    pred = np.stack([np.full((16, 16, 3), v, np.uint8) for v in a])
    gt = np.stack([np.full((16, 16, 3), v, np.uint8) for v in b])
    per_frame = (2 * a * b + C1) / (a**2 + b**2 + C1)
    assert per_frame[1] == 1.0
    assert ssim_video(pred, gt) == pytest.approx(per_frame.mean(), abs=1e-9)


def test_identical_clips_score_one():
    _, gt = hand_made_pair()
    assert ssim_video(gt, gt.copy()) == pytest.approx(1.0, abs=1e-12)
    res = ssim_score(np.stack([gt, gt]), np.stack([gt, gt]))
    assert res.mean == pytest.approx(1.0, abs=1e-12) and res.std == pytest.approx(0.0, abs=1e-12)


def test_ssim_score_is_mean_and_population_std_over_clips():
    pred, gt = hand_made_pair()
    preds = np.stack([pred, gt, pred[::-1]])
    gts = np.stack([gt, gt, gt])
    per_clip = np.array([ssim_video(p, g) for p, g in zip(preds, gts)])
    res = ssim_score(preds, gts)
    assert isinstance(res, SSIMResult)
    np.testing.assert_allclose(res.per_clip, per_clip, rtol=0, atol=1e-12)
    assert res.mean == pytest.approx(per_clip.mean(), abs=1e-12)
    assert res.std == pytest.approx(np.std(per_clip), abs=1e-12)  # ddof = 0, as the references
    assert res.per_clip[1] == pytest.approx(1.0)
    as_list = ssim_score(list(preds), [torch.from_numpy(g) for g in gts])  # sequences of clips too
    np.testing.assert_array_equal(as_list.per_clip, res.per_clip)


def test_errors_name_the_argument():
    pred, gt = hand_made_pair()
    with pytest.raises(TypeError, match=r"pred must have dtype uint8 \(pixels 0..255\), got dtype float64"):
        ssim_video(pred / 255.0, gt)
    with pytest.raises(TypeError, match=r"gt must be a numpy array or a torch tensor of uint8 pixels"):
        ssim_video(pred, gt.tolist())
    with pytest.raises(ValueError, match=r"pred and gt must have the same shape \(F, H, W, 3\), got \(3, 24, 32, 3\) and \(2, 24, 32, 3\)"):
        ssim_video(pred, gt[:2])
    with pytest.raises(ValueError, match=r"gt must have shape \(F, H, W, 3\) \(RGB, channels last\), got shape \(24, 32, 3\)"):
        ssim_video(pred, gt[0])
    with pytest.raises(ValueError, match=r"pred must have shape \(F, H, W, 3\) \(RGB, channels last\), got shape \(3, 24, 32, 4\)"):
        ssim_video(np.concatenate([pred, pred[..., :1]], -1), gt)
    with pytest.raises(ValueError, match=r"pred frames must be at least 7 x 7 pixels for SSIM's window, got H x W = 6 x 32"):
        ssim_video(pred[:, :6], gt[:, :6])
    with pytest.raises(ValueError, match=r"pred must hold at least one frame"):
        ssim_video(pred[:0], gt[:0])
    with pytest.raises(ValueError, match=r"preds and gts must hold the same number of clips, got 2 and 1"):
        ssim_score(np.stack([pred, pred]), np.stack([gt]))
    with pytest.raises(ValueError, match=r"preds must have shape \(B, F, H, W, 3\)"):
        ssim_score(pred, gt)
    with pytest.raises(ValueError, match=r"preds\[1\] and gts\[1\] must have the same shape"):
        ssim_score([pred, pred], [gt, gt[:1]])
    with pytest.raises(ValueError, match=r"preds must hold at least one clip, got 0"):
        ssim_score([], [])
