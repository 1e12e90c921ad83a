"""Alignment losses (EEGMirror 3.2): SoftCLIP + MSE on CLIP text embeddings, MSE on latents.

The semantic branch predicts the CLIP text embedding of the clip's caption, ``(B, 77, 768)``
for Stable Diffusion 1.x, and is trained with ``L_text = SoftCLIP(t, p) + MSE(t, p)``. The
low-level branch (:class:`~eegfm_video.models.Seq2SeqLatentDecoder`) is trained with
``L_low = MSE(H, H_hat)`` on frame latents, and the alignment loss is ``L_text + L_low``.

SoftCLIP (MindEye) with l2-normalised prediction vectors ``p`` and target vectors ``t``
(rows of a batch of ``N``)::

    soft labels  S = softmax(t t^T / tau)            (row-wise)
    one          L = -mean_i sum_j S_ij log softmax_j(p_i . t_j / tau)
    both         (L + L') / 2, with L' the same on the transposed logits (targets -> predictions)

Defaults are the paper's: ``direction="one"`` (its formula has one direction; MindEye averages
both) and ``pooling="flatten"``: the paper's ``l_t . l_p`` is a dot product of whole 77 x 768
embeddings, and MindEye's SoftCLIP compares l2-normalised flattened predictions and targets too;
the official EEGMirror code mean-pools the 77 tokens first, available as ``pooling="mean"``.
The loss is averaged over the batch (MindEye) where the paper writes a sum over ``i``: the sum
only rescales it by ``N`` and ties its size to the batch size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from eegfm._validation import check_option, check_weight

__all__ = [
    "DEFAULT_TEMPERATURE",
    "AlignmentLoss",
    "alignment_loss",
    "alignment_text_loss",
    "softclip_loss",
]

#: SoftCLIP temperature default: the value one reference uses. MindEye anneals
#: 0.004 -> 0.0075 instead; pass ``temperature=`` to follow it.
DEFAULT_TEMPERATURE = 0.1

POOLINGS = ("flatten", "mean")
DIRECTIONS = ("one", "both")


def _check_temperature(temperature) -> None:
    if isinstance(temperature, torch.Tensor):
        if temperature.numel() != 1:
            raise ValueError("temperature must be a positive number or a one-element tensor, got a "
                             f"tensor of shape {tuple(temperature.shape)}")
        value = float(temperature.detach())
    else:
        value = temperature
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got pred {tuple(pred.shape)} "
                         f"and target {tuple(target.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"pred and target must have shape (batch, ...), got {tuple(pred.shape)}")


def softclip_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    *,
    pooling: str = "flatten",
    direction: str = "one",
) -> torch.Tensor:
    """SoftCLIP loss of MindEye (EEGMirror 3.2.1): contrastive with soft labels from the targets.

    Parameters
    ----------
    pred : torch.Tensor, shape (B, L, W) or (B, ...)
        Predicted CLIP embeddings (the semantic decoder's output, ``(B, 77, 768)``).
    target : torch.Tensor, shape like ``pred``
        CLIP text embeddings of the clips' captions.
    temperature : float | torch.Tensor
        ``tau`` > 0 (a one-element tensor for a learned or annealed temperature).
    pooling : {"flatten", "mean"}
        ``"flatten"`` (default, the paper's and MindEye's): each sample's whole embedding is one
        vector of ``L * W``. ``"mean"``: the ``L`` tokens are averaged first (official EEGMirror
        code); needs 3-D input ``(B, L, W)``.
    direction : {"one", "both"}
        ``"one"`` (default, the paper's formula): predictions -> targets. ``"both"``: the mean
        of both directions, as MindEye's ``soft_clip_loss``.

    Returns
    -------
    torch.Tensor, shape ()
        The loss, float32 (computed in float32 whatever the input dtype). A batch of one gives
        exactly 0: the loss contrasts samples of a batch.
    """
    check_option("pooling", pooling, POOLINGS)
    check_option("direction", direction, DIRECTIONS)
    _check_temperature(temperature)
    _check_pair(pred, target)
    if pooling == "mean":
        if pred.ndim != 3:
            raise ValueError(f"pooling='mean' averages tokens of (batch, tokens, width) input, got "
                             f"{tuple(pred.shape)}; use pooling='flatten'")
        p, t = pred.float().mean(1), target.float().mean(1)  # (B, W)
    else:
        p, t = pred.float().flatten(1), target.float().flatten(1)  # (B, L*W)
    p, t = F.normalize(p, dim=-1), F.normalize(t, dim=-1)
    soft_labels = torch.softmax(t @ t.T / temperature, dim=-1)  # (B, B), symmetric logits
    logits = p @ t.T / temperature  # (B, B): row i = prediction i against every target
    loss = -(soft_labels * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    if direction == "both":  # row j = target j against every prediction
        reverse = -(soft_labels * torch.log_softmax(logits.T, dim=-1)).sum(-1).mean()
        loss = (loss + reverse) / 2
    return loss


def alignment_text_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    pooling: str = "flatten",
    direction: str = "one",
    mse_weight: float = 1.0,
) -> torch.Tensor:
    """``L_text = SoftCLIP(pred, target) + mse_weight * MSE(pred, target)`` (EEGMirror 3.2.1).

    Parameters
    ----------
    pred, target : torch.Tensor, shape (B, L, W)
        Predicted and target CLIP text embeddings, ``(B, 77, 768)`` for SD 1.x.
    temperature, pooling, direction
        See :func:`softclip_loss`.
    mse_weight : float
        Weight of the MSE term (the paper: 1). The MSE is the mean over every element of the
        unpooled embeddings.

    Returns
    -------
    torch.Tensor, shape ()
        float32 loss.
    """
    check_weight("mse_weight", mse_weight)
    soft = softclip_loss(pred, target, temperature, pooling=pooling, direction=direction)
    return soft + mse_weight * F.mse_loss(pred.float(), target.float())


class AlignmentLoss(NamedTuple):
    """The terms of :func:`alignment_loss` (every field a float32 scalar tensor)."""

    total: torch.Tensor  #: text + low_weight * low
    text: torch.Tensor  #: softclip + mse_weight * text_mse
    softclip: torch.Tensor
    text_mse: torch.Tensor
    low: torch.Tensor  #: MSE of the predicted frame latents


def alignment_loss(
    text_pred: torch.Tensor,
    text_target: torch.Tensor,
    latent_pred: torch.Tensor,
    latent_target: torch.Tensor,
    *,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    pooling: str = "flatten",
    direction: str = "one",
    mse_weight: float = 1.0,
    low_weight: float = 1.0,
) -> AlignmentLoss:
    """The alignment loss ``L_text + L_low`` (EEGMirror 3.2), with each term for logging.

    Parameters
    ----------
    text_pred, text_target : torch.Tensor, shape (B, L, W)
        Semantic decoder output and CLIP text embeddings.
    latent_pred, latent_target : torch.Tensor, shape (B, M, C, h, w)
        Seq2Seq frame latents and the VAE latents of the frames (both scaled by the VAE's
        scaling factor).
    temperature, pooling, direction, mse_weight
        See :func:`alignment_text_loss`.
    low_weight : float
        Weight of ``L_low`` (the paper: 1).

    Returns
    -------
    AlignmentLoss
        ``total`` to back-propagate, and its terms.
    """
    check_weight("mse_weight", mse_weight)
    check_weight("low_weight", low_weight)
    if latent_pred.shape != latent_target.shape:
        raise ValueError(f"latent_pred and latent_target must have the same shape, got latent_pred "
                         f"{tuple(latent_pred.shape)} and latent_target {tuple(latent_target.shape)}")
    softclip = softclip_loss(text_pred, text_target, temperature, pooling=pooling, direction=direction)
    text_mse = F.mse_loss(text_pred.float(), text_target.float())
    low = F.mse_loss(latent_pred.float(), latent_target.float())
    text = softclip + mse_weight * text_mse
    return AlignmentLoss(total=text + low_weight * low, text=text, softclip=softclip, text_mse=text_mse, low=low)
