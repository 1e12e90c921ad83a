"""Attention processors across the frames of a clip: sparse-causal (``attn1``) and temporal attention.

In the inflated UNet (EEGMirror Sec. 3.3) the frames of a clip run through the 2-D layers as a batch of
images, ``(b * f, n, c)`` with the frames of one clip adjacent (index ``b_i * f + f_i``). Two
diffusers attention processors make those layers attend across frames; both are
:class:`FrameProcessor` s, which hold the clip length :attr:`~FrameProcessor.num_frames` (set by
:class:`~eegfm_video.models.inflated_unet.InflatedUNet` before every forward pass, or passed as
a keyword through ``Attention.forward``) and are weightless: ``attn.to_q``, ``attn.to_k``,
``attn.to_v`` and ``attn.to_out`` of the layer are used as they are, so pre-trained weights keep
their meaning.

:class:`SparseCausalAttnProcessor` (Tune-A-Video) replaces the spatial self-attention (``attn1``)
of each transformer block: the queries of frame ``i`` attend to the keys and values of frames
``0`` and ``i - 1`` together (``2n`` tokens), which ties every frame to the first one and to its
predecessor. Convention for the first frames: frame 0 attends to frame 0 only, and so does frame
1 (its two context frames are the same frame). Tune-A-Video concatenates the keys of frame 0
twice there; attending to a set of keys written twice gives exactly the same softmax weights per
distinct key and so the same output, which is why both readings agree; this processor attends to
one copy, which is cheaper and bit-for-bit ordinary self-attention. Hence with ``f = 1`` (and for
a clip whose frames are all the same image) it equals diffusers' ``AttnProcessor2_0``.
Implementation (no Python loop over frames or tokens): frames ``{0, 1}`` of a clip form one
query sequence of ``2n`` tokens over the ``n`` keys of frame 0; frames ``2 .. f-1`` each attend
to ``[keys of frame 0, keys of frame i-1]`` gathered by slicing, ``(b * (f - 2), 2n, c)``.

:class:`TemporalAttnProcessor` attends over the ``f`` frames of a clip at each of the ``n``
spatial positions: ``(b * f, n, c) -> (b * n, heads, f, c / heads)`` sequences, the processor of
:class:`~eegfm_video.models.temporal_attention.TemporalAttention`.

Both go through :func:`torch.nn.functional.scaled_dot_product_attention` (flash /
memory-efficient kernels on GPU: no attention mask is needed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

__all__ = ["FrameProcessor", "SparseCausalAttnProcessor", "TemporalAttnProcessor"]


def _check_num_frames(num_frames, batch: int, where: str) -> int:
    """Validate a frame count against a ``(batch * frames, ...)`` batch size; return it."""
    if num_frames is None:
        raise RuntimeError(
            f"{where}.num_frames is not set: call it through InflatedUNet.forward, which sets it from "
            f"sample.shape[2], or set num_frames to the clip length before calling the layer"
        )
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"{where}.num_frames must be an integer >= 1, got {num_frames!r}")
    if batch % num_frames:
        raise ValueError(
            f"{where}: the batch of {batch} frame rows is not a multiple of num_frames={num_frames}; "
            f"hidden_states must be (batch * num_frames, tokens, channels)"
        )
    return num_frames


class FrameProcessor(ABC):
    """Base of the processors that attend across the frames of a clip (self-attention only).

    Parameters
    ----------
    num_frames : int | None
        Frames per clip ``f``; the batch of ``hidden_states`` is ``b * f`` with the frames of a
        clip adjacent. :class:`~eegfm_video.models.inflated_unet.InflatedUNet` sets it on every
        forward pass; a ``num_frames`` keyword of a call overrides it. ``None`` (unset) raises
        when called.

    Notes
    -----
    A :class:`~eegfm_video.models.frame_attention.FrameAttention` layer holding a frame processor
    refuses a new processor that is not of the same class, so ``set_attn_processor`` cannot drop
    the attention across frames silently.
    """

    #: The InflatedUNet argument that builds the model without this processor (for error messages).
    inflation_flag = ""

    def __init__(self, num_frames: int | None = None):
        self.num_frames = num_frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_frames={self.num_frames})"

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        num_frames: int | None = None,
    ) -> torch.Tensor:
        """Self-attention of ``attn`` across the frames of each clip (diffusers' processor signature).

        Parameters
        ----------
        attn : diffusers.models.attention_processor.Attention
            The layer whose projections are used.
        hidden_states : torch.Tensor
            ``(b * f, n, c)`` tokens, the frames of a clip adjacent (:class:`SparseCausalAttnProcessor`
            also takes ``(b * f, c, h, w)`` feature maps, flattened to ``n = h * w`` tokens and
            restored on output).
        encoder_hidden_states, attention_mask : None
            Must be ``None`` (self-attention, no mask).
        temb : torch.Tensor | None
            ``(b * f, t)`` time embedding, used only by layers with a spatial norm.
        num_frames : int | None
            ``f``; defaults to :attr:`num_frames`.

        Returns
        -------
        torch.Tensor
            Same shape as ``hidden_states`` (``c_out`` channels).
        """
        name = type(self).__name__
        if encoder_hidden_states is not None:
            raise ValueError(
                f"{name} is a self-attention processor: encoder_hidden_states must be None (install it on attn1 "
                "only; cross-attention keeps its own processor)"
            )
        if attention_mask is not None:
            raise ValueError(f"{name} does not support attention_mask; got a tensor, expected None")
        frames = _check_num_frames(self.num_frames if num_frames is None else num_frames, hidden_states.shape[0], name)
        return self.attend_frames(attn, hidden_states, frames, temb)

    @abstractmethod
    def attend_frames(self, attn, hidden_states: torch.Tensor, frames: int, temb: torch.Tensor | None) -> torch.Tensor:
        """The attention itself, on a checked call: ``hidden_states`` of ``b * frames`` rows -> same shape."""


def _attend(attn, query, key, value) -> torch.Tensor:
    """Multi-head SDPA of ``attn``'s heads: ``(B, Lq, inner), (B, Lk, inner) x2 -> (B, Lq, inner)``."""
    batch, inner, heads = query.shape[0], key.shape[-1], attn.heads

    def split_heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, inner) -> (B, heads, L, inner / heads)
        return x.reshape(batch, -1, heads, inner // heads).transpose(1, 2)

    query, key, value = split_heads(query), split_heads(key), split_heads(value)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False, scale=attn.scale)
    return out.transpose(1, 2).reshape(batch, -1, inner).to(query.dtype)


