"""``Seq2SeqLatentDecoder``: an autoregressive Transformer decoder from EEG tokens to frame latents.

EEGMirror 3.2.2 (low-level alignment): ``H_hat = D_l(E_brain(x))``, a Transformer decoder
(6 layers in the paper) over the EEG encoder's tokens that predicts the ``M`` VAE latents of a
clip's frames (``M = 6`` for 2 s at 3 fps; ``4 x 36 x 64`` for 288 x 512 video), trained
with ``L_low = MSE(H, H_hat)``. It is autoregressive for real (EEGMirror Sec. 3.2)::

    memory  (B, N, D) EEG tokens  -> Linear -> (B, N, d)           cross-attention keys/values,
                                                                 padded tokens masked out
    inputs  [start, f_0, ..., f_{M-2}]  (B, M, d)                  learned start token, then each
                                                                 frame latent flattened (C*h*w)
                                                                 -> Linear -> d
          + sinusoidal frame position (nothing positional is learned: any M works)
    -> num_layers x pre-norm [causal self-attention, cross-attention, GELU MLP]
    -> LayerNorm -> Linear -> (B, M, C*h*w) -> (B, M, C, h, w)     output j predicts frame j

- training (:meth:`forward`): teacher forcing, the ground-truth frames shifted right behind
  the start token, with a causal mask, so the prediction of frame ``j`` sees frames ``< j``;
- inference (:meth:`generate`): from the start token alone, each predicted frame is fed back
  as the next input, one frame per step (no KV cache: ``M`` is small).

Latents are whatever the caller gives: for Stable Diffusion, ``vae.encode(frames)`` latents
multiplied by ``vae.config.scaling_factor`` (what :mod:`eegfm_video.targets` caches), so that
the output can seed the diffusion sampler directly; divide by the scaling factor before
``vae.decode``.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from eegfm._validation import check_positive_int
from eegfm.hub import StrictDiffusersLoadingMixin

__all__ = ["Seq2SeqLatentDecoder"]


def sinusoidal_positions(n_positions: int, dim: int, *, device=None, dtype=None) -> torch.Tensor:
    """Fixed sinusoidal position codes, shape (n_positions, dim) (``dim`` even).

    ``PE(p, 2i) = sin(p / 10000^(2i/dim))``, ``PE(p, 2i+1) = cos(p / 10000^(2i/dim))``.
    """
    position = torch.arange(n_positions, device=device, dtype=torch.float32)[:, None]  # (P, 1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * freq  # (P, dim/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1).to(dtype or torch.float32)


class _Attention(nn.Module):
    """Multi-head attention of ``query`` over ``context`` through SDPA (self-attention when equal)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, query, context, *, attn_mask=None, is_causal=False):
        """``query`` (B, L, d), ``context`` (B, S, d), ``attn_mask`` (B, 1, 1, S) bool -> (B, L, d)."""
        batch, length, dim = query.shape
        heads, head_dim = self.num_heads, dim // self.num_heads
        q = self.to_q(query).view(batch, length, heads, head_dim).transpose(1, 2)  # (B, h, L, d/h)
        k, v = self.to_kv(context).view(batch, -1, 2, heads, head_dim).permute(2, 0, 3, 1, 4)  # (B, h, S, d/h)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))


