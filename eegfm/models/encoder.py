"""``MAPEEncoder``: a Transformer over EEG patches from any montage (EEGMirror 3.1).

The data path, top to bottom::

    x (B, C, T) µV, positions (B, C, 2) proportion coordinates
      -> patches (B, C, K, W)                     K = T // W, leftover samples dropped
      -> patch embeddings (B, C, K, D)            NeuralPatchEmbedder, one patch at a time
      -> + MAPE (B, C, K, D)                      SE(channel position) + TE(patch index)
      -> tokens (B, 1 + C*K, D) with a CLS token  channel-major: token 1 + c*K + k
      -> pre-norm Transformer (SDPA, key padding mask) -> final LayerNorm

The first two steps (with the input checks and the token mask) are the input stage,
:mod:`eegfm.modules.input_stage` (:meth:`MAPEEncoder.prepare_inputs`), which every model built
on the encoder runs; the settings are one :class:`~eegfm.EncoderConfig`.

One batch may mix montages, channel counts and lengths: pad channels and time to the
largest, pass ``channel_mask`` (B, C) and ``n_times`` (B,), and no padded token is ever
attended to (see :func:`eegfm.data.collate.pad_recordings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..data.preprocessing import PreprocessConfig
from ..hub import HubMixin, hub_card
from ..modules import input_stage
from ..modules.attention_bias import ATTENTION_BIASES, distance_bias
from ..modules.input_stage import EncoderInputs, check_finite_inputs
from ..modules.packing import TokenPacking
from ..modules.patch_embed import NeuralPatchEmbedder
from ..modules.position import build_position_embedding
from ..modules.transformer import TransformerBlock, take_rows
from .config import ENCODER_FIELDS, EncoderConfig

__all__ = ["EncoderOutput", "MAPEEncoder", "check_finite_inputs"]


@dataclass
class EncoderOutput:
    """What :class:`MAPEEncoder` returns.

    Attributes
    ----------
    tokens : torch.Tensor, shape (B, C*K, D)
        One vector per (channel, patch), channel-major (index ``c * K + k``); zeros at padding.
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


