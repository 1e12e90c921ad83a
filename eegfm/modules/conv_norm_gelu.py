"""One convolution block of the patch embedder (Conv1d -> GroupNorm -> GELU) as a matrix product
that keeps little for the backward pass.

:func:`eegfm.modules.patch_embed.conv_stack_as_matmuls` runs each convolution as one matrix product
over unfolded windows in ``(N, L, C)`` layout and writes the GroupNorm out, because convolution
libraries are slow at 1-16 channels on a GPU. Written out, autograd keeps every intermediate of the
GroupNorm in fp32 (the input, the centred and the normalised values, GELU's input) plus the unfolded
windows: about 20 bytes per activation, 2.0 GiB at B=128, 64 channels x 4 s (patches of 200 samples),
where the rest of the training step keeps about 3.4 GiB.

:class:`ConvNormGELU` computes the same forward with the same operations, so its output is bit for
bit the written-out one, but keeps only the block's input and the product's output in the product's
dtype (bf16 under autocast) and the GroupNorm's per-group mean and reciprocal standard deviation. Its
backward recomputes the normalised values and GELU's input from those (elementwise work the autograd
graph does too), re-unfolds the windows for the weight gradient, and folds the windows' gradient back
onto the input with :func:`torch.nn.functional.fold`. Unlike ``checkpoint_convs``, nothing is run
twice but those elementwise steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["ConvNormGELU", "conv_norm_gelu", "fits_conv_norm_gelu", "normalise_groups_last"]


def fits_conv_norm_gelu(conv: nn.Module, norm: nn.Module, activation: nn.Module) -> bool:
    """Whether a ``(conv, norm, activation)`` block is one :class:`ConvNormGELU` computes: a zero-padded
    ``nn.Conv1d`` with a bias, no dilation and no groups, an affine ``nn.GroupNorm`` and ``nn.GELU``."""
    return (isinstance(conv, nn.Conv1d) and conv.bias is not None and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
            and isinstance(norm, nn.GroupNorm) and norm.affine and isinstance(activation, nn.GELU))


def conv_norm_gelu(hidden: torch.Tensor, conv: nn.Conv1d, norm: nn.GroupNorm, activation: nn.GELU) -> torch.Tensor:
    """``activation(norm(conv(hidden)))`` in ``(N, L, C)`` layout through :class:`ConvNormGELU`.

    Parameters
    ----------
    hidden : torch.Tensor, shape (N, L, C_in)
        Signals in time-major layout.
    conv, norm, activation : nn.Module
        A block for which :func:`fits_conv_norm_gelu` is True; their weights are used as they are.

    Returns
    -------
    torch.Tensor, shape (N, L_out, C_out)
        In fp32 at least (the GroupNorm runs in fp32 under autocast, as ``group_norm`` does there).
    """
    kernel, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return ConvNormGELU.apply(hidden, conv.weight, conv.bias, norm.weight, norm.bias,
                              (kernel, stride, pad, norm.num_groups, norm.eps, activation.approximate))


def _windows(hidden: torch.Tensor, kernel: int, extra: int, stride: int, pad: int) -> torch.Tensor:
    """(N, L, C) -> (N, L', C * (kernel + extra)): the zero-padded windows, channel-major in each row."""
    padded = F.pad(hidden, (0, 0, pad, pad + extra))  # (N, L + 2 pad + extra, C)
    return padded.unfold(1, kernel + extra, stride).flatten(2)


def normalise_groups_last(product: torch.Tensor, groups: int, eps: float, mean=None, rstd=None):
    """GroupNorm of ``product`` (N, L, C) over its last (channel) axis, before the affine map, in fp32 at least.

    Returns ``(normalised (N, L, G, C/G), mean (N, 1, G, 1), rstd (N, 1, G, 1))``; the statistics are
    computed (population variance) unless ``mean`` and ``rstd`` are given.
    """
    n, length, channels = product.shape
    grouped = product.to(torch.promote_types(product.dtype, torch.float32)).reshape(n, length, groups, -1)
    if mean is None:
        var, mean = torch.var_mean(grouped, dim=(1, 3), unbiased=False, keepdim=True)
        rstd = torch.rsqrt(var + eps)
    return (grouped - mean) * rstd, mean, rstd


class ConvNormGELU(torch.autograd.Function):
    """Conv1d (as a matrix product) -> GroupNorm -> GELU in (N, L, C) layout, keeping little for the backward
    (module docstring). Call it through :func:`conv_norm_gelu`."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, norm_weight, norm_bias, spec):
        kernel, stride, pad, groups, eps, approximate = spec
        extra = -kernel % 8 if weight.shape[1] == 1 else 0  # one input channel: windows of a multiple of 8
        padded_weight = F.pad(weight, (0, extra)) if extra else weight  # (aligned GEMM rows), extra taps 0
        product = F.linear(_windows(hidden, kernel, extra, stride, pad), padded_weight.flatten(1), bias)
        normalised, mean, rstd = normalise_groups_last(product, groups, eps)
        n, length, channels = product.shape
        dtype = normalised.dtype
        gelu_input = torch.addcmul(norm_bias.to(dtype), normalised.reshape(n, length, channels), norm_weight.to(dtype))
        ctx.save_for_backward(hidden.to(product.dtype), padded_weight, product, mean, rstd, norm_weight, norm_bias)
        ctx.spec, ctx.extra, ctx.hidden_dtype, ctx.bias_dtype = spec, extra, hidden.dtype, bias.dtype
        return F.gelu(gelu_input, approximate=approximate)

    @staticmethod
    @once_differentiable  # a second derivative through it raises instead of coming out silently wrong
    def backward(ctx, grad_out):
        hidden, padded_weight, product, mean, rstd, norm_weight, norm_bias = ctx.saved_tensors
        kernel, stride, pad, groups, eps, approximate = ctx.spec
        n, length, channels = product.shape
        normalised, _, _ = normalise_groups_last(product, groups, eps, mean, rstd)  # (N, L, G, C/G)
        dtype = normalised.dtype
        flat = normalised.reshape(n, length, channels)
        gelu_input = torch.addcmul(norm_bias.to(dtype), flat, norm_weight.to(dtype))
        grad_gelu_input = torch.ops.aten.gelu_backward(grad_out.to(dtype), gelu_input, approximate=approximate)
        grad_norm_weight = grad_norm_bias = None
        if ctx.needs_input_grad[3]:
            grad_norm_weight = (grad_gelu_input * flat).sum((0, 1)).to(norm_weight.dtype)
        if ctx.needs_input_grad[4]:
            grad_norm_bias = grad_gelu_input.sum((0, 1)).to(norm_bias.dtype)
        grad_normalised = (grad_gelu_input * norm_weight.to(dtype)).reshape_as(normalised)
        grad_product = rstd * (grad_normalised - grad_normalised.mean((1, 3), keepdim=True)
                               - normalised * (grad_normalised * normalised).mean((1, 3), keepdim=True))
        grad_product = grad_product.reshape(n, length, channels)
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[2]:
            grad_bias = grad_product.sum((0, 1)).to(ctx.bias_dtype)
        low = grad_product.to(product.dtype).flatten(0, 1)  # (N L', C_out), the product's dtype as autocast's
        if ctx.needs_input_grad[1]:
            windows = _windows(hidden, kernel, ctx.extra, stride, pad).flatten(0, 1)  # (N L', C_in k)
            grad_weight = (low.t() @ windows).view_as(padded_weight)[..., :kernel].to(padded_weight.dtype)
        if ctx.needs_input_grad[0]:
            grad_windows = (low @ padded_weight.to(low.dtype).flatten(1)).view(n, length, -1)  # (N, L', C_in k)
            grad_windows = grad_windows.to(ctx.hidden_dtype)  # summed over the taps in the input's dtype
            padded_length = hidden.shape[1] + 2 * pad + ctx.extra
            folded = F.fold(grad_windows.transpose(1, 2), (1, padded_length), (1, kernel + ctx.extra),
                            stride=(1, stride))  # (N, C_in, 1, L + 2 pad + extra)
            grad_hidden = folded[:, :, 0, pad:pad + hidden.shape[1]].transpose(1, 2)
        return grad_hidden, grad_weight, grad_bias, grad_norm_weight, grad_norm_bias, None
