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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CPU_CHUNK_PATCHES", "NeuralPatchEmbedder"]

#: Patches per call of the convolutions on the CPU (a sweep of 256-8,192 found 1,024-4,096 alike for
#: patches of 100 and 200 samples, 8,192 slower).
CPU_CHUNK_PATCHES = 2048


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
        """Convolutions and pooling, (N, 1, W) -> (N, C_last * bins); in chunks on the CPU without grad
        (module docstring)."""
        if (torch.compiler.is_compiling() or torch.is_grad_enabled() or normalised.device.type != "cpu"
                or normalised.shape[0] <= CPU_CHUNK_PATCHES):
            return self.pool(self.convs(normalised)).flatten(1)
        return torch.cat([self.pool(self.convs(part)).flatten(1) for part in normalised.split(CPU_CHUNK_PATCHES)])
