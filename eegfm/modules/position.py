"""Fixed sinusoidal position embeddings: MAPE (paper 3.1.2) and the 1-D baseline.

Nothing here is learned, so one encoder takes any montage and any recording length.

- :func:`sinusoid` is the Transformer embedding of a real-valued position ``p``:
  ``PE(p, 2i) = sin(p / 10000^(2i/d))`` and ``PE(p, 2i+1) = cos(p / 10000^(2i/d))``.
- :class:`MontageAgnosticPositionEmbedding` ("mape"): the spatial embedding of a channel
  is ``concat[PE(x_p), PE(y_p)]`` (each half ``D/2`` wide) of its proportion coordinates
  (:func:`eegfm.montage.proportion_coordinates`), and the temporal embedding is
  ``PE(k)`` of the patch index relative to the first patch. Token ``(c, k)`` gets
  ``SE(c) + TE(k)``.
- :class:`FlatSinusoidPositionEmbedding` ("sincos1d"): the ablation baseline of the
  paper's Table 2, ``PE(c * K + k)`` over the flattened token index, blind to where the
  channel sits on the scalp.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "POSITION_EMBEDDINGS",
    "FlatSinusoidPositionEmbedding",
    "MontageAgnosticPositionEmbedding",
    "build_position_embedding",
    "sinusoid",
]

OMEGA = 10000.0


def sinusoid(position: torch.Tensor, dim: int, *, omega: float = OMEGA) -> torch.Tensor:
    """Interleaved sin/cos embedding of real-valued positions.

    Parameters
    ----------
    position : torch.Tensor, shape (...)
        Positions (any real values: proportion coordinates, patch indices).
    dim : int
        Embedding width; must be even.
    omega : float
        The base of the frequencies (10000 as in the Transformer paper).

    Returns
    -------
    torch.Tensor, shape (..., dim), float32
        ``out[..., 2i] = sin(p / omega^(2i/dim))``, ``out[..., 2i+1] = cos(same)``.
    """
    if dim % 2:
        raise ValueError(f"sinusoid needs an even dim, got {dim=}")
    position = position.to(torch.float32)
    exponent = torch.arange(0, dim, 2, device=position.device, dtype=torch.float32) / dim
    angle = position[..., None] / omega**exponent  # (..., dim/2)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)  # (..., dim)


class MontageAgnosticPositionEmbedding(nn.Module):
    """MAPE: spatial embedding of proportion coordinates plus temporal embedding.

    Parameters
    ----------
    embed_dim : int
        Token width ``D``; divisible by 4 (each half of SE holds sin/cos pairs).
    """

    def __init__(self, embed_dim: int):
        super().__init__()
        if embed_dim % 4:
            raise ValueError(
                f"MAPE needs embed_dim divisible by 4 (two sin/cos halves), got {embed_dim=}"
            )
        self.embed_dim = embed_dim

    def forward(self, positions: torch.Tensor, n_patches: int, n_patches_per_sample=None) -> torch.Tensor:
        """Position embedding of every (channel, patch) token.

        Parameters
        ----------
        positions : torch.Tensor, shape (B, C, 2)
            Proportion coordinates ``(x_p, y_p)`` of each channel (Cz = (50, 50)).
        n_patches : int
            ``K``, the number of patches per channel in the (padded) batch.
        n_patches_per_sample : torch.Tensor, shape (B,), optional
            Unused by MAPE (the temporal embedding only depends on the patch index);
            accepted so both embeddings share one call signature.

        Returns
        -------
        torch.Tensor, shape (B, C, K, D)
        """
        half = self.embed_dim // 2
        spatial = torch.cat(
            (sinusoid(positions[..., 0], half), sinusoid(positions[..., 1], half)), dim=-1
        )  # (B, C, D)
        patch_index = torch.arange(n_patches, device=positions.device)
        temporal = sinusoid(patch_index, self.embed_dim)  # (K, D)
        return spatial[:, :, None, :] + temporal[None, None, :, :]


class FlatSinusoidPositionEmbedding(nn.Module):
    """Baseline 1-D sin/cos embedding of the flattened token index ``c * K_b + k``.

    ``K_b`` is each sample's own number of valid patches, so a recording gets the same
    embedding whether it is alone or padded inside a batch.

    Parameters
    ----------
    embed_dim : int
        Token width ``D``; even.
    """

    def __init__(self, embed_dim: int):
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"sincos1d needs an even embed_dim, got {embed_dim=}")
        self.embed_dim = embed_dim

    def forward(self, positions: torch.Tensor, n_patches: int, n_patches_per_sample=None) -> torch.Tensor:
        """Position embedding of every (channel, patch) token.

        Parameters
        ----------
        positions : torch.Tensor, shape (B, C, 2)
            Only its shape and device are used (this baseline ignores the scalp).
        n_patches : int
            ``K``, patches per channel in the (padded) batch.
        n_patches_per_sample : torch.Tensor, shape (B,), optional
            Valid patches per sample (defaults to ``K`` for all).

        Returns
        -------
        torch.Tensor, shape (B, C, K, D)
        """
        batch, n_chans = positions.shape[:2]
        device = positions.device
        if n_patches_per_sample is None:
            n_patches_per_sample = torch.full((batch,), n_patches, device=device)
        channel = torch.arange(n_chans, device=device)[None, :, None]
        patch = torch.arange(n_patches, device=device)[None, None, :]
        flat_index = channel * n_patches_per_sample.to(device)[:, None, None] + patch  # (B, C, K)
        return sinusoid(flat_index, self.embed_dim)


POSITION_EMBEDDINGS = {
    "mape": MontageAgnosticPositionEmbedding,
    "sincos1d": FlatSinusoidPositionEmbedding,
}


def build_position_embedding(kind: str, embed_dim: int) -> nn.Module:
    """Create a position embedding by name: ``"mape"`` or ``"sincos1d"``."""
    if kind not in POSITION_EMBEDDINGS:
        raise ValueError(
            f"position_embedding={kind!r} is not one of {sorted(POSITION_EMBEDDINGS)}; "
            "use 'mape' (montage-agnostic, the default) or 'sincos1d' (the 1-D ablation baseline)"
        )
    return POSITION_EMBEDDINGS[kind](embed_dim)
