"""``MAPEEncoder``: a Transformer over EEG patches from any montage (EEGMirror 3.1).

The data path, top to bottom::

    x (B, C, T) µV, positions (B, C, 2) proportion coordinates
      -> patches (B, C, K, W)                     K = T // W, leftover samples dropped
      -> patch embeddings (B, C, K, D)            NeuralPatchEmbedder, one patch at a time
      -> + MAPE (B, C, K, D)                      SE(channel position) + TE(patch index)
      -> tokens (B, 1 + C*K, D) with a CLS token  channel-major: token 1 + c*K + k
      -> pre-norm Transformer (SDPA, key padding mask) -> final LayerNorm

One batch may mix montages, channel counts and lengths: pad channels and time to the
largest, pass ``channel_mask`` (B, C) and ``n_times`` (B,), and no padded token is ever
attended to (see :func:`eegfm.data.collate.pad_recordings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data.preprocessing import PreprocessConfig
from ..hub import HubMixin, hub_card
from ..modules.patch_embed import NeuralPatchEmbedder
from ..modules.position import build_position_embedding
from ..modules.transformer import TransformerBlock

__all__ = ["EncoderOutput", "MAPEEncoder"]


@dataclass
class EncoderOutput:
    """What :class:`MAPEEncoder` returns.

    Attributes
    ----------
    tokens : torch.Tensor, shape (B, C*K, D)
        One vector per (channel, patch), channel-major (index ``c * K + k``).
    cls : torch.Tensor, shape (B, D)
        The CLS token, a summary of the whole recording.
    token_mask : torch.Tensor of bool, shape (B, C*K)
        True for real tokens, False for padding.
    n_channels : int
        ``C`` of the (padded) batch.
    n_patches : int
        ``K`` of the (padded) batch.
    """

    tokens: torch.Tensor
    cls: torch.Tensor
    token_mask: torch.Tensor
    n_channels: int
    n_patches: int

    def pooled(self) -> torch.Tensor:
        """Mean of the real tokens, shape (B, D) (padding excluded)."""
        weights = self.token_mask.to(self.tokens.dtype)[..., None]  # (B, N, 1)
        return (self.tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def grid(self) -> torch.Tensor:
        """Tokens as a grid, shape (B, C, K, D)."""
        batch, _, dim = self.tokens.shape
        return self.tokens.view(batch, self.n_channels, self.n_patches, dim)


def check_finite_inputs(x: torch.Tensor, positions: torch.Tensor, channel_mask: torch.Tensor,
                        n_times: torch.Tensor, patch_size: int | None = None) -> None:
    """Raise ``ValueError`` naming the first (sample, channel) with a NaN/Inf sample or position.

    Only real channels and samples are checked (padding may hold anything). With
    ``patch_size``, also raise for a recording with no token at all (every channel masked, or
    fewer valid samples than one patch): its outputs would be built from nothing.

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
    if bool(bad.any() | empty.any()):  # the one host sync
        if bool(empty.any()):
            sample = int(empty.nonzero()[0])
            why = ("every channel is masked (channel_mask all False)" if not bool(channel_mask[sample].any()) else
                   f"n_times={int(n_times[sample])} valid samples, fewer than one patch ({patch_size})")
            raise ValueError(f"recording {sample} of the batch has no token: {why}; drop it or give it at least "
                             "one real channel and one patch of samples")
        sample, channel = (int(v) for v in bad.nonzero()[0])
        what = "a NaN/Inf sample" if bool(bad_signal[sample, channel]) else "a NaN/Inf position"
        raise ValueError(
            f"x[{sample}, {channel}] (sample {sample}, channel {channel}) has {what}; {int(bad.sum())} channel(s) "
            "in the batch do. Fix or drop them (e.g. raw.interpolate_bads(), np.nan_to_num), mark padded "
            "channels with channel_mask, or pass check_finite=False to skip this check"
        )


