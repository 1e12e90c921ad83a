"""Attentive pooling: a few learned queries read the encoder's tokens with cross-attention.

Mean pooling weighs every (channel, patch) token alike, so a pattern that differs in sign
between two scalp regions (left vs right motor cortex, for instance) averages away unless the
Transformer has already mixed it into every token. Here ``Q`` learned queries each attend over
the real tokens (padding masked out), so one query can read the left hemisphere and another the
right: the head sees them side by side. The tokens carry their MAPE position, so the pooling
stays montage-agnostic. This is the attentive probe of V-JEPA / the pooling REVE uses for its
linear probe, reduced to one cross-attention layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .transformer import sdpa_padded_heads

__all__ = ["AttentionPool"]


class AttentionPool(nn.Module):
    """``(B, N, D)`` tokens + ``(B, N)`` mask -> ``(B, num_queries * D)`` features.

    Parameters
    ----------
    embed_dim : int
        ``D``, the token width.
    num_queries : int
        ``Q``, learned queries; the output concatenates their read-outs.
    num_heads : int
        Attention heads (must divide ``embed_dim``).

    Attributes
    ----------
    pad_heads : bool or None
        As :class:`eegfm.modules.transformer.MultiHeadSelfAttention`'s: None (default) pads
        each head to a multiple of 8 on CUDA fp16/bf16 (so the masked read keeps a fused
        kernel), True/False force it. Exact either way; not saved.
    """

    def __init__(self, embed_dim: int, num_queries: int = 4, num_heads: int = 4):
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {num_queries}")
        if embed_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide embed_dim={embed_dim}")
        self.embed_dim, self.num_queries, self.num_heads = embed_dim, num_queries, num_heads
        self.pad_heads: bool | None = None
        self.queries = nn.Parameter(torch.zeros(num_queries, embed_dim))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.norm = nn.LayerNorm(embed_dim)
        self.kv = nn.Linear(embed_dim, 2 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    @property
    def num_features(self) -> int:
        return self.num_queries * self.embed_dim

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, D), token_mask (B, N) bool (True = real) -> (B, Q * D)."""
        batch, n_tokens, dim = tokens.shape
        heads, head_dim = self.num_heads, dim // self.num_heads
        k, v = self.kv(self.norm(tokens)).view(batch, n_tokens, 2, heads, head_dim).permute(2, 0, 3, 1, 4)
        q = self.queries.to(k.dtype).view(1, self.num_queries, heads, head_dim).transpose(1, 2)
        q = q.expand(batch, -1, -1, -1)  # (B, H, Q, hd)
        mask = token_mask[:, None, None, :]  # (B, 1, 1, N): attend to real tokens only
        read = sdpa_padded_heads(q, k, v, attn_mask=mask, pad=self.pad_heads)  # (B, H, Q, hd); heads padded to 8 on CUDA half
        read = self.proj(read.transpose(1, 2).reshape(batch, self.num_queries, dim))
        return read.flatten(1)
