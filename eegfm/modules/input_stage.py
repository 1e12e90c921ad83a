"""The input stage every eegfm model runs before its Transformer: one implementation, used by all.

::

    x (B, C, T) µV, positions (B, C, 2) or (C, 2), channel_mask (B, C)?, n_times (B,) | int?
      -> check_inputs          shapes and rate checked, defaults filled: positions (B, C, 2),
                               channel_mask (B, C) bool, n_times (B,) long
      -> patchify              patches (B, C, K, W), K = T // W (leftover samples dropped)
      -> token_mask            (B, C, K) bool: real channel and a whole patch of real samples
      -> embed_patches         (B, C, K, D): padding zeroed first, then the patch embedder
      -> valid_patches         (B,) = n_times // W

:func:`prepare_inputs` runs the whole stage and returns an :class:`EncoderInputs`;
:meth:`eegfm.MAPEEncoder.prepare_inputs` calls it with the encoder's patch size, rate and
patch embedder (the tokenizer, the pretrainer and the encoder's own ``forward`` go through it).
Nothing in it reads a tensor on the host except :func:`check_finite_inputs` (one sync, opt-in),
so the stage is ``torch.compile(fullgraph=True)``- and ``torch.export``-able.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import torch
from torch import nn

from .packing import TokenPacking

__all__ = ["EncoderInputs", "check_finite_inputs", "check_inputs", "embed_patches", "inputs_checked", "padding_given",
           "patchify", "prepare_inputs", "token_mask"]

_ALREADY_CHECKED = threading.local()


@contextlib.contextmanager
def inputs_checked():
    """Within this block, ``check_finite=True`` skips :func:`check_finite_inputs` (this thread only).

    For a loop over data checked once beforehand: ``eegfm.finetune`` checks every example before
    training and runs its training steps inside this block, so a step makes no device-to-host sync
    for the check. Blocks nest; the previous setting comes back on exit.
    """
    previous = getattr(_ALREADY_CHECKED, "on", False)
    _ALREADY_CHECKED.on = True
    try:
        yield
    finally:
        _ALREADY_CHECKED.on = previous


@dataclass
class EncoderInputs:
    """What :func:`prepare_inputs` returns: a checked batch, cut into patches and embedded.

    Attributes
    ----------
    x : torch.Tensor, shape (B, C, T)
        The signal as given.
    positions : torch.Tensor, shape (B, C, 2)
        Proportion coordinates, expanded to the batch, in the dtype given (cast them to the
        embeddings' dtype for the encoder).
    channel_mask : torch.Tensor of bool, shape (B, C)
    n_times : torch.Tensor of int64, shape (B,)
    patches : torch.Tensor, shape (B, C, K, W)
    token_mask : torch.Tensor of bool, shape (B, C, K)
        True for real tokens.
    valid_patches : torch.Tensor of int64, shape (B,)
        Whole patches of real samples per recording.
    embeddings : torch.Tensor, shape (B, C, K, D), or None
        Patch embeddings, computed from zeros where padded (None when not asked for).
    padded : bool
        Whether the caller's inputs may hold padding (:func:`padding_given`): the encoder then
        passes the key padding mask to attention.
    """

    x: torch.Tensor
    positions: torch.Tensor
    channel_mask: torch.Tensor
    n_times: torch.Tensor
    patches: torch.Tensor
    token_mask: torch.Tensor
    valid_patches: torch.Tensor
    embeddings: torch.Tensor | None
    padded: bool


def check_inputs(x, positions, channel_mask, n_times, *, patch_size: int, sfreq: float | None = None,
                 model_sfreq: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a batch's shapes (and rate), one-line errors naming the input; fill in the defaults.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, T)
    positions : torch.Tensor, shape (B, C, 2) or (C, 2)
    channel_mask : torch.Tensor of bool, shape (B, C), or None (every channel real)
    n_times : torch.Tensor of int, shape (B,), an int, or None (every sample real)
    patch_size : int
        ``W``; ``T`` must hold at least one patch.
    sfreq, model_sfreq : float, optional
        The input's rate, checked against the model's when both are given.

    Returns
    -------
    positions : torch.Tensor, shape (B, C, 2)
    channel_mask : torch.Tensor of bool, shape (B, C)
    n_times : torch.Tensor of int64, shape (B,)
    """
    for name, value in (("x", x), ("positions", positions)):
        if not torch.is_tensor(value):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
                            f"torch.as_tensor({name}, dtype=torch.float32)")
    if x.ndim != 3:
        raise ValueError(
            f"x must have shape (batch, channels, times), got {tuple(x.shape)}; "
            "add a batch dimension with x[None] for one recording"
        )
    batch, n_chans, total = x.shape
    if batch == 0:
        raise ValueError(f"x has an empty batch (shape {tuple(x.shape)}); pass at least one recording")
    if n_chans == 0:
        raise ValueError(f"x has no channels (shape {tuple(x.shape)}); pass at least one EEG channel")
    given = tuple(positions.shape)
    if positions.ndim == 2:
        positions = positions.expand(batch, -1, -1)
    if tuple(positions.shape) != (batch, n_chans, 2):
        raise ValueError(
            f"positions must have shape ({batch}, {n_chans}, 2) or ({n_chans}, 2) to match "
            f"x of shape {tuple(x.shape)}, got {given}; build them with "
            "eegfm.proportion_coordinates(ch_names)"
        )
    if channel_mask is None:
        channel_mask = torch.ones(batch, n_chans, dtype=torch.bool, device=x.device)
    elif channel_mask.shape != (batch, n_chans) or channel_mask.dtype != torch.bool:
        raise ValueError(
            f"channel_mask must be a bool tensor of shape ({batch}, {n_chans}), got "
            f"{channel_mask.dtype} {tuple(channel_mask.shape)}"
        )
    if n_times is None or isinstance(n_times, int):  # an int: every recording has that many samples
        n_times = torch.full((batch,), total if n_times is None else n_times, dtype=torch.long, device=x.device)
    elif not torch.is_tensor(n_times):
        raise TypeError(f"n_times must be an int or a tensor of shape ({batch},), got {type(n_times).__name__}")
    elif n_times.shape != (batch,):
        raise ValueError(f"n_times must have shape ({batch},), got {tuple(n_times.shape)}")
    if total < patch_size:
        raise ValueError(
            f"x has {total} samples per channel, fewer than one patch "
            f"(patch_size={patch_size}); pass longer recordings or a model with a "
            "smaller patch_size"
        )
    if sfreq is not None and model_sfreq is not None and float(sfreq) != float(model_sfreq):
        raise ValueError(
            f"{sfreq=} Hz but this model expects sfreq={model_sfreq} Hz; resample first "
            f"(e.g. raw.resample({model_sfreq}))"
        )
    return positions, channel_mask, n_times


