"""Dynamic-aware noise (SPEC 6): exact plain draw at b = 0, frame correlation b, per-clip b, errors."""

import math

import pytest
import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from eegfm_video.noise import check_shared_noise_share, dynamic_aware_noise, noise_latents

SHAPE = (2, 4, 6, 32, 32)  # (B, C, F, h, w)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def frame_correlation(noise: torch.Tensor, i: int = 0, j: int = 1) -> float:
    """Pearson correlation of frames i and j over every (clip, channel, pixel)."""
    a, b = noise[:, :, i].flatten(), noise[:, :, j].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_b_zero_is_exactly_the_plain_gaussian_draw():
    noise = dynamic_aware_noise(SHAPE, 0.0, generator=gen(3))
    assert torch.equal(noise, randn_tensor(SHAPE, generator=gen(3)))


def test_b_one_gives_the_same_noise_on_every_frame():
    noise = dynamic_aware_noise(SHAPE, 1.0, generator=gen(0))
    assert all(torch.equal(noise[:, :, f], noise[:, :, 0]) for f in range(SHAPE[2]))
    assert not torch.equal(noise[0], noise[1])  # but not across clips


def test_is_the_formula_with_per_frame_then_shared_draws():
    b = 0.3
    g = gen(7)
    per_frame = randn_tensor(SHAPE, generator=g)
    shared = randn_tensor((SHAPE[0], SHAPE[1], 1, SHAPE[3], SHAPE[4]), generator=g)
    expected = math.sqrt(1 - b) * per_frame + math.sqrt(b) * shared
    assert torch.equal(dynamic_aware_noise(SHAPE, b, generator=gen(7)), expected)


@pytest.mark.parametrize("b", [0.0, 0.2, 0.3, 0.7])
def test_unit_variance_and_frame_correlation_equal_b(b):
    noise = dynamic_aware_noise((8, 4, 3, 32, 32), b, generator=gen(1))  # 32768 values per frame
    assert abs(float(noise.var()) - 1.0) < 0.03
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert abs(frame_correlation(noise, i, j) - b) < 0.025
    # different pixels stay independent whatever b
    shifted = torch.corrcoef(torch.stack([noise[:, :, 0, :, :-1].flatten(), noise[:, :, 1, :, 1:].flatten()]))[0, 1]
    assert abs(float(shifted)) < 0.025


def test_one_b_per_clip():
    b = torch.tensor([0.0, 1.0])
    noise = dynamic_aware_noise(SHAPE, b, generator=gen(5))
    plain = randn_tensor(SHAPE, generator=gen(5))
    assert torch.equal(noise[0], plain[0])  # b = 0: the per-frame draw itself
    assert all(torch.equal(noise[1, :, f], noise[1, :, 0]) for f in range(SHAPE[2]))  # b = 1: shared only


def test_same_generator_same_noise_and_list_of_generators():
    assert torch.equal(dynamic_aware_noise(SHAPE, 0.3, generator=gen(2)), dynamic_aware_noise(SHAPE, 0.3, generator=gen(2)))
    assert not torch.equal(dynamic_aware_noise(SHAPE, 0.3, generator=gen(2)),
                           dynamic_aware_noise(SHAPE, 0.3, generator=gen(3)))
    per_clip = dynamic_aware_noise(SHAPE, 0.0, generator=[gen(10), gen(11)])
    assert torch.equal(per_clip[1], randn_tensor(SHAPE[1:], generator=gen(11)))


def test_noise_latents_is_add_noise_with_dynamic_noise():
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    latents = torch.randn(SHAPE, generator=gen(9))
    out = noise_latents(latents, scheduler, 500, 0.3, generator=gen(4))
    alpha_bar = scheduler.alphas_cumprod[500]
    expected = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * dynamic_aware_noise(SHAPE, 0.3, generator=gen(4))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "value, match",
    [
        (1.5, r"shared_noise_share must be in \[0, 1\], got 1.5"),
        (-0.1, r"shared_noise_share must be in \[0, 1\], got -0.1"),
        (float("nan"), r"shared_noise_share must be in \[0, 1\], got nan"),
        ("0.3", r"shared_noise_share must be a number in \[0, 1\] or one per clip, got '0.3'"),
        (True, r"shared_noise_share must be a number in \[0, 1\] or one per clip, got True"),
        ([0.1, 0.2, 0.3], r"shared_noise_share must be a number or 2 values \(one per clip\), got shape \(3,\)"),
        ([[0.1]], r"shared_noise_share must be a number or 2 values \(one per clip\), got shape \(1, 1\)"),
    ],
)
def test_bad_b_is_rejected_with_a_message_naming_it(value, match):
    with pytest.raises(ValueError, match=match):
        dynamic_aware_noise(SHAPE, value, generator=gen())


def test_check_shared_noise_share_returns_float64():
    assert check_shared_noise_share(0.25).dtype == torch.float64
    assert check_shared_noise_share([0.1, 0.2], 2).tolist() == [0.1, 0.2]


def test_shape_must_be_five_dimensional():
    with pytest.raises(ValueError, match=r"shape must be \(batch, channels, frames, height, width\), got \(2, 4, 8, 8\)"):
        dynamic_aware_noise((2, 4, 8, 8), 0.3)
    with pytest.raises(ValueError, match=r"latents must be \(batch, channels, frames, height, width\), got \(2, 4\)"):
        noise_latents(torch.zeros(2, 4), DDIMScheduler(), 10)
