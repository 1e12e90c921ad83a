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


def test_the_reference_embedder_is_blind_to_a_patch_offset_and_mean_feature_sees_its_sign():
    torch.manual_seed(0)
    patch = torch.randn(1, 32) * 5
    reference = NeuralPatchEmbedder(patch_size=32, embed_dim=16).eval()
    # the per-patch z-score removes the offset and the std is unchanged: the same embedding
    assert torch.allclose(reference(patch), reference(patch + 40.0), atol=1e-5)
    with_mean = NeuralPatchEmbedder(patch_size=32, embed_dim=16, mean_feature=True).eval()
    assert with_mean.proj.in_features == reference.proj.in_features + 1
    up, down = with_mean(patch + 40.0), with_mean(patch - 40.0)
    assert not torch.allclose(up, with_mean(patch), atol=1e-3)
    assert not torch.allclose(up, down, atol=1e-3)
    # the extra input is asinh(mean in µV): with its weights zeroed the embedder is the reference one
    with torch.no_grad():
        with_mean.proj.weight[:, -1] = 0
        with_mean.proj.weight[:, :-1] = reference.proj.weight
        with_mean.proj.bias.copy_(reference.proj.bias)
        with_mean.convs.load_state_dict(reference.convs.state_dict())
    assert torch.allclose(with_mean(patch + 40.0), reference(patch), atol=1e-5)


@pytest.mark.parametrize("chunk", [7, 16])
def test_cpu_chunks_without_grad_give_the_same_embeddings_bit_for_bit(monkeypatch, chunk):
    import eegfm.modules.patch_embed as patch_embed

    torch.manual_seed(0)
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=16, mean_feature=True).eval()
    patches = torch.randn(2, 5, 3, 32) * 20  # 30 patches: several chunks and a remainder
    calls = []
    embed.convs.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    with torch.no_grad():
        one_call = embed(patches)
        monkeypatch.setattr(patch_embed, "CPU_CHUNK_PATCHES", chunk)
        chunked = embed(patches)
    assert torch.equal(one_call, chunked)
    assert calls == [30] + [chunk] * (30 // chunk) + [30 % chunk]


def test_a_training_step_embeds_in_one_call_so_gradients_keep_their_summation_order(monkeypatch):
    import eegfm.modules.patch_embed as patch_embed

    monkeypatch.setattr(patch_embed, "CPU_CHUNK_PATCHES", 4)
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=16)
    calls = []
    embed.convs.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    embed(torch.randn(3, 5, 32)).sum().backward()
    assert calls == [15]
