"""Dynamic-aware noise (EEG2Video's "dynamic-aware noise adding"; EEGMirror Sec. 3.3).

The sampler starts from the Seq2Seq latents noised to a step ``t`` of the schedule. Instead of
independent Gaussian noise per frame, a share ``b`` of the noise variance is one draw shared by
all frames of a clip::

    noise = sqrt(1 - b) * per_frame_noise + sqrt(b) * shared_noise
    per_frame_noise (B, C, F, h, w) ~ N(0, I)      shared_noise (B, C, 1, h, w) ~ N(0, I)

Each element still has unit variance, and two frames of a clip are correlated with coefficient
exactly ``b`` (the same pixel and channel; different pixels stay independent). ``b = 0`` gives
independent frames (plain diffusion noise), ``b = 1`` the same noise on every frame. EEG2Video
uses a larger ``b`` for slow clips (little motion: frames should stay alike); its code and its
paper disagree on the value (0.2 vs 0.3), so ``b`` is a parameter, a number or one per clip.

Random draws go through diffusers' ``randn_tensor`` (``generator`` may be one
``torch.Generator`` or a list of one per clip), the per-frame noise first and the shared noise
second: with ``b = 0`` the result is bit for bit the ``randn_tensor(shape, generator)`` that a
plain sampler would draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["DEFAULT_SHARED_NOISE_SHARE", "check_shared_noise_share", "dynamic_aware_noise", "noise_latents"]

#: Default share ``b`` of the noise shared by all frames (EEG2Video's paper; its code uses 0.2).
DEFAULT_SHARED_NOISE_SHARE = 0.3


def check_shared_noise_share(shared_noise_share, batch_size: int | None = None) -> torch.Tensor:
    """Validate ``b`` and return it as a float64 tensor of shape () or (B,).

    Parameters
    ----------
    shared_noise_share : float | sequence of float | torch.Tensor
        ``b`` in [0, 1], one number for every clip or one per clip (shape (B,)).
    batch_size : int, optional
        ``B``; when given, a per-clip ``b`` must have this length.

    Returns
    -------
    torch.Tensor
        float64, shape () or (B,), on the CPU.
    """
    value = shared_noise_share
    if isinstance(value, bool) or not isinstance(value, (int, float, Sequence, torch.Tensor)) or isinstance(value, str):
        raise ValueError(f"shared_noise_share must be a number in [0, 1] or one per clip, got {value!r}")
    try:
        b = torch.as_tensor(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise ValueError(f"shared_noise_share must be a number in [0, 1] or one per clip, got {value!r}") from None
    if b.ndim > 1 or (b.ndim == 1 and batch_size is not None and b.shape[0] != batch_size):
        expected = "a number" if batch_size is None else f"a number or {batch_size} values (one per clip)"
        raise ValueError(f"shared_noise_share must be {expected}, got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()) or bool((b < 0).any()) or bool((b > 1).any()):
        raise ValueError(f"shared_noise_share must be in [0, 1], got {value!r}")
    return b


def dynamic_aware_noise(
    shape: Sequence[int],
    shared_noise_share: float | Sequence[float] | torch.Tensor = DEFAULT_SHARED_NOISE_SHARE,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Gaussian noise for video latents whose frames share a fraction ``b`` of their variance.

    Parameters
    ----------
    shape : sequence of int
        ``(B, C, F, h, w)``: clips, latent channels, frames, latent height and width.
    shared_noise_share : float | sequence of float | torch.Tensor
        ``b`` in [0, 1] (see the module docstring), one for all clips or one per clip (B,).
    generator : torch.Generator | list of torch.Generator, optional
        One generator, or one per clip (as in diffusers pipelines).
    device, dtype
        Of the result.

    Returns
    -------
    torch.Tensor, shape (B, C, F, h, w)
        ``sqrt(1 - b) * per_frame + sqrt(b) * shared``; unit variance per element, correlation
        ``b`` between two frames of a clip.
    """
    from diffusers.utils.torch_utils import randn_tensor

    shape = tuple(int(s) for s in shape)
    if len(shape) != 5:
        raise ValueError(f"shape must be (batch, channels, frames, height, width), got {shape}")
    b = check_shared_noise_share(shared_noise_share, shape[0])
    device = torch.device(device) if device is not None else torch.device("cpu")
    per_frame = randn_tensor(shape, generator=generator, device=device, dtype=dtype)  # (B, C, F, h, w)
    shared = randn_tensor((shape[0], shape[1], 1, shape[3], shape[4]), generator=generator, device=device,
                          dtype=dtype)  # (B, C, 1, h, w), broadcast over frames
    if b.ndim == 0:
        if float(b) == 0.0:  # exactly the plain draw (no -0.0 / rounding from 1.0 * x + 0.0 * y)
            return per_frame
        return math.sqrt(1.0 - float(b)) * per_frame + math.sqrt(float(b)) * shared
    b = b.to(device=device, dtype=dtype).view(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
    return torch.sqrt(1.0 - b) * per_frame + torch.sqrt(b) * shared


def noise_latents(
    latents: torch.Tensor,
    scheduler,
    timestep: torch.Tensor | int,
    shared_noise_share: float | Sequence[float] | torch.Tensor = DEFAULT_SHARED_NOISE_SHARE,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Noise clean video latents to ``timestep`` with dynamic-aware noise (``scheduler.add_noise``).

    Parameters
    ----------
    latents : torch.Tensor, shape (B, C, F, h, w)
        Clean latents (e.g. the Seq2Seq prediction, moved to channels-first).
    scheduler : diffusers scheduler
        With ``add_noise(original, noise, timesteps)`` (DDIM, DDPM, ...).
    timestep : torch.Tensor | int
        The step ``t`` of the training schedule to noise to (one for every clip).
    shared_noise_share, generator
        See :func:`dynamic_aware_noise`.

    Returns
    -------
    torch.Tensor, shape (B, C, F, h, w)
        ``sqrt(alpha_bar_t) * latents + sqrt(1 - alpha_bar_t) * noise``.
    """
    if latents.ndim != 5:
        raise ValueError(f"latents must be (batch, channels, frames, height, width), got {tuple(latents.shape)}")
    noise = dynamic_aware_noise(latents.shape, shared_noise_share, generator=generator, device=latents.device,
                                dtype=latents.dtype)
    t = torch.as_tensor(timestep, device=latents.device).reshape(-1)[:1].repeat(latents.shape[0])  # (B,)
    return scheduler.add_noise(latents, noise, t)
