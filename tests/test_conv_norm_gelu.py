import pytest
import torch
from torch import nn

from eegfm.modules import conv_norm_gelu as lean_module
from eegfm.modules import patch_embed
from eegfm.modules.conv_norm_gelu import ConvNormGELU, conv_norm_gelu, fits_conv_norm_gelu
from eegfm.modules.patch_embed import NeuralPatchEmbedder, conv_stack_as_matmuls


def _block(in_channels, out_channels, kernel, stride, groups, approximate="none", dtype=torch.float64):
    torch.manual_seed(in_channels * 100 + kernel)
    block = nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2),
                          nn.GroupNorm(groups, out_channels), nn.GELU(approximate=approximate)).to(dtype)
    with torch.no_grad():  # affine weights away from 1 and 0, so their gradients matter
        block[1].weight.uniform_(0.5, 1.5), block[1].bias.uniform_(-0.5, 0.5)
    return block


def _written_out(monkeypatch, convs, hidden):
    """The blocks written out op by op (autograd keeps every intermediate), as before ConvNormGELU."""
    with monkeypatch.context() as patch:
        patch.setattr(patch_embed, "LEAN_CONV_BLOCKS", False)
        return conv_stack_as_matmuls(convs, hidden)


@pytest.mark.parametrize("in_channels, out_channels, kernel, stride, groups, approximate, length", [
    (1, 8, 15, 2, 4, "none", 20),  # the first block: one input channel, windows padded to 16 taps
    (1, 4, 15, 2, 2, "none", 21),  # an odd length under stride 2
    (8, 16, 3, 1, 4, "none", 20),
    (6, 6, 3, 1, 1, "tanh", 9),  # one group, GELU's tanh form
])
def test_gradients_are_exact_in_float64(in_channels, out_channels, kernel, stride, groups, approximate, length):
    block = _block(in_channels, out_channels, kernel, stride, groups, approximate)
    hidden = torch.randn(3, length, in_channels, dtype=torch.float64, requires_grad=True)
    inputs = (hidden, block[0].weight, block[0].bias, block[1].weight, block[1].bias)
    spec = (kernel, stride, kernel // 2, groups, block[1].eps, approximate)
    assert torch.autograd.gradcheck(lambda *args: ConvNormGELU.apply(*args, spec), inputs)


def test_forward_is_the_written_out_blocks_bit_for_bit_and_gradients_agree(monkeypatch):
    convs = nn.Sequential(_block(1, 8, 15, 2, 4, dtype=torch.float32), _block(8, 16, 3, 1, 4, dtype=torch.float32))
    hidden = torch.randn(5, 64, 1, requires_grad=True)
    weights = torch.randn(5, 32, 16)
    grads = []
    for run in (lambda: conv_stack_as_matmuls(convs, hidden), lambda: _written_out(monkeypatch, convs, hidden)):
        convs.zero_grad(), hidden.grad is not None and hidden.grad.zero_()
        out = run()
        (out * weights).sum().backward()
        grads.append((out.detach(), hidden.grad.clone(), [p.grad.clone() for p in convs.parameters()]))
    (lean, lean_hidden, lean_params), (reference, reference_hidden, reference_params) = grads
    assert torch.equal(lean, reference)
    assert torch.allclose(lean_hidden, reference_hidden, rtol=1e-4, atol=1e-6)
    for a, b in zip(lean_params, reference_params):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _bf16_lean_and_written_out(monkeypatch, device, batch, embed_dim):
    """A matmul patch embedder's bf16 outputs and gradients, with ConvNormGELU and with the blocks written out."""
    torch.manual_seed(0)
    embed = NeuralPatchEmbedder(patch_size=200, embed_dim=embed_dim).to(device)
    embed.conv_impl = "matmul"
    patches = torch.randn(batch, 6, 2, 200, device=device) * 20
    weights = torch.randn(batch, 6, 2, embed_dim, device=device)  # real gradients (a LayerNorm's mean square is 1)
    results = []
    for lean in (True, False):
        embed.zero_grad()
        with monkeypatch.context() as patch:
            patch.setattr(patch_embed, "LEAN_CONV_BLOCKS", lean)
            with torch.autocast(device, dtype=torch.bfloat16):
                out = embed(patches)
            (out.float() * weights).sum().backward()
        results.append((out, {name: p.grad.clone() for name, p in embed.named_parameters()}))
    return results


def _assert_close_gradients(lean_grads, grads):
    for name, grad in grads.items():
        assert lean_grads[name].dtype == grad.dtype == torch.float32
        # bf16 products: the lean bias gradient is summed in fp32 where autograd sums the bf16 gradient
        assert (lean_grads[name] - grad).norm() < 0.01 * grad.norm(), name


def test_under_bf16_autocast_it_keeps_the_dtypes_and_gradients_of_the_written_out_blocks(monkeypatch):
    (lean_out, lean_grads), (out, grads) = _bf16_lean_and_written_out(monkeypatch, "cpu", 4, 32)
    assert lean_out.dtype == out.dtype and torch.equal(lean_out, out)
    _assert_close_gradients(lean_grads, grads)


def _saved_bytes(run):
    """Bytes of the tensors autograd keeps for the backward pass of ``run()`` (parameters excluded)."""
    kept = {}

    def pack(tensor):
        if not isinstance(tensor, nn.Parameter):
            kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run().sum().backward()
    return sum(kept.values())


def test_it_keeps_the_input_and_product_in_the_products_dtype_and_the_groups_statistics(monkeypatch):
    convs = nn.Sequential(_block(8, 16, 3, 1, 4, dtype=torch.float32))
    hidden = torch.randn(32, 100, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lean = _saved_bytes(lambda: conv_stack_as_matmuls(convs, hidden))
        written_out = _saved_bytes(lambda: _written_out(monkeypatch, convs, hidden))
    # bf16 input (32 x 100 x 8) + bf16 product (32 x 100 x 16) + fp32 mean and rstd (32 x 4 each)
    assert lean == 2 * 32 * 100 * 8 + 2 * 32 * 100 * 16 + 2 * 4 * 32 * 4
    assert written_out > 5 * lean


def test_without_gradients_or_under_compile_the_blocks_are_written_out(monkeypatch):
    calls = []
    monkeypatch.setattr(patch_embed, "conv_norm_gelu",
                        lambda *args: calls.append(1) or lean_module.conv_norm_gelu(*args))
    convs = nn.Sequential(_block(1, 8, 15, 2, 4, dtype=torch.float32))
    hidden = torch.randn(2, 40, 1)
    conv_stack_as_matmuls(convs, hidden)
    assert calls == [1]
    with torch.no_grad():
        conv_stack_as_matmuls(convs, hidden)
    compiled = torch.compile(lambda h: conv_stack_as_matmuls(convs, h), backend="eager", fullgraph=True)
    out = compiled(hidden)
    assert calls == [1]
    assert torch.allclose(out, conv_stack_as_matmuls(convs, hidden), atol=1e-6)


def test_which_blocks_fit():
    conv, norm = nn.Conv1d(4, 8, 3, padding=1), nn.GroupNorm(2, 8)
    assert fits_conv_norm_gelu(conv, norm, nn.GELU())
    assert not fits_conv_norm_gelu(conv, norm, nn.ReLU())
    assert not fits_conv_norm_gelu(nn.Conv1d(4, 8, 3, padding=1, bias=False), norm, nn.GELU())
    assert not fits_conv_norm_gelu(nn.Conv1d(4, 8, 3, padding=2, dilation=2), norm, nn.GELU())
    assert not fits_conv_norm_gelu(nn.Conv1d(4, 8, 3, padding=1, padding_mode="circular"), norm, nn.GELU())
    assert not fits_conv_norm_gelu(conv, nn.GroupNorm(2, 8, affine=False), nn.GELU())
    # a block that does not fit is written out, with the same maths
    block = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
    hidden = torch.randn(2, 10, 4, requires_grad=True)
    expected = block(hidden.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(conv_stack_as_matmuls(nn.Sequential(block), hidden), expected, atol=1e-6)


def test_conv_norm_gelu_equals_the_modules():
    block = _block(3, 8, 5, 2, 4, dtype=torch.float32)
    hidden = torch.randn(4, 33, 3)
    expected = block(hidden.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(conv_norm_gelu(hidden, *block), expected, atol=1e-5)


@pytest.mark.cuda
def test_cuda_bf16_gradients_agree_with_the_written_out_blocks(monkeypatch):
    (lean_out, lean_grads), (out, grads) = _bf16_lean_and_written_out(monkeypatch, "cuda", 32, 200)
    assert torch.equal(lean_out, out)
    _assert_close_gradients(lean_grads, grads)