class MAPEEncoder(nn.Module, HubMixin, **hub_card()):
    """EEG Transformer encoder with montage-agnostic position embeddings.

    Parameters
    ----------
    config : EncoderConfig | dict, optional
        Every setting (:class:`~eegfm.EncoderConfig`: patch size, width, depth, heads, MLP
        ratio, biases, dropouts, position embedding, patch embedder, LayerNorm epsilon, rate and
        preprocessing contract); default: its defaults.
    **fields
        :class:`~eegfm.EncoderConfig` fields that replace those of ``config``
        (``MAPEEncoder(embed_dim=64)`` is ``MAPEEncoder(EncoderConfig(embed_dim=64))``).

    Attributes
    ----------
    config : EncoderConfig
        The settings, with the preprocessing contract resolved (what ``config.json`` holds).
    preprocessing : PreprocessConfig
        The contract input must follow. Pass ``sfreq=`` to :meth:`forward` to have the rate
        checked.

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

    def __init__(self, config: EncoderConfig | Mapping | None = None, **fields):
        super().__init__()
        config = EncoderConfig.build(config, **fields)
        if config.embed_dim % config.num_heads:
            raise ValueError(f"embed_dim={config.embed_dim} must be divisible by num_heads={config.num_heads}")
        if config.attention_bias not in ATTENTION_BIASES:
            raise ValueError(f"attention_bias={config.attention_bias!r} is not one of {list(ATTENTION_BIASES)}; use "
                             "'none' (MAPE alone, the default) or 'distance' (scalp-distance and patch-lag penalties)")
        self.preprocessing = config.contract()
        self.config = dataclasses.replace(config, preprocessing=self.preprocessing.to_dict())  # saved resolved
        self.patch_size = patch_size = config.patch_size
        self.embed_dim = embed_dim = config.embed_dim
        self.sfreq = config.sfreq
        self.patch_embed = NeuralPatchEmbedder(patch_size, embed_dim, config.conv_channels, config.pool_bins,
                                               mean_feature=config.patch_mean)
        self.pos_embed = build_position_embedding(config.position_embedding, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(transformer_blocks(config, config.depth))
        self.norm = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.reset_parameters()

    @classmethod
    def config_keys(cls) -> list[str]:
        """``config.json`` of an encoder holds the :class:`~eegfm.EncoderConfig` fields, flat."""
        return list(ENCODER_FIELDS)

    def get_config(self) -> dict:
        """The settings as a JSON-safe dict (``self.config.to_dict()``, contract resolved)."""
        return self.config.to_dict()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
        init_transformer_weights(self.modules())
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def check_preprocessing(self, config: PreprocessConfig) -> None:
        """Raise if data preprocessed with ``config`` does not match this model's contract."""
        expected, got = self.preprocessing.to_dict(), config.to_dict()
        diff = {k: (got[k], expected[k]) for k in expected if got.get(k) != expected[k]}
        if diff:
            listed = ", ".join(f"{k}={g!r} (model expects {e!r})" for k, (g, e) in diff.items())
            raise ValueError(f"data preprocessed differently from this model's contract: {listed}. "
                             "Preprocess with model.preprocessing (e.g. EEGCorpus(..., config=model.preprocessing)).")

    # ------------------------------------------------------------------ inputs (eegfm.modules.input_stage)
    def prepare_inputs(self, x: torch.Tensor, positions: torch.Tensor, *, channel_mask: torch.Tensor | None = None,
                       n_times: torch.Tensor | int | None = None, sfreq: float | None = None,
                       check_finite: bool = False, embed: bool = True) -> EncoderInputs:
        """The input stage with this encoder's patch size, rate and patch embedder.

        :func:`eegfm.modules.input_stage.prepare_inputs`: x (B, C, T), positions (B, C, 2) or
        (C, 2), channel_mask (B, C), n_times (B,) -> checked inputs, patches (B, C, K, W),
        token mask (B, C, K), patch embeddings (B, C, K, D; None with ``embed=False``) and valid
        patches (B,). Every model built on the encoder starts with it.
        """
        return input_stage.prepare_inputs(x, positions, channel_mask=channel_mask, n_times=n_times,
                                          patch_size=self.patch_size, embedder=self.patch_embed, sfreq=sfreq,
                                          model_sfreq=self.sfreq, check_finite=check_finite, embed=embed)

    def padding_given(self, x: torch.Tensor, channel_mask, n_times) -> bool:
        """:func:`eegfm.modules.input_stage.padding_given` with this encoder's patch size."""
        return input_stage.padding_given(x, channel_mask, n_times, self.patch_size)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> patches (B, C, K, W) (:func:`eegfm.modules.input_stage.patchify`)."""
        return input_stage.patchify(x, self.patch_size)

    def embed_patches(self, patches: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Patch embeddings with padding zeroed first, (B, C, K, W) -> (B, C, K, D)
        (:func:`eegfm.modules.input_stage.embed_patches`)."""
        return input_stage.embed_patches(self.patch_embed, patches, token_mask)

    def token_mask(self, channel_mask: torch.Tensor, n_times: torch.Tensor, n_patches: int) -> torch.Tensor:
        """Which (channel, patch) tokens are real: channel_mask (B, C), n_times (B,) -> (B, C, K) bool."""
        valid_patches = torch.div(n_times, self.patch_size, rounding_mode="floor")  # (B,)
        return input_stage.token_mask(channel_mask, valid_patches, n_patches)

    # ------------------------------------------------------------------ Transformer
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
        n_chans, n_patches = token_mask.shape[1:]
        tokens, position, keep, attn_mask = self.block_inputs(embeddings, positions, token_mask,
                                                              n_patches_per_sample, padded)
        flat_mask = token_mask.flatten(1)  # (B, C*K)
        tokens = self.run_blocks(tokens, keep, attn_mask, padded=padded)
        if remove_position:
            tokens = torch.cat((tokens[:, :1], tokens[:, 1:] - position.flatten(1, 2)), dim=1)
        tokens = self.norm(tokens)
        # padded tokens come out as zeros, packed or not (eegfm.modules.packing), compiled or eager
        patch_tokens = torch.where(flat_mask[..., None], tokens[:, 1:], 0.0)
        return EncoderOutput(
            tokens=patch_tokens, cls=tokens[:, 0], token_mask=flat_mask,
            n_channels=n_chans, n_patches=n_patches,
        )

    def encode_cls(self, embeddings: torch.Tensor, positions: torch.Tensor, token_mask: torch.Tensor,
                   n_patches_per_sample: torch.Tensor | None = None, *, padded: bool | None = None) -> torch.Tensor:
        """``encode(...).cls`` for less: the last block computes the CLS token's output only.

        The CLS output depends on the other tokens' last-block outputs not at all (it reads
        their keys and values, which come before), so in the last block only the CLS token
        attends and goes through the output projection and the MLP
        (:class:`~eegfm.modules.transformer.TransformerBlock`'s ``index``). Equal to
        :meth:`encode`'s ``cls`` to float rounding, gradients included; at base size (12
        blocks, 257 tokens) a CPU training step is about 5 % faster
        (``benchmarks/results/last_block_rows/``). Classification with ``pooling="cls"`` uses it.

        Parameters
        ----------
        embeddings, positions, token_mask, n_patches_per_sample, padded
            As :meth:`encode`.

        Returns
        -------
        torch.Tensor, shape (B, D)
        """
        tokens, _, keep, attn_mask = self.block_inputs(embeddings, positions, token_mask, n_patches_per_sample,
                                                       padded)
        first = torch.zeros(tokens.shape[0], 1, dtype=torch.long, device=tokens.device)  # (B, 1): the CLS token
        return self.norm(self.run_blocks(tokens, keep, attn_mask, padded=padded, query_index=first)[:, 0])

    def block_inputs(self, embeddings: torch.Tensor, positions: torch.Tensor, token_mask: torch.Tensor,
                     n_patches_per_sample: torch.Tensor | None = None, padded: bool | None = None):
        """What the first block takes, from :meth:`encode`'s arguments.

        Returns
        -------
        tokens : torch.Tensor, shape (B, 1 + C*K, D)
            CLS first, then the patch embeddings with padding zeroed and the position added.
        position : torch.Tensor, shape (B, C, K, D)
            The position embedding.
        keep, attn_mask
            :meth:`attention_inputs`' outputs.
        """
        batch, n_chans, n_patches, dim = embeddings.shape
        positions = self.zero_padded_positions(positions, token_mask)
        position = self.pos_embed(positions, n_patches, n_patches_per_sample).to(embeddings.dtype)  # (B, C, K, D)
        # padding may hold anything (even NaN): zero it, or NaN values would leak through attention
        tokens = torch.where(token_mask[..., None], embeddings, 0.0) + position
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens.flatten(1, 2)), dim=1)
        keep, attn_mask = self.attention_inputs(positions, token_mask, padded, tokens.dtype)
        return tokens, position, keep, attn_mask

    @staticmethod
    def zero_padded_positions(positions: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Positions (B, C, 2) with channels that hold no real token set to 0 (they may carry NaN)."""
        return torch.where(token_mask.any(-1, keepdim=True), positions, torch.zeros_like(positions))

    def attention_inputs(self, positions: torch.Tensor, token_mask: torch.Tensor, padded: bool | None,
                         dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Which of the CLS + channel-major tokens are real, and the mask or bias attention takes.

        Parameters
        ----------
        positions : torch.Tensor, shape (B, C, 2)
            Finite proportion coordinates (:meth:`zero_padded_positions`).
        token_mask : torch.Tensor of bool, shape (B, C, K)
        padded : bool, optional
            As in :meth:`encode`.
        dtype : torch.dtype
            Of the tokens (an additive bias is cast to it).

        Returns
        -------
        keep : torch.Tensor of bool, shape (B, 1 + C*K)
            True for the CLS token and the real tokens.
        attn_mask : torch.Tensor or None
            (B, H, 1 + C*K, 1 + C*K) additive bias with ``attention_bias="distance"``, else a
            (B, 1, 1, 1 + C*K) key padding mask, or None when ``padded`` is False.
        """
        flat_mask = token_mask.flatten(1)  # (B, C*K)
        keep = torch.cat((torch.ones_like(flat_mask[:, :1]), flat_mask), dim=1)  # (B, 1 + C*K), CLS kept
        if self.config.attention_bias == "distance":  # additive, -inf at padded keys
            return keep, distance_bias(positions.float(), token_mask, self.config.num_heads, padded).to(dtype)
        return keep, (None if padded is False else keep[:, None, None, :])

    def run_blocks(self, tokens: torch.Tensor, keep: torch.Tensor, attn_mask: torch.Tensor | None, *,
                   padded: bool | None = None, blocks: nn.ModuleList | None = None,
                   query_index: torch.Tensor | None = None) -> torch.Tensor:
        """The Transformer blocks (``blocks``, default the encoder's) over tokens, before the final norm.

        Parameters
        ----------
        tokens : torch.Tensor, shape (B, N, D)
        keep : torch.Tensor of bool, shape (B, N)
            True for real tokens; on the CPU the per-token work skips the others
            (:mod:`eegfm.modules.packing`) unless ``padded`` is False.
        attn_mask : torch.Tensor or None
            What :meth:`attention_inputs` returns for these tokens.
        query_index : torch.Tensor of int64, shape (B, M), optional
            Return only these tokens' outputs (B, M, D): the last block computes nothing else
            (``TransformerBlock(..., index=)``; exact). Real tokens,
            or slots whose output is discarded.

        Returns
        -------
        torch.Tensor, shape (B, N, D), or (B, M, D) with ``query_index``
            Padded rows are not meaningful (zeros when packed).
        """
        blocks = list(self.blocks if blocks is None else blocks)
        if query_index is not None and not blocks:
            return take_rows(tokens, query_index)
        packing = None if padded is False else TokenPacking.of(keep)
        if packing is not None:
            tokens = packing.pack(tokens)  # (T, D)
        for block in blocks if query_index is None else blocks[:-1]:
            tokens = block(tokens, attn_mask, packing)
        if query_index is not None:
            return blocks[-1](tokens, attn_mask, packing, query_index)  # (B, M, D)
        return tokens if packing is None else packing.unpack(tokens)  # (B, N, D)

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
            position (one would turn every token of its recording into NaN), and naming the
            recording or channel if positions are in another unit (all within 10 of (0, 0):
            metres, a unit sphere; more than 100 from Cz: millimetres) or ``x`` is in volts
            (:func:`eegfm.modules.input_stage.check_finite_inputs`). Costs one
            device-to-host sync; pass False in a hot loop over data already checked (the
            training pipelines' cached data is). Skipped inside ``torch.compile``/export.

        Returns
        -------
        EncoderOutput
            ``tokens`` (B, C*K, D) (zeros at padding), ``cls`` (B, D), ``token_mask`` (B, C*K).
        """
        return self._encode_input(self.encode, x, positions, channel_mask, n_times, sfreq, check_finite)

    def forward_cls(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        sfreq: float | None = None,
        check_finite: bool = True,
    ) -> torch.Tensor:
        """The CLS token alone, shape (B, D): ``forward(...).cls`` for less work (:meth:`encode_cls`).

        Inputs and checks as :meth:`forward`. Use it when only the CLS token is read
        (classification with ``pooling="cls"``, as braindecode's Labram classifies): the last
        block then computes the CLS token's output only, about 5 % off a training step at base
        size. Equal to ``forward(...).cls`` to float rounding, gradients included.

        Examples
        --------
        >>> import torch
        >>> from eegfm import MAPEEncoder, proportion_coordinates
        >>> model = MAPEEncoder(embed_dim=32, depth=2, num_heads=2, patch_size=50).eval()
        >>> pos = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
        >>> x = torch.randn(2, 3, 400)
        >>> torch.allclose(model.forward_cls(x, pos), model(x, pos).cls, atol=1e-5)
        True
        """
        return self._encode_input(self.encode_cls, x, positions, channel_mask, n_times, sfreq, check_finite)

    def _encode_input(self, encode, x, positions, channel_mask, n_times, sfreq, check_finite):
        """``encode`` (:meth:`encode` or :meth:`encode_cls`) of the checked, embedded input (:meth:`prepare_inputs`)."""
        inputs = self.prepare_inputs(x, positions, channel_mask=channel_mask, n_times=n_times, sfreq=sfreq,
                                     check_finite=check_finite)
        embeddings = inputs.embeddings  # (B, C, K, D)
        return encode(embeddings, inputs.positions.to(embeddings.dtype), inputs.token_mask, inputs.valid_patches,
                      padded=inputs.padded)


def init_transformer_weights(modules) -> None:
    """The encoder's initialisation, in place, for each of ``modules`` (an iterable of nn.Module):
    truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms; other modules untouched."""
    for module in modules:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def transformer_blocks(config: EncoderConfig, depth: int) -> list[TransformerBlock]:
    """``depth`` pre-norm blocks with ``config``'s width, heads, MLP ratio, biases, dropouts and epsilon."""
    return [TransformerBlock(config.embed_dim, config.num_heads, config.mlp_ratio, config.qkv_bias, config.dropout,
                             config.attn_dropout, config.layer_norm_eps) for _ in range(depth)]
