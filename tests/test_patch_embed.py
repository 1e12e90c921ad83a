import pytest
import torch

from eegfm.modules.patch_embed import NeuralPatchEmbedder


def test_each_patch_is_embedded_independently():
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=16).eval()
    patches = torch.randn(2, 3, 4, 32) * 20
    out = embed(patches)
    assert out.shape == (2, 3, 4, 16)
    single = embed(patches[1, 2, 3][None])
    assert torch.allclose(out[1, 2, 3], single[0], atol=1e-5)


def test_amplitude_is_kept_despite_per_patch_normalisation():
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=16).eval()
    patch = torch.randn(1, 32)
    assert not torch.allclose(embed(patch), embed(patch * 10), atol=1e-3)


def test_errors():
    with pytest.raises(ValueError, match="patch_size=6 is too short for pool_bins=4"):
        NeuralPatchEmbedder(patch_size=6, embed_dim=8)
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=8)
    with pytest.raises(ValueError, match="patches have 31 samples, expected patch_size=32"):
        embed(torch.zeros(2, 31))
