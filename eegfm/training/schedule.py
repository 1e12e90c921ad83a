"""Learning-rate schedule: linear warm-up, then cosine decay to a floor (LaBraM / MAE style)."""

from __future__ import annotations

import math

import torch

__all__ = ["cosine_with_warmup", "make_scheduler"]


def cosine_with_warmup(step: int, *, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """Learning rate used for optimizer step ``step`` (0-based).

    Warm-up is linear and never wastes a step at lr 0: step ``s < warmup_steps`` gets
    ``base_lr * (s + 1) / warmup_steps``, so the last warm-up step (``warmup_steps - 1``) reaches
    ``base_lr``. From ``warmup_steps`` on, a half cosine goes from ``base_lr`` (at
    ``warmup_steps``) to ``min_lr`` (at ``total_steps``) and stays there afterwards.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps=}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps=}")
    if min_lr > base_lr:
        raise ValueError(f"min_lr must not exceed base_lr, got {min_lr=} > {base_lr=}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`cosine_with_warmup`; call ``.step()`` after each optimizer step.

    Every parameter group's initial lr is set to ``base_lr`` times the group's ``lr_scale``
    (default 1; layer-wise decay sets it, see :func:`eegfm.finetune.layer_decay_groups`), so the
    lambda is a plain ratio.
    """
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group.get("lr_scale", 1.0)
        group["initial_lr"] = group["lr"]
    if base_lr <= 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr=}")

    def ratio(step: int) -> float:
        return cosine_with_warmup(
            step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=base_lr, min_lr=min_lr
        ) / base_lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, ratio)
