"""Masking strategies for masked EEG modelling (paper 3.1.4).

Convention: a mask is a bool tensor of shape (B, C, K) over the (channel, patch) token grid,
**True = masked** (the encoder sees the mask embedding there and must predict the token's
code). A padded token (``token_mask`` False) is never masked. Each strategy masks
``round(ratio * n)`` of a recording's own ``n`` candidates, at least one and, when there are
two or more, never all of them:

- ``random``: any valid tokens (patches over channels and time);
- ``channel``: whole channels (every valid patch of the chosen channels);
- ``temporal``: whole time steps (the chosen patch index on every valid channel).

Everything is vectorised over the batch: rank random scores and keep the lowest ``n``.

Random numbers are drawn on the token mask's device (no host-to-device copy, no sync), from
``generator`` when one is given. A generator on another device (say a CPU generator for CUDA
tokens) still works: the numbers are drawn where it lives and copied, so a seed gives the
same masks on every device, at the cost of that copy. On CPU the draws are those of a CPU
generator, as before.
"""

from __future__ import annotations

import torch

__all__ = ["MASK_STRATEGIES", "channel_mask", "draw_device", "make_mask", "random_mask", "temporal_mask"]


def draw_device(device: torch.device, generator: torch.Generator | None) -> torch.device:
    """Where to draw random numbers for tensors on ``device``: there, or where ``generator`` lives."""
    return device if generator is None else generator.device


def _choose(candidates: torch.Tensor, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    """Pick ``round(ratio * n)`` of each row's True entries uniformly at random.

    Parameters
    ----------
    candidates : torch.Tensor of bool, shape (B, N)
    ratio : float in (0, 1)

    Returns
    -------
    torch.Tensor of bool, shape (B, N)
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio=}")
    n = candidates.sum(1)  # (B,)
    k = torch.round(n.float() * ratio).long()
    k = torch.where(n >= 2, k.clamp(1, None).minimum(n - 1), n.clamp(max=1))
    scores = torch.rand(candidates.shape, generator=generator, device=draw_device(candidates.device, generator))
    scores = scores.to(candidates.device)  # a no-op unless the generator lives elsewhere
    scores = scores.masked_fill(~candidates, 2.0)  # invalid entries rank last
    ranks = scores.argsort(1).argsort(1)  # (B, N): rank of each entry within its row
    return (ranks < k[:, None]) & candidates


def random_mask(token_mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask random valid tokens. ``token_mask``: (B, C, K) bool; returns (B, C, K) bool."""
    batch = token_mask.shape[0]
    return _choose(token_mask.reshape(batch, -1), ratio, generator).view_as(token_mask)


def channel_mask(token_mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask whole channels. ``token_mask``: (B, C, K) bool; returns (B, C, K) bool."""
    chosen = _choose(token_mask.any(2), ratio, generator)  # (B, C)
    return chosen[:, :, None] & token_mask


def temporal_mask(token_mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask whole time steps. ``token_mask``: (B, C, K) bool; returns (B, C, K) bool."""
    chosen = _choose(token_mask.any(1), ratio, generator)  # (B, K)
    return chosen[:, None, :] & token_mask


MASK_STRATEGIES = {"random": random_mask, "channel": channel_mask, "temporal": temporal_mask}


def make_mask(strategy: str, token_mask: torch.Tensor, ratio: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask of one named strategy (``"random"``, ``"channel"`` or ``"temporal"``), shape (B, C, K)."""
    if strategy not in MASK_STRATEGIES:
        raise ValueError(f"mask strategy {strategy!r} is not one of {sorted(MASK_STRATEGIES)}")
    return MASK_STRATEGIES[strategy](token_mask, ratio, generator)
