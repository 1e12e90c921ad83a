"""Label-preserving augmentations of a padded EEG batch, used by :func:`eegfm.finetune.finetune`.

Each acts on the whole batch at once (no Python loop over examples) and respects padding:
padded channels stay padded and samples past ``n_times`` are never moved into the signal.

- channel dropout hides a random share of each example's real channels (their
  ``channel_mask`` becomes False; at least one channel is kept). MAPE takes any subset of
  electrodes, so this trains for the montages the model will meet (missing or bad channels);
- time shift rolls each example's valid samples circularly by a random offset;
- amplitude scaling multiplies each example by a random gain, log-uniform in
  ``[1 / (1 + a), 1 + a]``.
"""

from __future__ import annotations

import math

import torch

from ..data.collate import EEGBatch

__all__ = ["augment_batch", "check_augmentation"]


def check_augmentation(channel_dropout: float, time_shift_seconds: float, amplitude_scale: float) -> None:
    """Raise ValueError, naming the setting, when one is out of range."""
    if not (isinstance(channel_dropout, (int, float)) and 0.0 <= channel_dropout < 1.0):
        raise ValueError(f"channel_dropout must be in [0, 1) (share of channels hidden), got {channel_dropout!r}")
    if not (isinstance(time_shift_seconds, (int, float)) and math.isfinite(time_shift_seconds)
            and time_shift_seconds >= 0):
        raise ValueError(f"time_shift_seconds must be >= 0 (largest shift, s), got {time_shift_seconds!r}")
    if not (isinstance(amplitude_scale, (int, float)) and math.isfinite(amplitude_scale) and amplitude_scale >= 0):
        raise ValueError(f"amplitude_scale must be >= 0 (gains in [1/(1+a), 1+a]), got {amplitude_scale!r}")


def augment_batch(eeg: EEGBatch, *, sfreq: float, channel_dropout: float = 0.0, time_shift_seconds: float = 0.0,
                  amplitude_scale: float = 0.0, generator: torch.Generator | None = None) -> EEGBatch:
    """A randomly augmented copy of ``eeg`` (``eeg`` itself when every setting is 0).

    Parameters
    ----------
    eeg : EEGBatch
        ``x`` (B, C, T) in µV, ``positions`` (B, C, 2), ``channel_mask`` (B, C), ``n_times`` (B,).
    sfreq : float
        Sampling rate of ``x`` (turns ``time_shift_seconds`` into samples).
    channel_dropout : float in [0, 1)
        Share of each example's real channels hidden (rounded down; at least one kept).
    time_shift_seconds : float
        Largest circular shift of each example's valid samples, either way.
    amplitude_scale : float
        ``a``: each example's gain is drawn log-uniformly in ``[1 / (1 + a), 1 + a]``.
    generator : torch.Generator, optional
        On ``x``'s device; default: torch's global RNG.

    Returns
    -------
    EEGBatch
        Same shapes; ``targets`` are dropped (they describe the unaugmented signal).
    """
    check_augmentation(channel_dropout, time_shift_seconds, amplitude_scale)
    if channel_dropout == 0 and time_shift_seconds == 0 and amplitude_scale == 0:
        return eeg
    x, channel_mask, n_times = eeg.x, eeg.channel_mask, eeg.n_times
    batch, n_chans, n_samples = x.shape
    device = x.device
    if amplitude_scale > 0:
        log_gain = math.log1p(amplitude_scale) * (2 * torch.rand(batch, generator=generator, device=device) - 1)
        x = x * log_gain.exp().to(x.dtype)[:, None, None]
    max_shift = int(round(time_shift_seconds * sfreq))
    if max_shift > 0:
        shift = torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator, device=device)
        t = torch.arange(n_samples, device=device)[None, :]  # (1, T)
        valid = t < n_times[:, None]  # (B, T)
        source = torch.where(valid, torch.remainder(t - shift[:, None], n_times.clamp_min(1)[:, None]), t)
        x = x.gather(2, source[:, None, :].expand(batch, n_chans, n_samples))
    if channel_dropout > 0:
        n_real = channel_mask.sum(1)  # (B,)
        n_drop = torch.minimum((n_real.float() * channel_dropout).floor().long(), (n_real - 1).clamp_min(0))
        scores = torch.rand(batch, n_chans, generator=generator, device=device)
        scores = torch.where(channel_mask, scores, torch.full_like(scores, 2.0))  # padding ranks last
        rank = scores.argsort(1).argsort(1)  # (B, C): 0 for the lowest score
        channel_mask = channel_mask & ~(rank < n_drop[:, None])
        x = torch.where(channel_mask[:, :, None], x, torch.zeros((), dtype=x.dtype, device=device))
    return EEGBatch(x, eeg.positions, channel_mask, n_times)