#: A recording whose real channels all lie within this of (0, 0) is not in proportion coordinates
#: (:func:`check_finite_inputs`).
POSITION_UNIT_LIMIT = 10.0

#: A real channel farther than this from Cz (50, 50) on either axis is off the head in proportion
#: coordinates (the 10-05 electrodes span -3.3 to 103.8; :func:`check_finite_inputs`).
POSITION_OFF_HEAD = 100.0

#: A recording whose real samples are not all 0 but all smaller than this (µV) is in volts
#: (:func:`check_finite_inputs`).
VOLTS_LIMIT = 0.01


def check_finite_inputs(x: torch.Tensor, positions: torch.Tensor, channel_mask: torch.Tensor,
                        n_times: torch.Tensor, patch_size: int | None = None) -> None:
    """Raise ``ValueError`` for inputs that would give garbage without an error, naming where.

    Only real channels and samples are checked (padding may hold anything), in this order:

    - a recording with no token at all (every channel masked, or, with ``patch_size``, fewer
      valid samples than one patch): its outputs would be built from nothing;
    - a NaN/Inf sample or position (named by sample and channel): it would turn every token of
      its recording into NaN;
    - positions in another unit: a recording whose real channels all sit within
      :data:`POSITION_UNIT_LIMIT` of ``(0, 0)``. Proportion coordinates run from 0 to 100 across
      the head (Cz at (50, 50); F9, the 10-05 electrode nearest to the corner, is at (11.7,
      16.8)), so these are metres (MNE head coordinates) or a unit sphere, and every channel
      would look like the same place to MAPE;
    - volts: a recording whose real samples are not all 0 but all within :data:`VOLTS_LIMIT`
      of 0 (``raw.get_data()`` gives volts; the encoder takes µV);
    - a real channel more than :data:`POSITION_OFF_HEAD` from Cz on either axis: off the head,
      e.g. millimetres (EEGLAB, BIDS ``electrodes.tsv``).

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, T)
    positions : torch.Tensor, shape (B, C, 2)
    channel_mask : torch.Tensor of bool, shape (B, C)
    n_times : torch.Tensor, shape (B,)
    patch_size : int, optional
    """
    empty = ~channel_mask.any(1)  # (B,)
    if patch_size is not None:
        empty = empty | (n_times < patch_size)
    valid_time = torch.arange(x.shape[-1], device=x.device)[None, :] < n_times[:, None]  # (B, T)
    bad_signal = (~torch.isfinite(x) & valid_time[:, None, :]).any(-1)  # (B, C)
    bad_position = ~torch.isfinite(positions).all(-1)  # (B, C)
    bad = (bad_signal | bad_position) & channel_mask
    farthest = torch.where(channel_mask, positions.abs().amax(-1), 0.0).amax(-1)  # (B,): NaN compares False
    other_unit = (farthest < POSITION_UNIT_LIMIT) & ~empty
    off_head = ((positions - 50.0).abs().amax(-1) > POSITION_OFF_HEAD) & channel_mask  # (B, C)
    real = channel_mask[:, :, None] & valid_time[:, None, :]  # (B, C, T)
    loudest = torch.where(real, x.abs(), 0.0).amax(dim=(1, 2))  # (B,); NaN compares False
    volts = (loudest > 0) & (loudest < VOLTS_LIMIT) & ~empty
    if bool(bad.any() | empty.any() | other_unit.any() | off_head.any() | volts.any()):  # the one host sync
        if bool(empty.any()):
            sample = int(empty.nonzero()[0])
            why = ("every channel is masked (channel_mask all False)" if not bool(channel_mask[sample].any()) else
                   f"n_times={int(n_times[sample])} valid samples, fewer than one patch ({patch_size})")
            raise ValueError(f"recording {sample} of the batch has no token: {why}; drop it or give it at least "
                             "one real channel and one patch of samples")
        if bool(bad.any()):
            sample, channel = (int(v) for v in bad.nonzero()[0])
            what = "a NaN/Inf sample" if bool(bad_signal[sample, channel]) else "a NaN/Inf position"
            raise ValueError(
                f"x[{sample}, {channel}] (sample {sample}, channel {channel}) has {what}; {int(bad.sum())} channel(s) "
                "in the batch do. Fix or drop them (e.g. raw.interpolate_bads(), np.nan_to_num), mark padded "
                "channels with channel_mask, or pass check_finite=False to skip this check"
            )
        fix = "Pass eegfm.proportion_coordinates(ch_names or raw.info) as positions"
        if bool(other_unit.any()):
            sample = int(other_unit.nonzero()[0])
            raise ValueError(
                f"positions of recording {sample} of the batch are not proportion coordinates: every real channel "
                f"lies within {POSITION_UNIT_LIMIT:g} of (0, 0) (largest |coordinate| {float(farthest[sample]):.3g}), "
                "where proportion coordinates run 0-100 across the head (Cz at (50, 50)). Metres (MNE head "
                f"coordinates) or a unit sphere? {fix}"
            )
        if bool(volts.any()):
            sample = int(volts.nonzero()[0])
            raise ValueError(
                f"x[{sample}] (recording {sample} of the batch) looks like volts: its largest |sample| is "
                f"{float(loudest[sample]):.3g}, where the encoder takes µV (scalp EEG: tens of µV). Multiply it by 1e6 "
                "(raw.get_data() gives volts; the braindecode and OpenEEGBench wrappers take input_scale=1e6)"
            )
        sample, channel = (int(v) for v in off_head.nonzero()[0])
        x_p, y_p = (float(v) for v in positions[sample, channel])
        raise ValueError(
            f"positions[{sample}, {channel}] = ({x_p:.4g}, {y_p:.4g}) (sample {sample}, channel {channel}) is off the "
            f"head: more than {POSITION_OFF_HEAD:g} from Cz (50, 50), where proportion coordinates run 0-100 across "
            f"the head; {int(off_head.sum())} channel(s) in the batch are. Millimetres (EEGLAB, BIDS electrodes.tsv)? "
            f"{fix}"
        )


