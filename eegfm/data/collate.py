"""Pad recordings of different montages and lengths into one batch with masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["EEGBatch", "pad_recordings"]


@dataclass
class EEGBatch:
    """A padded batch of EEG recordings, ready for :class:`eegfm.MAPEEncoder`.

    Attributes
    ----------
    x : torch.Tensor, shape (B, C, T), float32
        EEG in µV; zeros where a recording has no channel or no sample.
    positions : torch.Tensor, shape (B, C, 2), float32
        Proportion coordinates; NaN for padded channels.
    channel_mask : torch.Tensor of bool, shape (B, C)
        True for real channels.
    n_times : torch.Tensor of int64, shape (B,)
        Valid samples per recording.
    """

    x: torch.Tensor
    positions: torch.Tensor
    channel_mask: torch.Tensor
    n_times: torch.Tensor

    def to(self, device) -> EEGBatch:
        """Move every tensor to ``device``."""
        return EEGBatch(*(t.to(device) for t in (self.x, self.positions, self.channel_mask, self.n_times)))

    def encoder_inputs(self) -> dict:
        """Keyword arguments for ``MAPEEncoder(**batch.encoder_inputs())``."""
        return dict(x=self.x, positions=self.positions, channel_mask=self.channel_mask, n_times=self.n_times)


def pad_recordings(recordings: Sequence[tuple]) -> EEGBatch:
    """Stack recordings with different channel counts and lengths into one padded batch.

    Parameters
    ----------
    recordings : sequence of (x, positions)
        ``x`` of shape (C_i, T_i) in µV and ``positions`` of shape (C_i, 2) (proportion
        coordinates), as numpy arrays or tensors.

    Returns
    -------
    EEGBatch
        ``x`` (B, max C_i, max T_i) and its masks.
    """
    if len(recordings) == 0:
        raise ValueError("pad_recordings needs at least one (x, positions) pair, got none")
    arrays = []
    for i, item in enumerate(recordings):
        if len(item) != 2:
            raise ValueError(f"recordings[{i}] must be an (x, positions) pair, got {len(item)} items")
        x, pos = (torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a) for a in item)
        if x.ndim != 2 or pos.ndim != 2 or pos.shape != (x.shape[0], 2):
            raise ValueError(
                f"recordings[{i}]: x must be (channels, times) and positions (channels, 2); got "
                f"x {tuple(x.shape)} and positions {tuple(pos.shape)}"
            )
        arrays.append((x.float(), pos.float()))
    batch = len(arrays)
    n_chans = max(x.shape[0] for x, _ in arrays)
    n_times = max(x.shape[1] for x, _ in arrays)
    out = EEGBatch(
        x=torch.zeros(batch, n_chans, n_times),
        positions=torch.full((batch, n_chans, 2), float("nan")),
        channel_mask=torch.zeros(batch, n_chans, dtype=torch.bool),
        n_times=torch.tensor([x.shape[1] for x, _ in arrays], dtype=torch.long),
    )
    for i, (x, pos) in enumerate(arrays):
        out.x[i, : x.shape[0], : x.shape[1]] = x
        out.positions[i, : x.shape[0]] = pos
        out.channel_mask[i, : x.shape[0]] = True
    return out
