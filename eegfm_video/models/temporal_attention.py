"""``TemporalAttention``: self-attention over the frame axis at every spatial location (EEGMirror Sec. 3.3).

Each transformer block of the inflated UNet gains one (Tune-A-Video's ``attn_temp``). It is a
diffusers ``Attention`` (a :class:`~eegfm_video.models.frame_attention.FrameAttention`) with a
:class:`~eegfm_video.models.attention_processors.TemporalAttnProcessor`, so it is listed in
``unet.attn_processors``, reached by LoRA / PEFT through its ``to_q``, ``to_k``, ``to_v`` and
``to_out.0`` linears, and its processor cannot be swapped for a per-frame one. Its input is the
block's output in the 2-D layout, ``(b * f, n, c)`` with the frames of a clip adjacent; at every
one of the ``n`` spatial positions it attends over that clip's ``f`` frames::

    x (b*f, n, c) -> norm (LayerNorm) -> to_q, to_k, to_v       token-wise, in the 2-D layout
      -> (b*n, heads, f, c/heads)                                one sequence of f frames per position
      -> SDPA -> (b*f, n, c) -> to_out -> + x                    residual

The output projection ``to_out.0`` starts at zero, weight and bias (Tune-A-Video zeroes the
weight only), so a new temporal attention adds exactly 0 and the inflated model equals the 2-D
model at initialisation. There is no frame position code (as in Tune-A-Video): frame order
reaches the model through the sparse-causal spatial attention.

Saved weights of the earlier, hand-written module named the output projection ``to_out``
(``to_out.weight``, ``to_out.bias``); :meth:`TemporalAttention.upgrade_state_dict` renames
them, and ``load_state_dict`` does so by itself.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_processors import TemporalAttnProcessor
from .frame_attention import FrameAttention

__all__ = ["TemporalAttention"]

#: Parameter names of the hand-written module (before it was a diffusers ``Attention``) -> today's.
LEGACY_NAMES = {"to_out.weight": "to_out.0.weight", "to_out.bias": "to_out.0.bias"}


class TemporalAttention(FrameAttention):
    """Pre-LayerNorm multi-head self-attention across frames, residual, zero-initialised output.

    Parameters
    ----------
    dim : int
        Channels ``c`` of the tokens.
    num_heads : int
        Attention heads; must divide ``dim``.
    norm_eps : float
        LayerNorm epsilon.

    Notes
    -----
    The frame count is the processor's: ``layer.processor.num_frames`` (set by
    :class:`~eegfm_video.models.inflated_unet.InflatedUNet` before every forward pass), or the
    ``num_frames`` keyword of :meth:`forward`.
    """

    def __init__(self, dim: int, num_heads: int, norm_eps: float = 1e-5):
        for name, value in (("dim", dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if dim % num_heads:
            raise ValueError(f"num_heads must divide dim: got dim={dim}, num_heads={num_heads}")
        super().__init__(query_dim=dim, heads=num_heads, dim_head=dim // num_heads, bias=False, out_bias=True,
                         processor=TemporalAttnProcessor())
        self.dim = dim
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output projection ``to_out.0`` (weight and bias): the module becomes the identity."""
        nn.init.zeros_(self.to_out[0].weight)
        nn.init.zeros_(self.to_out[0].bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"

    def forward(self, hidden_states: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Mix each spatial position's tokens across the frames of its clip.

        Parameters
        ----------
        hidden_states : torch.Tensor
            ``(b * f, n, c)`` tokens, the frames of a clip adjacent.
        num_frames : int | None
            ``f``; defaults to the processor's ``num_frames``.

        Returns
        -------
        torch.Tensor
            ``(b * f, n, c)``: ``hidden_states + to_out(attention over frames of norm(hidden_states))``.
        """
        if hidden_states.ndim != 3 or hidden_states.shape[-1] != self.dim:
            raise ValueError(
                f"hidden_states must be (batch * frames, tokens, {self.dim}), got shape {tuple(hidden_states.shape)}"
            )
        extra = {} if num_frames is None else {"num_frames": num_frames}
        return hidden_states + super().forward(self.norm(hidden_states), **extra)

    @staticmethod
    def upgrade_state_dict(state_dict: dict, prefix: str = "") -> dict:
        """Rename, in place, the keys of a hand-written temporal attention at ``prefix`` to today's names.

        Parameters
        ----------
        state_dict : dict
            Parameter name -> tensor; keys ``prefix + "to_out.weight"`` / ``"to_out.bias"`` become
            ``prefix + "to_out.0.weight"`` / ``"to_out.0.bias"``; other keys are left alone.
        prefix : str
            The module's name followed by a dot (``""`` for a module's own state dict).

        Returns
        -------
        dict
            ``state_dict``.
        """
        for old, new in LEGACY_NAMES.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        return state_dict

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torch's hook for renamed parameters: a state dict of the hand-written module loads as well
        self.upgrade_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
