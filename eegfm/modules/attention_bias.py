"""A fixed attention bias by scalp distance and patch lag (``EncoderConfig(attention_bias="distance")``).

Why: with MAPE alone (fixed sinusoids added to the patch embedding) a small encoder
pre-trained by masked prediction attends almost uniformly to every visible token: on
PhysioNet motor imagery (recipe row 34) a masked token of the 1000-step D=64 encoder puts
0.25-0.6 % of its attention on its 4 nearest channels at the same moment, less than uniform
attention would (0.8 %), and predicts its patch's slow mean with R^2 0.08 where the mean of
those 4 neighbours reaches 0.69. With this bias the same run attends 7-10 % there and reaches
0.48. Montage-agnostic spatial structure is what the encoder is for, so
this option hands attention the geometry directly, in the way of ALiBi (Press et al., 2022,
fixed per-head linear penalties on distance), in two dimensions:

    score(i, j) += -(s_h * |p_i - p_j| / 10 + t_h * |k_i - k_j|)

``p`` are the channels' proportion coordinates (neighbouring 10-10 electrodes are about 10
apart, so the distance is in "neighbours"), ``k`` the patch indices, ``s_h`` and ``t_h`` one
pair of fixed slopes per head (:func:`head_slopes`). The CLS token is neither penalised nor
penalises. Nothing is learned, so the bias takes any montage and any length, as MAPE does,
and a model saved without it loads unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ATTENTION_BIASES", "distance_bias", "head_slopes"]

ATTENTION_BIASES = ("none", "distance")

#: (space, time) slopes of the four kinds of head, cycled over the heads: global; the same moment
#: on neighbouring channels; the same channel over time; a moderate local neighbourhood.
HEAD_KINDS = ((0.0, 0.0), (1.0, 2.0), (2.0, 0.25), (0.5, 0.5))

#: Proportion-coordinate units per "neighbour" (10-10 electrodes sit about 10 apart).
NEIGHBOUR_SPACING = 10.0


def head_slopes(num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed (space, time) slopes of each head: :data:`HEAD_KINDS` cycled, shapes (H,) and (H,)."""
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    kinds = [HEAD_KINDS[h % len(HEAD_KINDS)] for h in range(num_heads)]
    return torch.tensor([s for s, _ in kinds]), torch.tensor([t for _, t in kinds])


def distance_bias(positions: torch.Tensor, token_mask: torch.Tensor, num_heads: int,
                  padded: bool | None = None) -> torch.Tensor:
    """Additive attention bias over the CLS token and the channel-major tokens.

    Parameters
    ----------
    positions : torch.Tensor, shape (B, C, 2)
        Proportion coordinates of each channel (finite; padded channels may hold anything
        finite, their keys are masked).
    token_mask : torch.Tensor of bool, shape (B, C, K)
        True for real tokens.
    num_heads : int
        ``H``.
    padded : bool, optional
        False: no key is masked (``token_mask`` is not read). True or None: keys of padded
        tokens get ``-inf``.

    Returns
    -------
    torch.Tensor, shape (B, H, 1 + C*K, 1 + C*K), dtype of ``positions``
        ``-(s_h * distance / 10 + t_h * lag)`` between tokens (0 in the CLS row and column),
        plus ``-inf`` at padded keys; token ``1 + c*K + k`` is channel ``c``, patch ``k``.
    """
    batch, n_chans, n_patches = token_mask.shape
    dtype, device = positions.dtype, positions.device
    space, time = (s.to(device=device, dtype=dtype) for s in head_slopes(num_heads))
    distance = torch.cdist(positions, positions) / NEIGHBOUR_SPACING  # (B, C, C)
    index = torch.arange(n_patches, device=device, dtype=dtype)
    lag = (index[:, None] - index[None, :]).abs()  # (K, K)
    # The (B, H, CK, CK) bias is a sum of a (B, H, C, 1, C, 1) and a (1, H, 1, K, 1, K) term: it is written
    # once, by broadcasting, straight into the token grid of the output (no (CK, CK) repeats, no pad copy).
    n_tokens = 1 + n_chans * n_patches
    bias = torch.empty(batch, num_heads, n_tokens, n_tokens, device=device, dtype=dtype)
    bias[:, :, 0].zero_()  # the CLS row and column: 0
    bias[:, :, 1:, 0].zero_()
    grid = bias[:, :, 1:, 1:].unflatten(3, (n_chans, n_patches)).unflatten(2, (n_chans, n_patches))  # (B,H,C,K,C,K)
    by_space = -(space[None, :, None, None, None, None] * distance[:, None, :, None, :, None])  # (B, H, C, 1, C, 1)
    by_time = -(time[None, :, None, None, None, None] * lag[None, None, None, :, None, :])  # (1, H, 1, K, 1, K)
    if torch.compiler.is_compiling():  # dynamo takes no non-contiguous out=: one temporary more
        grid.copy_(by_space + by_time)
    else:
        torch.add(by_space, by_time, out=grid)
    if padded is not False:
        keep = F.pad(token_mask.flatten(1), (1, 0), value=True)  # (B, 1 + CK)
        bias.masked_fill_(~keep[:, None, None, :], float("-inf"))
    return bias
