"""Pad recordings of different montages and lengths into one batch with masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["EEGBatch", "pad_into", "pad_recordings"]


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
    targets : torch.Tensor of int64, shape (B, C*K), optional
        Precomputed tokenizer codes of every token (-1 at padding), attached by a loader
        over :class:`eegfm.data.CodedWindows`; None otherwise.
    padded : bool, optional
        Whether any recording is shorter than ``T`` or has fewer channels than ``C``. Worked
        out from the masks when they are CPU tensors (as a collate makes them) and carried
        by :meth:`to`, so that no device tensor is ever read to know it; None: unknown.
    """

    x: torch.Tensor
    positions: torch.Tensor
    channel_mask: torch.Tensor
    n_times: torch.Tensor
    targets: torch.Tensor | None = None
    padded: bool | None = None

    def __post_init__(self):
        # Known on the host while the masks are CPU tensors (reading them costs no device sync);
        # left None (unknown: the encoder then always passes its key padding mask) otherwise.
        if self.padded is None and self.channel_mask.device.type == "cpu" and self.n_times.device.type == "cpu":
            self.padded = not (bool(self.channel_mask.all()) and bool((self.n_times >= self.x.shape[-1]).all()))

    def to(self, device, non_blocking: bool = False) -> EEGBatch:
        """Move every tensor to ``device`` (``padded`` travels with them).

        ``non_blocking=True`` lets a copy from pinned memory (:meth:`pin_memory`) to a GPU
        overlap with the work already queued there, as :class:`eegfm.training.Trainer` does.
        """
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> EEGBatch:
        """The batch in page-locked host memory, so that ``to(cuda, non_blocking=True)`` is asynchronous.

        ``torch.utils.data.DataLoader(pin_memory=True)`` calls it on every batch; so does
        :class:`eegfm.data.WindowLoader` when a CUDA device is available. Needs a CUDA build
        and device.
        """
        return self._map(lambda t: t.pin_memory())

    def _map(self, fn) -> EEGBatch:
        """``fn`` applied to every tensor; ``padded`` carried over (never recomputed from device tensors)."""
        targets = None if self.targets is None else fn(self.targets)
        return EEGBatch(*(fn(t) for t in (self.x, self.positions, self.channel_mask, self.n_times)),
                        targets=targets, padded=self.padded)

    def encoder_inputs(self) -> dict:
        """Keyword arguments for ``MAPEEncoder(**batch.encoder_inputs())``.

        A batch known to hold no padding (``padded`` False) gives ``channel_mask=None`` and
        ``n_times=None``, which mean the same (every channel and sample real), so that the
        encoder skips the key padding mask without reading a device tensor.
        """
        if self.padded is False:
            return dict(x=self.x, positions=self.positions, channel_mask=None, n_times=None)
        return dict(x=self.x, positions=self.positions, channel_mask=self.channel_mask, n_times=self.n_times)


def pad_into(signals: Sequence, positions: Sequence, out: torch.Tensor | None = None) -> EEGBatch:
    """Pad signals of different channel counts and lengths into one batch, one copy each.

    Parameters
    ----------
    signals : sequence of array-like, each (C_i, T_i)
        EEG in µV (numpy arrays, memory-mapped slices or CPU tensors).
    positions : sequence of array-like, each (C_i, 2)
        Proportion coordinates.
    out : torch.Tensor, optional
        Flat float32 tensor with at least ``B * max C_i * max T_i`` elements whose storage
        ``x`` is written into (reused or shared memory); allocated when None.

    Returns
    -------
    EEGBatch
        ``x`` (B, max C_i, max T_i), contiguous, zeros where padded.
    """
    batch = len(signals)
    n_chans = max(sig.shape[0] for sig in signals)
    n_times = max(sig.shape[1] for sig in signals)
    numel = batch * n_chans * n_times
    if out is None:
        out = torch.empty(numel)
    elif out.dtype != torch.float32 or out.numel() < numel:
        raise ValueError(f"out must be a float32 tensor with >= {numel} elements, got {out.dtype} {out.numel()}")
    x = out[:numel].view(batch, n_chans, n_times)
    xs = x.numpy()
    # bookkeeping in numpy: per-row torch indexing costs more than copying the signal
    padded_positions = np.full((batch, n_chans, 2), np.nan, dtype=np.float32)
    sizes = np.array([sig.shape for sig in signals], dtype=np.int64)  # (B, 2): C_i, T_i
    for i, (sig, pos) in enumerate(zip(signals, positions)):
        c, t = sizes[i]
        xs[i, :c, :t] = sig  # the only copy of the signal
        xs[i, c:] = 0.0
        xs[i, :c, t:] = 0.0
        padded_positions[i, :c] = pos
    channel_mask = np.arange(n_chans)[None, :] < sizes[:, :1]
    return EEGBatch(x=x, positions=torch.from_numpy(padded_positions), channel_mask=torch.from_numpy(channel_mask),
                    n_times=torch.from_numpy(sizes[:, 1].copy()))


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
    signals, positions = [], []
    for i, item in enumerate(recordings):
        if len(item) != 2:
            raise ValueError(f"recordings[{i}] must be an (x, positions) pair, got {len(item)} items")
        x, pos = (a.detach().cpu() if torch.is_tensor(a) else np.asarray(a) for a in item)
        if x.ndim != 2 or pos.ndim != 2 or tuple(pos.shape) != (x.shape[0], 2):
            raise ValueError(
                f"recordings[{i}]: x must be (channels, times) and positions (channels, 2); got "
                f"x {tuple(x.shape)} and positions {tuple(pos.shape)}"
            )
        signals.append(x)
        positions.append(pos)
    return pad_into(signals, positions)
