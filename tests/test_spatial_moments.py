import pytest
import torch

from eegfm import MAPEClassifier
from eegfm.modules import spatial_moments


def test_reference_values_left_right_contrast_and_front_back():
    # two channels, far left (x=0) and far right (x=100), both on the midline front-back (y=50); one patch
    grid = torch.tensor([[[[2.0, 1.0]], [[6.0, -3.0]]]])  # (B=1, C=2, K=1, D=2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    pos = torch.tensor([[0.0, 50.0], [100.0, 50.0]])
    out = spatial_moments(grid, mask, pos)
    # m0 = mean, mx = mean of x * h with x = -1, +1, my = 0
    assert torch.allclose(out, torch.tensor([[4.0, -1.0, 2.0, -2.0, 0.0, 0.0]]))
    # a front channel (y=0) and a back one (y=100)
    out = spatial_moments(grid, mask, torch.tensor([[50.0, 0.0], [50.0, 100.0]]))
    assert torch.allclose(out, torch.tensor([[4.0, -1.0, 0.0, 0.0, 2.0, -2.0]]))


def test_permuting_channels_changes_nothing_and_mirroring_flips_the_left_right_moment():
    g = torch.Generator().manual_seed(0)
    grid, pos = torch.randn(3, 5, 4, 8, generator=g), torch.rand(3, 5, 2, generator=g) * 100
    mask = torch.ones(3, 20, dtype=torch.bool)
    out = spatial_moments(grid, mask, pos)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(spatial_moments(grid[:, perm], mask, pos[:, perm]), out, atol=1e-6)
    mirrored = pos.clone()
    mirrored[..., 0] = 100 - pos[..., 0]
    m0, mx, my = spatial_moments(grid, mask, mirrored).split(8, dim=1)
    assert torch.allclose(m0, out[:, :8], atol=1e-6) and torch.allclose(my, out[:, 16:], atol=1e-6)
    assert torch.allclose(mx, -out[:, 8:16], atol=1e-6)


def test_padding_is_left_out_whatever_it_holds():
    g = torch.Generator().manual_seed(1)
    grid, pos = torch.randn(1, 3, 2, 4, generator=g), torch.rand(1, 3, 2, generator=g) * 100
    mask = torch.ones(1, 3, 2, dtype=torch.bool)
    out = spatial_moments(grid, mask, pos)
    padded_grid = torch.cat((grid, torch.full((1, 1, 2, 4), float("nan"))), dim=1)
    padded_pos = torch.cat((pos, torch.full((1, 1, 2), float("nan"))), dim=1)
    padded_mask = torch.cat((mask, torch.zeros(1, 1, 2, dtype=torch.bool)), dim=1)
    assert torch.allclose(spatial_moments(padded_grid, padded_mask, padded_pos), out, atol=1e-6)


def test_positions_of_the_wrong_shape_are_named():
    with pytest.raises(ValueError, match=r"positions must be \(B, C, 2\) or \(C, 2\) for a grid of 1 x 3 channels, "
                                         r"got \(4, 2\)"):
        spatial_moments(torch.zeros(1, 3, 2, 4), torch.ones(1, 6, dtype=torch.bool), torch.zeros(4, 2))


def test_classifier_with_moment_pooling_reads_the_encoder_tokens_with_the_input_positions(tmp_path):
    torch.manual_seed(0)
    enc = dict(patch_size=25, embed_dim=16, depth=1, num_heads=2, conv_channels=[4, 8], pool_bins=2, patch_mean=True)
    model = MAPEClassifier(n_outputs=2, encoder=enc, pooling="moments").eval()
    assert model.num_features == 3 * 16 and model.head.in_features == 48
    x, pos = torch.randn(2, 3, 100) * 10, torch.tensor([[10.0, 50.0], [90.0, 50.0], [50.0, 20.0]])
    channel_mask = torch.tensor([[True, True, True], [True, True, False]])
    features = model.forward_features(x, pos, channel_mask=channel_mask)
    out = model.encoder(x, pos, channel_mask=channel_mask)
    assert torch.equal(features, spatial_moments(out.grid(), out.token_mask, pos))
    # the second example's padded channel changes nothing
    alone = model.forward_features(x[1:, :2], pos[:2])
    assert torch.allclose(features[1:], alone, atol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = MAPEClassifier.from_pretrained(tmp_path).eval()
    assert loaded.pooling == "moments"
    assert torch.equal(loaded(x, pos), model(x, pos))
