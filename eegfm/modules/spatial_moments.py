"""Spatial-moment pooling: token means weighted by where each channel sits on the scalp.

Mean pooling adds the left and the right of the head together, so a pattern of opposite sign on
the two sides (the horizontal eye movement towards a left or right cue, a lateralised slow
potential, contralateral motor activity) cancels before the head sees it; a Transformer can undo
that only by learning to multiply a token's content by its position, which it finds slowly. Here
the features are the zeroth and first moments of the tokens over the scalp:

    m0 = mean_t h_t,    mx = mean_t x_t h_t,    my = mean_t y_t h_t

over the real tokens ``t``, with ``(x_t, y_t)`` its channel's proportion coordinates centred on Cz
and scaled to about [-1, 1] (``(p - 50) / 50``): ``mx`` is the left-right contrast, ``my`` the
front-back one. It needs no learned weights and no fixed montage: any cap, any channel order, the
same three numbers per feature. (``pooling="moments"`` of :class:`eegfm.MAPEClassifier`.)
"""

from __future__ import annotations

import torch

__all__ = ["spatial_moments"]

#: Centre and half-width of the proportion coordinates (0..100 from one side of the head to the other).
CENTRE, HALF_WIDTH = 50.0, 50.0


def spatial_moments(grid: torch.Tensor, token_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Zeroth and first spatial moments of the real tokens.

    Parameters
    ----------
    grid : torch.Tensor, shape (B, C, K, D)
        Tokens per (channel, patch) (:meth:`eegfm.models.encoder.EncoderOutput.grid`).
    token_mask : torch.Tensor of bool, shape (B, C*K) or (B, C, K)
        True for real tokens; padding is left out of every mean.
    positions : torch.Tensor, shape (B, C, 2) or (C, 2)
        Proportion coordinates of the channels (those of padded channels are ignored).

    Returns
    -------
    torch.Tensor, shape (B, 3 * D)
        ``[m0, mx, my]`` concatenated.
    """
    batch, n_chans, n_patches, dim = grid.shape
    if tuple(positions.shape) not in ((batch, n_chans, 2), (n_chans, 2)):
        raise ValueError(f"positions must be (B, C, 2) or (C, 2) for a grid of {batch} x {n_chans} channels, "
                         f"got {tuple(positions.shape)}")
    if positions.dim() == 2:
        positions = positions.expand(batch, -1, -1)
    mask = token_mask.reshape(batch, n_chans, n_patches).to(grid.dtype)  # (B, C, K)
    real_channel = mask.amax(dim=2)[..., None] > 0  # (B, C, 1)
    coords = torch.where(real_channel, (positions.to(grid.dtype) - CENTRE) / HALF_WIDTH, 0.0)  # (B, C, 2); padding 0
    weights = torch.cat((torch.ones_like(coords[..., :1]), coords), dim=-1)  # (B, C, 3)
    weights = weights[:, :, None, :] * mask[..., None]  # (B, C, K, 3), 0 at padding
    grid = torch.where(mask[..., None] > 0, grid, 0.0)  # whatever padding holds stays out
    count = mask.sum(dim=(1, 2)).clamp_min(1.0)[:, None, None]  # (B, 1, 1)
    moments = torch.einsum("bckd,bckm->bmd", grid, weights) / count  # (B, 3, D)
    return moments.flatten(1)
