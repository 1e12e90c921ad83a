"""Neural patch embedder (paper 3.1.1): one EEG patch of ``W`` samples -> one ``D`` vector.

Each patch is embedded on its own: ``(B, C, K, W) -> (B, C, K, D)``. The layers follow the
reference recipe (per-patch normalisation, then three 1-D convolutions with GroupNorm +
GELU, then pooling and a linear map), with one deliberate change: a per-patch z-score
erases the patch's amplitude, which the tokenizer's Fourier target keeps, so the log of
the patch's standard deviation (in µV) is fed to the linear map as one extra feature.
The z-score also erases the patch's signed mean: slow potentials (eye movements, slow cortical
shifts) are what carries left/right motor imagery across subjects on PhysioNet (a linear model
on per-channel 0.5-s means reaches 0.75 balanced accuracy leaving one subject out, on band
power 0.56), so ``mean_feature=True`` feeds ``asinh(mean in µV)`` as one more feature.
The convolution output is average-pooled into ``pool_bins`` bins (not to a single value)
so the embedding keeps the coarse time course inside the patch. A final LayerNorm gives every
patch embedding unit scale, the scale of the fixed sinusoidal position embedding (MAPE) added
to it next: without it a freshly initialised token is almost all position, and a tokenizer
trained from there learns codes that say where a patch is rather than what it contains.

On the CPU, where nothing needs gradients (inference, validation, frozen features, the frozen
tokenizer's codes), the convolutions run over at most :data:`CPU_CHUNK_PATCHES` patches at a time.
Their intermediates are 4-8 times the size of the input (a batch of 128 motor-imagery windows,
65,536 patches of 100 samples, makes up to 210 MB per convolution), and at that size every layer pays
for fresh memory and cache misses: chunked, its convolutions run 4.5x faster and the whole
forward 1.7x (``benchmarks/patch_embed_chunks.py``). Each patch is embedded
on its own, so the embeddings are the same bit for bit (``tests/test_patch_embed.py``). A training
step keeps one call: chunks would sum the weight gradients in another order (equal to rounding,
not bit for bit), and saved runs would no longer rebuild exactly. On GPUs and under
``torch.compile`` the whole batch always goes in one call.

How the convolutions run (:attr:`NeuralPatchEmbedder.conv_impl`): ``"conv"`` calls the
``nn.Conv1d`` modules (cuDNN, oneDNN) on ``(N, C, L)``; ``"matmul"`` runs each convolution as one
matrix product over unfolded windows in ``(N, L, C)`` layout, with the GroupNorm, GELU and pooling
written out in that layout (:func:`conv_stack_as_matmuls`). Both take the same weights and give the
same embeddings to float rounding. With 1-16 channels, convolution libraries' kernels are far from
the memory bound on a GPU, and their weight gradients reduce over every patch: on an H200 cuDNN's
took half of a base-size training step (B=128, bf16), and ``"matmul"`` made the step 1.5x faster
(``benchmarks/results/README.md``, "The GPU again"). On the CPU, where the written-out GroupNorm
costs more than oneDNN's convolutions, ``"matmul"`` is 4.6x slower. None (the default) picks
:data:`DEFAULT_CONV_IMPL` for the device. In a training step ``"matmul"`` runs each block as one
:class:`~eegfm.modules.conv_norm_gelu.ConvNormGELU` (:data:`LEAN_CONV_BLOCKS`): the same forward, keeping
only each block's input and product in bf16 under autocast (0.32 GiB at B=128, 64 channels x 4 s, where
the blocks written out op by op keep 1.97 GiB, mostly the GroupNorm's fp32 intermediates; on an H200
the written-out step peaked at 5.4 GiB, 3.4 GiB with checkpointing). ``checkpoint_convs = True``
recomputes the whole stack in the backward pass instead (0.04 GiB kept, one more forward of the stack:
14 % more step time with ``"matmul"`` on an H200, 1.33-1.37x the stack's time on the CPU,
``benchmarks/conv_block_memory.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .conv_norm_gelu import conv_norm_gelu, fits_conv_norm_gelu, normalise_groups_last

__all__ = ["CONV_IMPLS", "CPU_CHUNK_PATCHES", "DEFAULT_CONV_IMPL", "LEAN_CONV_BLOCKS", "NeuralPatchEmbedder",
           "conv_stack_as_matmuls", "patch_embedders"]

#: Patches per call of the convolutions on the CPU (a sweep of 256-8,192 found 1,024-4,096 alike for
#: patches of 100 and 200 samples, 8,192 slower).
CPU_CHUNK_PATCHES = 2048

#: The ways the convolution stack can run (module docstring).
CONV_IMPLS = ("conv", "matmul")

#: ``conv_impl`` when a module's is None, by device type (others: ``"conv"``).
DEFAULT_CONV_IMPL = {"cpu": "conv", "cuda": "matmul"}

#: ``"matmul"`` with gradients: each block as one :class:`~eegfm.modules.conv_norm_gelu.ConvNormGELU`, which keeps
#: 3-4 bytes per activation for the backward instead of about 20 (False: the blocks written out op by op).
LEAN_CONV_BLOCKS = True


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    groups = 4 if out_channels % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.GroupNorm(groups, out_channels),
        nn.GELU(),
    )


class NeuralPatchEmbedder(nn.Module):
    """Embed every patch independently with a small 1-D CNN.

    Parameters
    ----------
    patch_size : int
        ``W``, samples per patch.
    embed_dim : int
        ``D``, output width.
    conv_channels : sequence of int
        Output channels of the convolutions; the first has kernel 15 and stride 2, the
        others kernel 3 and stride 1.
    pool_bins : int
        Number of time bins the last convolution's output is averaged into.
    eps : float
        Added to the patch standard deviation (µV) before normalising.
    mean_feature : bool
        Also feed the patch's signed mean, as ``asinh(mean)`` (µV; linear near 0, logarithmic
        beyond a few µV), to the linear map. False: the reference layout (saved models).

    Attributes
    ----------
    conv_impl : str or None
        ``"conv"`` or ``"matmul"``: how the convolutions run (module docstring); None (default)
        follows :data:`DEFAULT_CONV_IMPL`. A plain attribute, not saved: models load unchanged.
    checkpoint_convs : bool
        Recompute the convolution stack in the backward pass instead of keeping its
        intermediates (less memory, one more forward of the stack). Default False.
    """

    def __init__(
        self,
        patch_size: int,
        embed_dim: int,
        conv_channels: Sequence[int] = (8, 8, 16),
        pool_bins: int = 4,
        eps: float = 1e-3,
        mean_feature: bool = False,
    ):
        super().__init__()
        conv_channels = [int(c) for c in conv_channels]
        if not conv_channels:
            raise ValueError("conv_channels must name at least one convolution, got an empty list")
        if patch_size < 2 * pool_bins:
            raise ValueError(
                f"{patch_size=} is too short for {pool_bins=}: the first convolution halves the "
                f"patch, so patch_size must be at least 2 * pool_bins = {2 * pool_bins}"
            )
        self.patch_size = patch_size
        self.eps = eps
        self.mean_feature = bool(mean_feature)
        layers, in_channels = [], 1
        for i, out_channels in enumerate(conv_channels):
            kernel, stride = (15, 2) if i == 0 else (3, 1)
            layers.append(_conv_block(in_channels, out_channels, kernel, stride))
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(pool_bins)
        self.proj = nn.Linear(in_channels * pool_bins + 1 + self.mean_feature, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_impl: str | None = None
        self.checkpoint_convs = False

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Embed patches.

        Parameters
        ----------
        patches : torch.Tensor, shape (..., W)
            EEG patches in microvolts, e.g. (B, C, K, W).

        Returns
        -------
        torch.Tensor, shape (..., D)
        """
        if patches.shape[-1] != self.patch_size:
            raise ValueError(
                f"patches have {patches.shape[-1]} samples, expected patch_size={self.patch_size}"
            )
        lead = patches.shape[:-1]
        flat = patches.reshape(-1, 1, self.patch_size).float()  # (N, 1, W)
        std, mean = torch.std_mean(flat, dim=-1, keepdim=True)  # (N, 1, 1) each
        normalised = (flat - mean) / (std + self.eps)
        features = self._conv_features(normalised)  # (N, C_last * bins)
        scalars = [torch.log1p(std.flatten(1))]  # log amplitude, (N, 1)
        if self.mean_feature:
            scalars.append(torch.asinh(mean.flatten(1)))  # signed mean, (N, 1)
        out = self.norm(self.proj(torch.cat((features, *scalars), dim=1)))  # (N, D)
        return out.reshape(*lead, -1)

    def _conv_features(self, normalised: torch.Tensor) -> torch.Tensor:
        """Convolutions and pooling, (N, 1, W) -> (N, C_last * bins): the stack ``conv_impl`` names, in
        chunks on the CPU without grad, recomputed in the backward with ``checkpoint_convs`` (module docstring)."""
        impl = self.conv_impl or DEFAULT_CONV_IMPL.get(normalised.device.type, "conv")
        if impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl={impl!r} is not one of {list(CONV_IMPLS)} (None: the device's default)")
        run = self._pooled_convs if impl == "conv" else self._pooled_matmuls
        if self.checkpoint_convs and torch.is_grad_enabled():
            return checkpoint(run, normalised, use_reentrant=False)
        if (torch.compiler.is_compiling() or torch.is_grad_enabled() or normalised.device.type != "cpu"
                or normalised.shape[0] <= CPU_CHUNK_PATCHES):
            return run(normalised)
        return torch.cat([run(part) for part in normalised.split(CPU_CHUNK_PATCHES)])

    def _pooled_convs(self, normalised: torch.Tensor) -> torch.Tensor:
        """(N, 1, W) -> (N, C_last * bins) through the ``nn.Conv1d`` modules."""
        return self.pool(self.convs(normalised)).flatten(1)

    def _pooled_matmuls(self, normalised: torch.Tensor) -> torch.Tensor:
        """(N, 1, W) -> (N, C_last * bins) through :func:`conv_stack_as_matmuls`."""
        hidden = conv_stack_as_matmuls(self.convs, normalised.transpose(1, 2))  # (N, L, C)
        n, length, channels = hidden.shape
        bins = self.pool.output_size
        if length % bins:  # uneven bins: the module's adaptive pooling
            return self.pool(hidden.transpose(1, 2)).flatten(1)
        pooled = hidden.reshape(n, bins, length // bins, channels).mean(2)  # (N, bins, C)
        return pooled.transpose(1, 2).flatten(1)  # (N, C * bins), channel-major like the module's


def patch_embedders(model: nn.Module) -> list[NeuralPatchEmbedder]:
    """Every :class:`NeuralPatchEmbedder` inside ``model`` (its encoder's, a tokenizer's, ...), to set
    ``conv_impl`` or ``checkpoint_convs`` on all of them."""
    return [module for module in model.modules() if isinstance(module, NeuralPatchEmbedder)]


def conv_stack_as_matmuls(convs: nn.Sequential, hidden: torch.Tensor) -> torch.Tensor:
    """Run ``(Conv1d, GroupNorm, GELU)`` blocks in (N, L, C) layout, each convolution as one matrix product.

    Parameters
    ----------
    convs : nn.Sequential
        Blocks of ``nn.Conv1d`` (zero padding, no dilation, no groups), ``nn.GroupNorm`` and an
        activation, as :class:`NeuralPatchEmbedder` builds them; their weights are used as they are.
    hidden : torch.Tensor, shape (N, L, C_in)
        Signals in time-major layout.

    Returns
    -------
    torch.Tensor, shape (N, L_out, C_out)
        What the blocks give on ``hidden.transpose(1, 2)``, transposed, equal to float rounding.
        Under autocast the products run in its dtype and the GroupNorm in fp32, as there.

    With gradients on (eager, not compiling), each block runs as one :class:`~eegfm.modules.conv_norm_gelu.
    ConvNormGELU`: the same forward bit for bit, keeping 3-4 bytes per activation for the backward pass
    instead of about 20 (:mod:`eegfm.modules.conv_norm_gelu`). Under ``torch.compile`` the blocks are
    written out and the compiler decides what to keep.
    """
    lean = LEAN_CONV_BLOCKS and torch.is_grad_enabled() and not torch.compiler.is_compiling()
    for conv, norm, activation in convs:
        if lean and fits_conv_norm_gelu(conv, norm, activation):
            hidden = conv_norm_gelu(hidden, conv, norm, activation)
            continue
        kernel, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        weight = conv.weight  # (C_out, C_in, k)
        extra = -kernel % 8 if weight.shape[1] == 1 else 0  # one input channel: windows of a multiple of 8
        if extra:  # (aligned rows for the GEMM), the extra taps weighted 0
            weight = F.pad(weight, (0, extra))
        padded = F.pad(hidden, (0, 0, pad, pad + extra))  # (N, L + 2 pad + extra, C_in)
        windows = padded.unfold(1, kernel + extra, stride)  # (N, L', C_in, k)
        hidden = F.linear(windows.flatten(2), weight.flatten(1), conv.bias)  # (N, L', C_out)
        hidden = activation(_group_norm_last(hidden, norm))
    return hidden


def _group_norm_last(hidden: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``norm`` over the last (channel) axis of (N, L, C), in fp32 at least (as autocast runs ``group_norm``)."""
    normalised = normalise_groups_last(hidden, norm.num_groups, norm.eps)[0].reshape(hidden.shape)
    dtype = normalised.dtype
    return torch.addcmul(norm.bias.to(dtype), normalised, norm.weight.to(dtype)) if norm.affine else normalised