class MAPEEncoder(nn.Module, HubMixin, **hub_card()):
    """EEG Transformer encoder with montage-agnostic position embeddings.

    Parameters
    ----------
    patch_size : int
        ``W``, samples per patch (100 = 0.5 s at 200 Hz, the paper's best window).
    embed_dim : int
        ``D``, token width (divisible by 4 for MAPE and by ``num_heads``).
    depth : int
        Number of Transformer blocks.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden width as a multiple of ``embed_dim``.
    qkv_bias : bool
        Bias on the query/key/value projection.
    dropout : float
        Dropout in the blocks.
    attn_dropout : float
        Dropout on attention weights.
    position_embedding : {"mape", "sincos1d"}
        ``"mape"`` (channel positions + patch index) or the 1-D ablation baseline
        ``"sincos1d"`` (flattened token index, blind to the scalp).
    conv_channels : sequence of int
        Channels of the patch embedder's convolutions.
    pool_bins : int
        Time bins the patch embedder pools into.
    layer_norm_eps : float
        Epsilon of every LayerNorm.
    sfreq : float
        Sampling rate (Hz) the model expects. Pass ``sfreq=`` to :meth:`forward` to have it
        checked.
    preprocessing : dict, optional
        The preprocessing contract (:class:`eegfm.data.PreprocessConfig` as a dict: rate,
        band, notch, units, channels) that input must follow; saved in ``config.json`` so a
        pretrained model says how its input must look. Default: ``PreprocessConfig(sfreq=sfreq)``.

    Examples
    --------
    >>> import torch
    >>> from eegfm import MAPEEncoder, proportion_coordinates
    >>> model = MAPEEncoder(embed_dim=32, depth=2, num_heads=2, patch_size=50)
    >>> pos = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
    >>> out = model(torch.randn(1, 3, 400), pos)
    >>> out.tokens.shape, out.cls.shape
    (torch.Size([1, 24, 32]), torch.Size([1, 32]))
    """

    def __init__(
        self,
        patch_size: int = 100,
        embed_dim: int = 200,
        depth: int = 12,
        num_heads: int = 10,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        position_embedding: str = "mape",
        conv_channels: Sequence[int] = (8, 8, 16),
        pool_bins: int = 4,
        layer_norm_eps: float = 1e-6,
        sfreq: float = 200.0,
        preprocessing: dict | None = None,
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"{embed_dim=} must be divisible by {num_heads=}")
        contract = PreprocessConfig.from_dict({"sfreq": sfreq, **(preprocessing or {})})
        if contract.sfreq != float(sfreq):
            raise ValueError(f"preprocessing['sfreq']={contract.sfreq} differs from {sfreq=}; they must agree")
        self.preprocessing = contract
        if isinstance(getattr(self, "_hub_mixin_config", None), dict):  # save the resolved contract
            self._hub_mixin_config["preprocessing"] = contract.to_dict()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.sfreq = sfreq
        self.patch_embed = NeuralPatchEmbedder(patch_size, embed_dim, conv_channels, pool_bins)
        self.pos_embed = build_position_embedding(position_embedding, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, dropout, attn_dropout, layer_norm_eps)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def check_preprocessing(self, config: PreprocessConfig) -> None:
        """Raise if data preprocessed with ``config`` does not match this model's contract."""
        expected, got = self.preprocessing.to_dict(), config.to_dict()
        diff = {k: (got[k], expected[k]) for k in expected if got.get(k) != expected[k]}
        if diff:
            listed = ", ".join(f"{k}={g!r} (model expects {e!r})" for k, (g, e) in diff.items())
            raise ValueError(f"data preprocessed differently from this model's contract: {listed}. "
                             "Preprocess with model.preprocessing (e.g. EEGCorpus(..., config=model.preprocessing)).")

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, x, positions, channel_mask, n_times, sfreq):
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
        if total < self.patch_size:
            raise ValueError(
                f"x has {total} samples per channel, fewer than one patch "
                f"(patch_size={self.patch_size}); pass longer recordings or a model with a "
                "smaller patch_size"
            )
        if sfreq is not None and float(sfreq) != float(self.sfreq):
            raise ValueError(
                f"{sfreq=} Hz but this model expects sfreq={self.sfreq} Hz; resample first "
                f"(e.g. raw.resample({self.sfreq}))"
            )
        return positions, channel_mask, n_times

    def padding_given(self, x: torch.Tensor, channel_mask, n_times) -> bool:
        """Whether the caller's inputs may hold padding, decided without reading any tensor.

        False when no ``channel_mask`` is given and ``n_times`` is None or an int covering
        every whole patch of ``x``: then every token is real, known from Python alone (no
        device-to-host sync, nothing for ``torch.compile``/``torch.export`` to branch on).
        True otherwise (a mask or a tensor of lengths may pad; the key padding mask is
        then always passed, which gives the same outputs when nothing is padded).
        """
        if channel_mask is not None:
            return True
        if n_times is None:
            return False
        return not (isinstance(n_times, int) and n_times // self.patch_size >= x.shape[-1] // self.patch_size)

    # ------------------------------------------------------------------ stages
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Cut each channel into non-overlapping patches.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)

        Returns
        -------
        torch.Tensor, shape (B, C, K, W) with ``K = T // W`` (leftover samples dropped).
        """
        n_patches = x.shape[-1] // self.patch_size
        return x[..., : n_patches * self.patch_size].unflatten(-1, (n_patches, self.patch_size))

    def embed_patches(self, patches: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Patch embeddings with padding zeroed first, (B, C, K, W) -> (B, C, K, D).

        Padded samples may hold anything (NaN included); they are replaced by zeros before the
        patch embedding so that they can reach neither the outputs nor the gradients.
        """
        patches = torch.where(token_mask[..., None], patches, torch.zeros((), dtype=patches.dtype))
        return self.patch_embed(patches)

    def token_mask(self, channel_mask: torch.Tensor, n_times: torch.Tensor, n_patches: int) -> torch.Tensor:
        """Which (channel, patch) tokens are real.

        Parameters
        ----------
        channel_mask : torch.Tensor of bool, shape (B, C)
        n_times : torch.Tensor, shape (B,)
            Valid samples per recording.
        n_patches : int
            ``K`` of the padded batch.

        Returns
        -------
        torch.Tensor of bool, shape (B, C, K)
        """
        valid_patches = torch.div(n_times, self.patch_size, rounding_mode="floor")  # (B,)
        patch_ok = torch.arange(n_patches, device=n_times.device)[None, :] < valid_patches[:, None]
        return channel_mask[:, :, None] & patch_ok[:, None, :]

    def encode(
        self,
        embeddings: torch.Tensor,
        positions: torch.Tensor,
        token_mask: torch.Tensor,
        n_patches_per_sample: torch.Tensor | None = None,
        *,
        remove_position: bool = False,
        padded: bool | None = None,
    ) -> EncoderOutput:
        """Add position embeddings and run the Transformer.

        Used by :meth:`forward`; called directly by pre-training, which swaps some patch
        embeddings for a mask embedding first.

        Parameters
        ----------
        embeddings : torch.Tensor, shape (B, C, K, D)
            Patch embeddings.
        positions : torch.Tensor, shape (B, C, 2)
            Proportion coordinates of each channel.
        token_mask : torch.Tensor of bool, shape (B, C, K)
            True for real tokens.
        n_patches_per_sample : torch.Tensor, shape (B,), optional
            Valid patches per recording (used by the ``sincos1d`` baseline).
        remove_position : bool
            Subtract the position embedding from the residual stream before the final
            LayerNorm, so the output carries position only through what attention made of
            it (the tokenizer uses this: its codes should say what a patch contains, not
            where it is).
        padded : bool, optional
            Whether ``token_mask`` may have a False. False: every token is attended to and no
            mask reaches attention (SDPA's fastest kernels); True or None (default): the key
            padding mask is passed (correct whatever ``token_mask`` holds). The choice is never
            read from the tensor (that would be a device-to-host sync and a data-dependent
            branch, which ``torch.compile`` and ``torch.export`` cannot take): callers that
            know there is no padding without looking (no ``channel_mask``/``n_times`` given,
            see :meth:`padding_given`) pass False. Outputs are the same either way.

        Returns
        -------
        EncoderOutput
        """
        batch, n_chans, n_patches, dim = embeddings.shape
        # Padded channels may carry NaN positions; zero them so they cannot leak NaN.
        positions = torch.where(token_mask.any(-1, keepdim=True), positions, torch.zeros_like(positions))
        position = self.pos_embed(positions, n_patches, n_patches_per_sample).to(embeddings.dtype)  # (B, C, K, D)
        # padding may hold anything (even NaN): zero it, or NaN values would leak through attention
        tokens = torch.where(token_mask[..., None], embeddings, torch.zeros((), dtype=embeddings.dtype)) + position
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens.flatten(1, 2)), dim=1)
        flat_mask = token_mask.flatten(1)  # (B, C*K)
        keep = torch.cat((torch.ones_like(flat_mask[:, :1]), flat_mask), dim=1)  # (B, 1 + C*K)
        attn_mask = None if padded is False else keep[:, None, None, :]  # (B, 1, 1, 1 + C*K)
        for block in self.blocks:
            tokens = block(tokens, attn_mask)
        if remove_position:
            tokens = torch.cat((tokens[:, :1], tokens[:, 1:] - position.flatten(1, 2)), dim=1)
        tokens = self.norm(tokens)
        return EncoderOutput(
            tokens=tokens[:, 1:], cls=tokens[:, 0], token_mask=flat_mask,
            n_channels=n_chans, n_patches=n_patches,
        )

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        sfreq: float | None = None,
        check_finite: bool = True,
    ) -> EncoderOutput:
        """Encode EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)
            EEG in microvolts at ``self.sfreq``, zero-padded where channels or samples are
            missing.
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
            Proportion coordinates of each channel (:func:`eegfm.proportion_coordinates`).
        channel_mask : torch.Tensor of bool, shape (B, C), optional
            True for real channels (default: all).
        n_times : torch.Tensor of int, shape (B,), optional
            Valid samples of each recording (default: all ``T``).
        sfreq : float, optional
            Sampling rate of ``x``; when given it must equal the model's ``sfreq``.
        check_finite : bool
            Raise, naming the sample and channel, if a real channel holds a NaN/Inf sample or
            position (one would turn every token of its recording into NaN). Costs one
            device-to-host sync; pass False in a hot loop over data already checked (the
            training pipelines' cached data is). Skipped inside ``torch.compile``/export.

        Returns
        -------
        EncoderOutput
            ``tokens`` (B, C*K, D), ``cls`` (B, D), ``token_mask`` (B, C*K).
        """
        padded = self.padding_given(x, channel_mask, n_times)
        positions, channel_mask, n_times = self._check_inputs(x, positions, channel_mask, n_times, sfreq)
        if check_finite and not torch.compiler.is_compiling():
            check_finite_inputs(x, positions, channel_mask, n_times, self.patch_size)
        patches = self.patchify(x)  # (B, C, K, W)
        mask = self.token_mask(channel_mask, n_times, patches.shape[2])  # (B, C, K)
        embeddings = self.embed_patches(patches, mask)  # (B, C, K, D)
        valid_patches = torch.div(n_times, self.patch_size, rounding_mode="floor")
        return self.encode(embeddings, positions.to(embeddings.dtype), mask, valid_patches, padded=padded)
