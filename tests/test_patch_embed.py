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


def _embedders_each_way(**kwargs):
    torch.manual_seed(0)
    conv = NeuralPatchEmbedder(**kwargs)
    matmul = NeuralPatchEmbedder(**kwargs)
    matmul.load_state_dict(conv.state_dict())
    conv.conv_impl, matmul.conv_impl = "conv", "matmul"
    return conv, matmul


@pytest.mark.parametrize("kwargs", [
    dict(patch_size=200, embed_dim=24),  # base layout: 100 steps pooled into 4 even bins
    dict(patch_size=50, embed_dim=16, conv_channels=(4, 8), pool_bins=3, mean_feature=True),  # uneven bins
    dict(patch_size=25, embed_dim=8, conv_channels=(6,), pool_bins=2),  # one conv, GroupNorm of 1 group
])
def test_convolutions_as_matmuls_give_the_modules_embeddings_and_gradients(kwargs):
    conv, matmul = _embedders_each_way(**kwargs)
    patches = torch.randn(3, 4, 2, kwargs["patch_size"]) * 20
    assert torch.allclose(conv(patches), matmul(patches), atol=1e-5)
    # the same maths: in float64 the stacks' outputs and every gradient agree to rounding
    conv, matmul = conv.double(), matmul.double()
    normalised = torch.randn(24, 1, kwargs["patch_size"], dtype=torch.float64)
    weights = torch.randn(24, conv.proj.in_features - 1 - conv.mean_feature, dtype=torch.float64)
    out_conv, out_matmul = conv._pooled_convs(normalised), matmul._pooled_matmuls(normalised)
    assert torch.allclose(out_conv, out_matmul, rtol=0, atol=1e-12)
    (out_conv * weights).sum().backward()
    (out_matmul * weights).sum().backward()
    for (name, a), b in zip(conv.convs.named_parameters(), matmul.convs.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12), name


def test_convolutions_as_matmuls_follow_autocast_like_the_modules():
    conv, matmul = _embedders_each_way(patch_size=64, embed_dim=16)
    patches = torch.randn(5, 64) * 20
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_conv, out_matmul = conv(patches), matmul(patches)
    assert out_conv.dtype == out_matmul.dtype
    assert (out_conv.float() - out_matmul.float()).abs().max() < 0.05  # LayerNorm output, bf16 rounding


def test_checkpointed_convolutions_give_the_same_gradients():
    torch.manual_seed(0)
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=16)
    patches = torch.randn(6, 32) * 20
    grads = []
    for checkpointed in (False, True):
        embed.zero_grad()
        embed.checkpoint_convs = checkpointed
        embed(patches).square().mean().backward()
        grads.append([p.grad.clone() for p in embed.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_an_unknown_conv_impl_is_named():
    embed = NeuralPatchEmbedder(patch_size=32, embed_dim=8)
    embed.conv_impl = "fft"
    with pytest.raises(ValueError, match=r"conv_impl='fft' is not one of \['conv', 'matmul'\]"):
        embed(torch.zeros(2, 32))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_convolutions_as_matmuls_give_the_modules_embeddings(dtype):
    conv, matmul = _embedders_each_way(patch_size=200, embed_dim=200)
    conv.cuda(), matmul.cuda()
    patches = torch.randn(64, 19, 4, 200, device="cuda") * 20
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out_conv, out_matmul = conv(patches), matmul(patches)
    tolerance = 1e-4 if dtype == torch.float32 else 0.1
    assert (out_conv.float() - out_matmul.float()).abs().max().item() < tolerance


def test_conv_impl_none_follows_the_devices_default(monkeypatch):
    import eegfm.modules.patch_embed as patch_embed

    conv, _ = _embedders_each_way(patch_size=32, embed_dim=8)
    conv.conv_impl = None
    calls = []
    conv.convs.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    patches = torch.randn(5, 32) * 20
    as_conv = conv(patches)
    monkeypatch.setitem(patch_embed.DEFAULT_CONV_IMPL, "cpu", "matmul")
    as_matmul = conv(patches)
    assert calls == [5]  # the second call never ran the Conv1d modules
    assert torch.allclose(as_conv, as_matmul, atol=1e-5)
    assert patch_embed.DEFAULT_CONV_IMPL["cuda"] == "matmul"  # measured on an H200: benchmarks/results/README.md
