"""Pre-norm Transformer block with ``scaled_dot_product_attention`` and a key padding mask.

Head-size padding
-----------------
PyTorch's fused CUDA attention kernels that take a mask (memory-efficient, cuDNN) need a head
size divisible by 8 in fp16/bf16; base size has 200 / 10 = 20, so every masked half-precision
call would fall back to the math kernel (quadratic memory in fp32). Zero-padding q, k and v
from ``d`` to the next multiple of 8 and keeping the scale ``1 / sqrt(d)`` is exact: the extra
dimensions add 0 to every score and produce output columns of 0, which are sliced off.

The rule (:func:`pads_head_size`): pad when the head size is not a multiple of 8 and q is a
CUDA tensor in fp16/bf16. On CPU the fused kernel takes any head size and padding measured
1.2x slower, so CPU numerics are unchanged. ``MultiHeadSelfAttention.pad_heads`` overrides the
rule (True/False; None = the rule); it is a plain attribute, not a parameter or buffer, so
saved models load unchanged.

CPU half precision
------------------
Under CPU autocast (bf16) the projections and MLPs run in bf16, which CPUs with AMX (Intel
Sapphire Rapids and later) compute several times faster than float32, but PyTorch's CPU attention
kernel is slower in bf16 than in float32 (its backward 2.6x, one thread, base size). So a CPU half
q/k/v is attended in float32 and the output cast back (:data:`CPU_HALF_ATTENTION_IN_FP32`): on a
Sapphire Rapids core a base training step at B=8 under bf16 autocast then takes 663 ms, against 927 ms
with bf16 attention and 1,079 ms in float32 (``benchmarks/cpu_bf16_step.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .packing import TokenPacking

__all__ = ["CPU_HALF_ATTENTION_IN_FP32", "MultiHeadSelfAttention", "TransformerBlock", "pads_head_size",
           "sdpa_padded_heads", "take_rows"]

HEAD_SIZE_MULTIPLE = 8  # what the fused fp16/bf16 SDPA kernels with a mask need
_HALF = (torch.float16, torch.bfloat16)

#: Run attention in float32 when q is a CPU half tensor (under CPU autocast): PyTorch's CPU attention
#: kernels are slower in bf16 than in float32, while the projections and MLPs gain from bf16.
CPU_HALF_ATTENTION_IN_FP32 = True


def pads_head_size(head_dim: int, device: torch.device, dtype: torch.dtype) -> bool:
    """The automatic rule: pad heads of ``head_dim`` for q on ``device`` in ``dtype``?

    True when ``head_dim`` is not a multiple of 8 and the call is a CUDA fp16/bf16 one (the
    only case where a fused masked kernel needs it); False otherwise.
    """
    return head_dim % HEAD_SIZE_MULTIPLE != 0 and device.type == "cuda" and dtype in _HALF


def sdpa_padded_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                      dropout_p: float = 0.0, pad: bool | None = None) -> torch.Tensor:
    """``scaled_dot_product_attention`` with each head zero-padded to a multiple of 8 when needed, and CPU
    half-precision q/k/v attended in float32 (module docstring).

    Parameters
    ----------
    q : torch.Tensor, shape (B, H, Nq, d)
    k, v : torch.Tensor, shape (B, H, Nk, d)
    attn_mask : torch.Tensor, broadcastable to (B, H, Nq, Nk), optional
        Bool: True where a query may attend to a key. Float: added to the scores (``-inf``
        where it may not).
    dropout_p : float
        Attention dropout (pass 0 at evaluation).
    pad : bool, optional
        Force the padding on or off; None follows :func:`pads_head_size` (CUDA fp16/bf16 and
        ``d`` not a multiple of 8). Padding is exact: the scale stays ``1 / sqrt(d)``.

    Returns
    -------
    torch.Tensor, shape (B, H, Nq, d)
    """
    if q.device.type == "cpu" and q.dtype in _HALF and CPU_HALF_ATTENTION_IN_FP32:
        if attn_mask is not None and attn_mask.is_floating_point():
            attn_mask = attn_mask.float()
        with torch.autocast("cpu", enabled=False):  # CPU autocast would cast them back to half
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                                 dropout_p=dropout_p)
        return out.to(q.dtype)
    head_dim = q.shape[-1]
    pad = pad if pad is not None else pads_head_size(head_dim, q.device, q.dtype)
    extra = -head_dim % HEAD_SIZE_MULTIPLE if pad else 0
    if not extra:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    q, k, v = (F.pad(t, (0, extra)) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                         scale=1.0 / math.sqrt(head_dim))
    return out[..., :head_dim]


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

    Attributes
    ----------
    pad_heads : bool or None
        Zero-pad each head to a multiple of 8 before SDPA (exact, see the module docstring):
        None (default) follows :func:`pads_head_size`, True/False force it.
    """

    def __init__(self, embed_dim: int, num_heads: int, qkv_bias: bool = True, attn_dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"{embed_dim=} must be divisible by {num_heads=}")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.pad_heads: bool | None = None
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=qkv_bias)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                packing: TokenPacking | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """Attend.

        Parameters
        ----------
        x : torch.Tensor, shape (B, N, D), or (T, D): the real tokens only, with ``packing``
        attn_mask : torch.Tensor, optional
            Bool (B, 1, 1, N): True for keys that may be attended to (valid tokens). Float
            (B, H, N, N): an additive bias (``-inf`` at keys not to attend to;
            :mod:`eegfm.modules.attention_bias`). None attends to all.
        packing : TokenPacking, optional
            Where ``x``'s rows sit in the padded (B, N) batch: the projections run on the real
            tokens, the attention on the padded layout (:mod:`eegfm.modules.packing`).
        index : torch.Tensor of int64, shape (B, M), optional
            Attend from these tokens of each sample only (positions in the padded ``N``): keys
            and values still come from every token, but the attention and the output projection
            run on the ``M`` queries alone (``M / N`` of that work; the fused q/k/v projection
            still runs on every token, so adapters put on it, such as LoRA's, apply). Equal to
            the full output at those tokens to float rounding. With ``packing`` they must be real
            tokens (a padded one reads some other row; discard its output).

        Returns
        -------
        torch.Tensor, shape (B, N, D), or (T, D) with ``packing``, or (B, M, D) with ``index``
        """
        dim = x.shape[-1]
        head_dim = dim // self.num_heads
        qkv = self.qkv(x)
        if packing is not None:
            qkv = packing.unpack(qkv)  # (B, N, 3D), zeros at the padding (masked keys)
        batch, n_tokens = qkv.shape[:2]
        q, k, v = qkv.view(batch, n_tokens, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if index is not None:  # the chosen queries only
            n_tokens = index.shape[1]
            q = q.gather(2, index[:, None, :, None].expand(-1, self.num_heads, -1, head_dim))  # (B, H, M, d)
            if attn_mask is not None and attn_mask.shape[-2] > 1:  # a (B, H, N, N) bias: its chosen rows
                rows = index[:, None, :, None].expand(-1, attn_mask.shape[1], -1, attn_mask.shape[-1])
                attn_mask = attn_mask.gather(2, rows)
        dropout = self.attn_dropout if self.training else 0.0
        out = sdpa_padded_heads(q, k, v, attn_mask, dropout, pad=self.pad_heads)  # (B, H, N or M, d)
        out = out.transpose(1, 2).reshape(batch, n_tokens, dim)
        return self.proj(out if packing is None or index is not None else packing.pack(out))


def take_rows(x: torch.Tensor, index: torch.Tensor, packing: TokenPacking | None = None) -> torch.Tensor:
    """Rows ``index`` (B, M) of each sample of ``x`` (B, N, D), or of the packed ``x`` (T, D): (B, M, D)."""
    if packing is not None:
        return x.index_select(0, packing.rows_of(index).flatten()).view(*index.shape, x.shape[-1])
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                packing: TokenPacking | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block. ``x``: (B, N, D), or (T, D) real tokens with ``packing``
        (:class:`MultiHeadSelfAttention`); ``attn_mask``: (B, 1, 1, N) bool or (B, H, N, N) float.
        Returns ``x``'s shape.

        ``index`` (B, M), optional: the block's output at these tokens only, (B, M, D). Every
        token is normalised and projected to keys and values, but only the chosen ones attend
        and go through the output projection and the MLP: for the CLS token alone at base size
        and 257 tokens this is about a quarter of the block's arithmetic. Equal to the full
        output at those tokens to float rounding (:class:`MultiHeadSelfAttention`'s ``index``).
        """
        if index is None:
            x = x + self.drop(self.attn(self.norm1(x), attn_mask, packing))
            return x + self.mlp(self.norm2(x))
        chosen = take_rows(x, index, packing)  # (B, M, D)
        chosen = chosen + self.drop(self.attn(self.norm1(x), attn_mask, packing, index))
        return chosen + self.mlp(self.norm2(chosen))
