"""``TemporalAttention``: self-attention over the frame axis at every spatial location (EEGMirror Sec. 3.3).

Each transformer block of the inflated UNet gains one (Tune-A-Video's ``attn_temp``). Its input
is the block's output in the 2-D layout, ``(b * f, n, c)`` with the frames of a clip adjacent;
at every one of the ``n`` spatial positions it attends over that clip's ``f`` frames::

    x (b*f, n, c) -> LayerNorm -> to_q, to_k, to_v          token-wise, in the 2-D layout
      -> (b*n, heads, f, c/heads)                            one sequence of f frames per position
      -> SDPA -> (b*f, n, c) -> to_out -> + x                residual

The output projection starts at zero, weight and bias (Tune-A-Video zeroes the weight only),
so a new temporal attention adds exactly 0 and the inflated model equals the 2-D model at
initialisation. There is no frame position code (as in Tune-A-Video): frame order reaches the
model through the sparse-causal spatial attention.

The number of frames is an attribute, :attr:`num_frames`, set by
:class:`~eegfm_video.models.inflated_unet.InflatedUNet` before every forward pass (it can also
be passed to :meth:`TemporalAttention.forward`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention_processors import _check_num_frames

__all__ = ["TemporalAttention"]


class TemporalAttention(nn.Module):
    """Pre-LayerNorm multi-head self-attention across frames, residual, zero-initialised output.

    Parameters
    ----------
    dim : int
        Channels ``c`` of the tokens.
    num_heads : int
        Attention heads; must divide ``dim``.
    norm_eps : float
        LayerNorm epsilon.

    Attributes
    ----------
    num_frames : int | None
        Frames per clip ``f`` used when :meth:`forward` gets none.
    """

    def __init__(self, dim: int, num_heads: int, norm_eps: float = 1e-5):
        super().__init__()
        for name, value in (("dim", dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if dim % num_heads:
            raise ValueError(f"num_heads must divide dim: got dim={dim}, num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_frames: int | None = None
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output projection (weight and bias): the module becomes the identity."""
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, num_frames={self.num_frames}"

    def forward(self, hidden_states: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Mix each spatial position's tokens across the frames of its clip.

        Parameters
        ----------
        hidden_states : torch.Tensor
            ``(b * f, n, c)`` tokens, the frames of a clip adjacent.
        num_frames : int | None
            ``f``; defaults to :attr:`num_frames`.

        Returns
        -------
        torch.Tensor
            ``(b * f, n, c)``: ``hidden_states + to_out(attention over frames)``.
        """
        if hidden_states.ndim != 3 or hidden_states.shape[-1] != self.dim:
            raise ValueError(
                f"hidden_states must be (batch * frames, tokens, {self.dim}), got shape {tuple(hidden_states.shape)}"
            )
        frames = _check_num_frames(
            self.num_frames if num_frames is None else num_frames, hidden_states.shape[0], "TemporalAttention"
        )
        rows, tokens, dim = hidden_states.shape
        clips, heads = rows // frames, self.num_heads
        normed = self.norm(hidden_states)

        def by_position(x: torch.Tensor) -> torch.Tensor:  # (b*f, n, c) -> (b*n, heads, f, c/heads)
            x = x.view(clips, frames, tokens, heads, dim // heads).permute(0, 2, 3, 1, 4)
            return x.reshape(clips * tokens, heads, frames, dim // heads)

        out = F.scaled_dot_product_attention(
            by_position(self.to_q(normed)), by_position(self.to_k(normed)), by_position(self.to_v(normed))
        )  # (b*n, heads, f, c/heads)
        out = out.view(clips, tokens, heads, frames, dim // heads).permute(0, 3, 1, 2, 4).reshape(rows, tokens, dim)
        return hidden_states + self.to_out(out)
