"""Pre-norm Transformer block with ``scaled_dot_product_attention`` and a key padding mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiHeadSelfAttention", "TransformerBlock"]


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention through :func:`torch.nn.functional.scaled_dot_product_attention`.

    Parameters
    ----------
    embed_dim : int
        ``D``; divisible by ``num_heads``.
    num_heads : int
        Number of heads.
    qkv_bias : bool
        Bias in the fused query/key/value projection.
    attn_dropout : float
        Dropout on attention weights during training.
    """

    def __init__(self, embed_dim: int, num_heads: int, qkv_bias: bool = True, attn_dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"{embed_dim=} must be divisible by {num_heads=}")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=qkv_bias)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend.

        Parameters
        ----------
        x : torch.Tensor, shape (B, N, D)
        attn_mask : torch.Tensor of bool, shape (B, 1, 1, N), optional
            True for keys that may be attended to (valid tokens); None attends to all.

        Returns
        -------
        torch.Tensor, shape (B, N, D)
        """
        batch, n_tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, n_tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, D/H)
        dropout = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).reshape(batch, n_tokens, dim))


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` with a GELU MLP.

    Parameters
    ----------
    embed_dim, num_heads, qkv_bias, attn_dropout
        See :class:`MultiHeadSelfAttention`.
    mlp_ratio : float
        Hidden width of the MLP as a multiple of ``embed_dim``.
    dropout : float
        Dropout after the attention projection and in the MLP.
    layer_norm_eps : float
        Epsilon of both LayerNorms.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        layer_norm_eps: float = 1e-6,
    ):
        super().__init__()
        hidden = int(embed_dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.attn = MultiHeadSelfAttention(embed_dim, num_heads, qkv_bias, attn_dropout)
        self.norm2 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, embed_dim), nn.Dropout(dropout),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block. ``x``: (B, N, D); ``attn_mask``: (B, 1, 1, N) bool. Returns (B, N, D)."""
        x = x + self.drop(self.attn(self.norm1(x), attn_mask))
        return x + self.mlp(self.norm2(x))