class _DecoderBlock(nn.Module):
    """Pre-norm Transformer decoder layer: causal self-attention, cross-attention, GELU MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, eps: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = _Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn = _Attention(dim, num_heads, dropout)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, memory_attn_mask):
        """``x`` (B, L, d), ``memory`` (B, S, d), ``memory_attn_mask`` (B, 1, 1, S) -> (B, L, d)."""
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, is_causal=True))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory, attn_mask=memory_attn_mask))
        return x + self.mlp(self.norm3(x))


class Seq2SeqLatentDecoder(StrictDiffusersLoadingMixin, ModelMixin, ConfigMixin):  # strict: a missing weight is an error
    """Autoregressive Transformer decoder: EEG tokens ``(B, N, D)`` -> frame latents ``(B, M, C, h, w)``.

    Parameters
    ----------
    encoder_dim : int
        ``D``, width of the EEG encoder's tokens (``MAPEEncoder.embed_dim``).
    d_model : int
        ``d``, the decoder's width (even, divisible by ``num_heads``).
    num_layers : int
        Decoder layers (the paper: 6).
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden width as a multiple of ``d_model``.
    dropout : float
        Dropout in the layers (attention weights included), in [0, 1).
    latent_channels : int
        ``C`` of a frame latent (4 for SD's VAE).
    latent_height, latent_width : int
        ``h, w`` of a frame latent (36 x 64 for 288 x 512 frames with SD's VAE).
    num_frames : int
        ``M``, frames :meth:`generate` produces by default (6 = 2 s at 3 fps). Training takes
        any number of frames.
    layer_norm_eps : float
        Epsilon of every LayerNorm.

    Examples
    --------
    >>> import torch
    >>> model = Seq2SeqLatentDecoder(encoder_dim=32, d_model=64, num_layers=2, num_heads=2,
    ...                              latent_height=4, latent_width=8, num_frames=3).eval()
    >>> tokens, mask = torch.randn(2, 10, 32), torch.ones(2, 10, dtype=torch.bool)
    >>> model(tokens, torch.randn(2, 3, 4, 4, 8), mask).shape      # teacher forcing
    torch.Size([2, 3, 4, 4, 8])
    >>> model.generate(tokens, mask).shape                          # autoregressive
    torch.Size([2, 3, 4, 4, 8])
    """

    @register_to_config
    def __init__(
        self,
        encoder_dim: int = 200,
        d_model: int = 512,
        num_layers: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        latent_channels: int = 4,
        latent_height: int = 36,
        latent_width: int = 64,
        num_frames: int = 6,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        for name, value in (("encoder_dim", encoder_dim), ("d_model", d_model), ("num_layers", num_layers),
                            ("num_heads", num_heads), ("latent_channels", latent_channels),
                            ("latent_height", latent_height), ("latent_width", latent_width),
                            ("num_frames", num_frames)):
            check_positive_int(name, value)
        if d_model % 2 or d_model % num_heads:
            raise ValueError(f"d_model must be even and divisible by num_heads, got {d_model=}, {num_heads=}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        frame_dim = latent_channels * latent_height * latent_width
        self.memory_proj = nn.Linear(encoder_dim, d_model)
        self.frame_in = nn.Linear(frame_dim, d_model)
        self.start_token = nn.Parameter(torch.zeros(d_model))
        self.blocks = nn.ModuleList(
            _DecoderBlock(d_model, num_heads, mlp_ratio, dropout, layer_norm_eps) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.frame_out = nn.Linear(d_model, frame_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights and start token, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.start_token, std=0.02)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of one frame latent."""
        return (self.config.latent_channels, self.config.latent_height, self.config.latent_width)

    # ------------------------------------------------------------------ helpers
    def _prepare_memory(self, memory: torch.Tensor, memory_mask: torch.Tensor | None):
        """Project the EEG tokens (padding zeroed); return them (B, N, d) and the SDPA key mask (B, 1, 1, N) or None."""
        dim = self.config.encoder_dim
        if memory.ndim != 3 or memory.shape[-1] != dim:
            raise ValueError(f"memory must have shape (batch, tokens, {dim}) (encoder_dim={dim}), got "
                             f"{tuple(memory.shape)}; pass the encoder's output .tokens")
        attn_mask = None
        if memory_mask is not None:
            if memory_mask.dtype != torch.bool or memory_mask.shape != memory.shape[:2]:
                raise ValueError(f"memory_mask must be a bool tensor of shape {tuple(memory.shape[:2])} "
                                 f"(True = real token), got {memory_mask.dtype} {tuple(memory_mask.shape)}; "
                                 "pass the encoder's output .token_mask")
            empty = (~memory_mask.any(dim=1)).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"memory_mask has no real token for batch rows {empty}: every sample "
                                 "needs at least one unpadded EEG token")
            attn_mask = memory_mask[:, None, None, :]  # (B, 1, 1, N)
            # padded tokens may hold anything, NaN included: masked keys get zero weight, but their
            # values still enter attention's weighted sum (0 * NaN = NaN), so zero them first
            memory = torch.where(memory_mask[..., None], memory, torch.zeros((), dtype=memory.dtype))
        return self.memory_proj(memory), attn_mask

    def _decode(self, inputs: torch.Tensor, memory: torch.Tensor, attn_mask) -> torch.Tensor:
        """Decoder stack on ``inputs`` (B, L, d) at frame positions 0..L-1 -> frame latents (B, L, C*h*w)."""
        x = inputs + sinusoidal_positions(inputs.shape[1], inputs.shape[2], device=inputs.device, dtype=inputs.dtype)
        for block in self.blocks:
            x = block(x, memory, attn_mask)
        return self.frame_out(self.norm(x))

    def _inputs(self, previous: torch.Tensor) -> torch.Tensor:
        """Decoder inputs ``[start, frame_0, ..., frame_{P-1}]`` (B, P+1, d) from frames (B, P, C*h*w)."""
        embedded = self.frame_in(previous)  # (B, P, d)
        start = self.start_token.to(embedded.dtype).expand(previous.shape[0], 1, -1)  # (B, 1, d)
        return torch.cat((start, embedded), dim=1)

    # ------------------------------------------------------------------ training
    def forward(
        self, memory: torch.Tensor, latents: torch.Tensor, memory_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced prediction of every frame (training).

        Parameters
        ----------
        memory : torch.Tensor, shape (B, N, D)
            EEG encoder tokens (``encoder(...).tokens``).
        latents : torch.Tensor, shape (B, M, C, h, w)
            Ground-truth frame latents (scaled by the VAE's scaling factor). Frame ``j`` is the
            input that predicts frame ``j + 1``; the last frame is never an input.
        memory_mask : torch.Tensor of bool, shape (B, N), optional
            True for real tokens (``encoder(...).token_mask``); padded tokens are never attended.

        Returns
        -------
        torch.Tensor, shape (B, M, C, h, w)
            Prediction of frame ``j`` from the EEG and the true frames ``< j`` (a causal mask).
        """
        shape = self.latent_shape
        if latents.ndim != 5 or tuple(latents.shape[2:]) != shape or latents.shape[0] != memory.shape[0]:
            raise ValueError(f"latents must have shape ({memory.shape[0]}, frames, {', '.join(map(str, shape))}) "
                             f"(batch of memory, then latent_channels, latent_height, latent_width), got "
                             f"{tuple(latents.shape)}")
        if latents.shape[1] < 1:
            raise ValueError("latents must hold at least one frame, got 0")
        memory, attn_mask = self._prepare_memory(memory, memory_mask)
        batch, frames = latents.shape[:2]
        inputs = self._inputs(latents[:, :-1].flatten(2))  # (B, M, d): start + true frames < M-1
        return self._decode(inputs, memory, attn_mask).view(batch, frames, *shape)

    # ------------------------------------------------------------------ inference
    def generate(
        self, memory: torch.Tensor, memory_mask: torch.Tensor | None = None, num_frames: int | None = None
    ) -> torch.Tensor:
        """Autoregressive prediction (inference): each frame is fed back as the next input.

        Step ``i`` runs the decoder on ``[start, frame_0, ..., frame_{i-1}]`` (its own earlier
        outputs), the very computation :meth:`forward` does on those frames, and keeps the
        output at position ``i``. Gradients flow unless the caller wraps it in
        :func:`torch.no_grad`; call ``.eval()`` first when dropout > 0.

        Parameters
        ----------
        memory : torch.Tensor, shape (B, N, D)
            EEG encoder tokens.
        memory_mask : torch.Tensor of bool, shape (B, N), optional
            True for real tokens.
        num_frames : int, optional
            ``M``; default ``config.num_frames``.

        Returns
        -------
        torch.Tensor, shape (B, M, C, h, w)
            Predicted frame latents (in the scaled latent space of the training targets).
        """
        num_frames = self.config.num_frames if num_frames is None else num_frames
        check_positive_int("num_frames", num_frames)
        memory, attn_mask = self._prepare_memory(memory, memory_mask)
        batch = memory.shape[0]
        frames = memory.new_zeros(batch, 0, self.frame_out.out_features)  # (B, i, C*h*w): outputs so far
        for _ in range(num_frames):  # one frame per step; M is 6
            frame = self._decode(self._inputs(frames), memory, attn_mask)[:, -1]  # (B, C*h*w)
            frames = torch.cat((frames, frame[:, None]), dim=1)
        return frames.view(batch, num_frames, *self.latent_shape)