def padding_given(x: torch.Tensor, channel_mask, n_times, patch_size: int) -> bool:
    """Whether the caller's inputs may hold padding, decided without reading any tensor.

    False when no ``channel_mask`` is given and ``n_times`` is None or an int covering every
    whole patch of ``x`` (B, C, T): then every token is real, known from Python alone (no
    device-to-host sync, nothing for ``torch.compile``/``torch.export`` to branch on). True
    otherwise (a mask or a tensor of lengths may pad; the key padding mask is then always
    passed, which gives the same outputs when nothing is padded).
    """
    if channel_mask is not None:
        return True
    if n_times is None:
        return False
    return not (isinstance(n_times, int) and n_times // patch_size >= x.shape[-1] // patch_size)


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut each channel into non-overlapping patches: (B, C, T) -> (B, C, K, W), ``K = T // W``
    (leftover samples dropped)."""
    n_patches = x.shape[-1] // patch_size
    return x[..., : n_patches * patch_size].unflatten(-1, (n_patches, patch_size))


def token_mask(channel_mask: torch.Tensor, valid_patches: torch.Tensor, n_patches: int) -> torch.Tensor:
    """Which (channel, patch) tokens are real: channel_mask (B, C), valid_patches (B,) -> (B, C, K) bool."""
    patch_ok = torch.arange(n_patches, device=valid_patches.device)[None, :] < valid_patches[:, None]  # (B, K)
    return channel_mask[:, :, None] & patch_ok[:, None, :]


def embed_patches(embedder: nn.Module, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patch embeddings with padding zeroed first: patches (B, C, K, W), mask (B, C, K) -> (B, C, K, D).

    Padded samples may hold anything (NaN included); they are replaced by zeros before
    ``embedder`` so that they can reach neither the outputs nor the gradients. On the CPU only the
    real patches are embedded and the padded ones get the embedding of a zero patch, the same
    output without the work (:mod:`eegfm.modules.packing`).
    """
    packing = TokenPacking.of(mask.flatten(1))
    if packing is None:
        patches = torch.where(mask[..., None], patches, 0.0)
        return embedder(patches)
    real = embedder(packing.pack(patches.flatten(1, 2)))  # (T, D)
    zero = embedder(patches.new_zeros(1, patches.shape[-1]))  # (1, D)
    full = zero.expand(packing.batch * packing.n_tokens, -1).index_copy(0, packing.index, real)
    return full.view(*mask.shape, -1)


def prepare_inputs(x: torch.Tensor, positions: torch.Tensor, *, channel_mask=None, n_times=None,
                   patch_size: int, embedder: nn.Module, sfreq: float | None = None,
                   model_sfreq: float | None = None, check_finite: bool = False, embed: bool = True) -> EncoderInputs:
    """The whole input stage: check -> patchify -> token mask -> patch embedding -> valid patches.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, T)
        EEG in µV, zero-padded where channels or samples are missing.
    positions : torch.Tensor, shape (B, C, 2) or (C, 2)
    channel_mask : torch.Tensor of bool, shape (B, C), optional
    n_times : torch.Tensor of int, shape (B,), or int, optional
    patch_size : int
        ``W``.
    embedder : nn.Module
        Patch embedder, (..., W) -> (..., D).
    sfreq, model_sfreq : float, optional
        See :func:`check_inputs`.
    check_finite : bool
        Also run :func:`check_finite_inputs` (one host sync; skipped while compiling and inside
        :func:`inputs_checked`).
    embed : bool
        False: skip the patch embedding (``embeddings`` is None), for a caller that embeds only
        some patches (masked pre-training with a decoder embeds the visible ones).

    Returns
    -------
    EncoderInputs
    """
    padded = padding_given(x, channel_mask, n_times, patch_size)  # from Python alone: no host sync
    positions, channel_mask, n_times = check_inputs(x, positions, channel_mask, n_times, patch_size=patch_size,
                                                    sfreq=sfreq, model_sfreq=model_sfreq)
    if check_finite and not torch.compiler.is_compiling() and not getattr(_ALREADY_CHECKED, "on", False):
        check_finite_inputs(x, positions, channel_mask, n_times, patch_size)
    patches = patchify(x, patch_size)  # (B, C, K, W)
    valid_patches = torch.div(n_times, patch_size, rounding_mode="floor")  # (B,)
    mask = token_mask(channel_mask, valid_patches, patches.shape[2])  # (B, C, K)
    return EncoderInputs(x=x, positions=positions, channel_mask=channel_mask, n_times=n_times, patches=patches,
                         token_mask=mask, valid_patches=valid_patches,
                         embeddings=embed_patches(embedder, patches, mask) if embed else None, padded=padded)