class SparseCausalAttnProcessor(FrameProcessor):
    r"""Sparse-causal self-attention over the frames of a clip (Tune-A-Video), through SDPA.

    Queries of frame ``i`` attend to the keys/values of frames ``0`` and ``i - 1``; frames 0 and
    1 attend to frame 0 alone (see the module docstring for why this equals Tune-A-Video's
    duplicated keys). Same call signature as diffusers' ``AttnProcessor2_0``; install it on the
    ``attn1`` layers only (cross-attention keeps its processor).

    Parameters
    ----------
    num_frames : int | None
        See :class:`FrameProcessor`.

    Notes
    -----
    Self-attention only: ``encoder_hidden_states`` must be ``None``. Attention masks are not
    supported (the UNet's ``attn1`` receives none in Stable Diffusion).
    """

    inflation_flag = "sparse_causal=False"

    def attend_frames(self, attn, hidden_states: torch.Tensor, frames: int, temb: torch.Tensor | None) -> torch.Tensor:
        """Attend each frame's tokens to those of frames 0 and ``i - 1`` (see :meth:`FrameProcessor.__call__`)."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            rows, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(rows, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        rows, tokens, _ = hidden_states.shape
        clips = rows // frames
        query = attn.to_q(hidden_states)  # (b*f, n, inner)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        inner = key.shape[-1]
        query = query.view(clips, frames, tokens, inner)
        key = key.view(clips, frames, tokens, inner)
        value = value.view(clips, frames, tokens, inner)
        head = min(frames, 2)  # frames 0 and 1: context = frame 0 only, one (head * n)-token query sequence
        out = _attend(attn, query[:, :head].reshape(clips, head * tokens, inner), key[:, 0], value[:, 0])
        out = out.view(clips, head, tokens, inner)
        if frames > 2:  # frame i >= 2: context = [frame 0, frame i-1], (b * (f-2), 2n, inner)
            rest = frames - 2
            first_k = key[:, :1].expand(clips, rest, tokens, inner)
            first_v = value[:, :1].expand(clips, rest, tokens, inner)
            k = torch.cat((first_k, key[:, 1:-1]), dim=2).reshape(clips * rest, 2 * tokens, inner)
            v = torch.cat((first_v, value[:, 1:-1]), dim=2).reshape(clips * rest, 2 * tokens, inner)
            tail = _attend(attn, query[:, 2:].reshape(clips * rest, tokens, inner), k, v)
            out = torch.cat((out, tail.view(clips, rest, tokens, inner)), dim=1)
        hidden_states = out.reshape(rows, tokens, inner)

        hidden_states = attn.to_out[0](hidden_states)  # linear projection
        hidden_states = attn.to_out[1](hidden_states)  # dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(rows, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class TemporalAttnProcessor(FrameProcessor):
    r"""Self-attention over the frame axis at every spatial position, through SDPA.

    At each of the ``n`` positions the ``f`` frames of a clip attend to each other (all of
    them: no causal mask, no frame position code). The processor of
    :class:`~eegfm_video.models.temporal_attention.TemporalAttention`; any diffusers
    ``Attention`` can use it.

    Parameters
    ----------
    num_frames : int | None
        See :class:`FrameProcessor`.
    """

    inflation_flag = "temporal_attention=False"

    def attend_frames(self, attn, hidden_states: torch.Tensor, frames: int, temb: torch.Tensor | None) -> torch.Tensor:
        """Mix each position's ``(b * f, n, c)`` tokens across the frames of its clip: ``to_out(attention)``
        (plus ``hidden_states`` when the layer has ``residual_connection``)."""
        if hidden_states.ndim != 3:
            raise ValueError(f"TemporalAttnProcessor: hidden_states must be (batch * frames, tokens, channels), "
                             f"got shape {tuple(hidden_states.shape)}")
        rows, tokens, _ = hidden_states.shape
        clips = rows // frames

        def by_position(x: torch.Tensor) -> torch.Tensor:  # (b*f, n, inner) -> (b*n, f, inner)
            return x.view(clips, frames, tokens, -1).transpose(1, 2).reshape(clips * tokens, frames, -1)

        out = _attend(attn, *(by_position(proj(hidden_states)) for proj in (attn.to_q, attn.to_k, attn.to_v)))
        out = out.view(clips, tokens, frames, -1).transpose(1, 2).reshape(rows, tokens, -1)  # (b*f, n, inner)
        out = attn.to_out[1](attn.to_out[0](out))  # linear projection, dropout
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor
