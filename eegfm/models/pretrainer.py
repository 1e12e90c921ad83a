"""``MaskedPretrainer``: masked EEG modelling (paper 3.1.4) on tokenizer codes, Fourier amplitudes or raw samples.

Per step, for each masking strategy (random, channel, temporal; see
:mod:`eegfm.modules.masking`, True = masked), one encoder pass each (or, with
``single_pass=True``, ONE pass in which each sample gets one of the strategies, in turn):

    embeddings         = patch embeddings, with masked tokens replaced by a learned mask
                         embedding BEFORE the position embedding (MAPE) is added
    predictions (M, H) = linear head on the encoder's M masked, non-padded tokens

and the target (``target=``) says what the masked tokens predict:

``"codes"`` (default)
    ``targets (B, C*K)`` = frozen tokenizer codes of the UNMASKED input; ``H = num_codes``;
    per-token loss = cross-entropy. The codes come from the frozen tokenizer, always run in
    float32 outside any autocast (in bf16 about 7 % of the codes change), or precomputed:
    pass ``targets=`` (the training step takes ``batch.targets`` when the loader attaches
    cached codes, see :func:`eegfm.data.cache_codes` and :class:`eegfm.data.CodedWindows`).
    Accuracy on masked tokens is reported beside the accuracy of always predicting the most
    frequent code seen so far in training.
``"spectrum"``
    ``target (B, C*K, F)`` = each patch's per-sample z-scored ``|rfft|``
    (:func:`eegfm.models.tokenizer.amplitude_target`, the tokenizer's own target, float32),
    ``F = H = patch_size // 2 + 1``; per-token loss = mean squared error over the F bins. No
    tokenizer or codebook is needed. The "accuracy" is the masked-token R^2,
    ``1 - sum(squared error) / sum(target^2)`` (the target has mean 0 per sample, so
    predicting 0 is the baseline: ``baseline_accuracy`` is 0).
``"signal"``
    ``target (B, C*K, W)`` = each patch's raw samples z-scored on their own (MAE's normalised
    pixel loss: :func:`signal_target`, float32), ``W = H = patch_size``; per-token loss =
    mean squared error over the W samples. Scored as ``"spectrum"``: masked-token R^2, every
    target has mean 0, ``baseline_accuracy`` is 0.
``"spectrum_slow"``
    ``target (B, C*K, F + S)`` = the ``"spectrum"`` target beside the patch's slow, signed
    signal: the means of its ``S = SLOW_BINS`` equal sub-windows as ``asinh(µV)``, z-scored per
    sample (:func:`slow_target`). The amplitude spectrum has no sign and a per-patch z-score
    has no mean, so neither target asks for the slow potentials that carry, e.g., motor
    imagery's left/right information across subjects (recipe row 30). Per-token loss = half the
    mean squared error over the F bins plus half that over the S means; scored as
    ``"spectrum"`` (R^2 with the same weights).

With ``decoder_depth > 0`` the encoder sees only the visible tokens (masked autoencoder
style, He et al. 2022): each sample's unmasked real tokens are gathered into a fixed number
of slots known from the shapes and ratios, embedded and encoded without the masked ones; a
small decoder of ``decoder_depth`` Transformer blocks then fills the grid (encoder outputs
where visible, the mask embedding where masked, position embedding added) and the head reads
its masked tokens. The encoder does about half the work per step (the share of tokens
visible), the decoder adds ``decoder_depth`` blocks over every token. With
``decoder_depth=0`` (default) the encoder sees every token, masked ones as the mask embedding
(the paper's masked modelling). In between, ``visible_blocks=k``: the first ``k`` encoder
blocks see the visible tokens only and the masked ones (mask embedding + position) join before
block ``k``; the whole encoder is kept, no decoder.

The loss over strategies is their sum (each strategy's mean per-token loss, summed; computed
as the number of strategies times the mean over all their masked tokens, which is the same
when each strategy masks the same share of tokens). With ``single_pass`` the loss is the mean
per-token loss over the step's masked tokens.

No step reads a tensor on the host: the masked tokens are not picked by boolean indexing (a
device-to-host sync and a shape that depends on the data) but gathered into a number of
slots per sample known from the shapes and ratios alone, each weighing 1 if masked and 0 if
not (the same sums). So ``torch.compile(..., fullgraph=True)`` takes the whole loss, and
``TrainConfig(compile=True)`` compiles the training step.

The pre-trained encoder is ``pretrainer.encoder``: save it with
``pretrainer.encoder.save_pretrained(...)`` and fine-tune it anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import HubMixin, hub_card
from ..modules.input_stage import EncoderInputs
from ..modules.masking import MASK_STRATEGIES, draw_device, make_mask
from .config import EmbedsEncoderConfig, EncoderConfig
from .encoder import MAPEEncoder, init_transformer_weights, transformer_blocks
from .tokenizer import amplitude_target

__all__ = ["PRETRAIN_TARGETS", "MaskedPretrainer", "PretrainOutput", "signal_target", "slow_target"]

#: What the masked tokens predict (``MaskedPretrainer(target=...)``).
PRETRAIN_TARGETS = ("codes", "spectrum", "signal", "spectrum_slow")

#: Sub-windows of a patch whose means :func:`slow_target` returns (0.25 s each for a 1-s patch).
SLOW_BINS = 4

#: ``eps`` of :func:`signal_target` (MAE's; the samples are in µV, so a real patch's variance is far above it).
SIGNAL_EPS = 1e-6


def signal_target(patches: torch.Tensor, token_mask: torch.Tensor, eps: float = SIGNAL_EPS) -> torch.Tensor:
    """Each patch's raw samples z-scored on their own (MAE's normalised-pixel target).

    Parameters
    ----------
    patches : torch.Tensor, shape (B, C, K, W)
        EEG patches.
    token_mask : torch.Tensor of bool, shape (B, C, K)
        True for real patches.

    Returns
    -------
    torch.Tensor, float32, shape (B, C, K, W)
        ``(patch - mean) / sqrt(var + eps)`` with the mean and the population variance taken
        over the patch's own W samples; 0 at padded patches, whatever they hold.
    """
    patches = torch.where(token_mask[..., None], patches.float(), 0.0)  # garbage (even NaN) in padding dropped
    centred = patches - patches.mean(-1, keepdim=True)
    return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps)


def slow_target(patches: torch.Tensor, token_mask: torch.Tensor, n_bins: int = SLOW_BINS) -> torch.Tensor:
    """Each patch's slow, signed signal: its sub-window means, ``asinh``-compressed, z-scored per sample.

    Parameters
    ----------
    patches : torch.Tensor, shape (B, C, K, W)
        EEG patches in µV.
    token_mask : torch.Tensor of bool, shape (B, C, K)
        True for real patches; the others are left out of the statistics.
    n_bins : int
        ``S``: equal sub-windows (adaptive average pooling when ``W`` is not a multiple of ``S``).

    Returns
    -------
    torch.Tensor, float32, shape (B, C, K, S)
        ``(asinh(mean) - m_b) / max(s_b, 1e-6)``, ``m_b`` and ``s_b`` (population standard
        deviation) taken over sample ``b``'s valid patches and all sub-windows; 0 at padded
        patches, whatever they hold. Unlike the amplitude spectrum it keeps the sign, and unlike
        a per-patch z-score it keeps how a patch's level differs from the other channels'.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    valid = token_mask[..., None]  # (B, C, K, 1)
    patches = torch.where(valid, patches.float(), 0.0)  # garbage (even NaN) in padding dropped
    means = F.adaptive_avg_pool1d(patches.flatten(0, 2)[:, None], n_bins).view(*patches.shape[:3], n_bins)
    level = torch.where(valid, torch.asinh(means), 0.0)  # (B, C, K, S)
    count = (token_mask.sum(dim=(1, 2)) * n_bins).clamp_min(1).to(level.dtype)  # (B,)

    def centre(values):  # minus the sample's mean over its valid patches
        return torch.where(valid, values - (values.sum(dim=(1, 2, 3)) / count)[:, None, None, None], 0.0)

    # centred twice: the first mean's rounding error (~1e-7 of the level) is removed, so a sample with
    # no slow variation gives ~0, not rounding noise / 1e-6
    centred = centre(centre(level))
    std = (centred.pow(2).sum(dim=(1, 2, 3)) / count).sqrt().clamp_min(1e-6)  # (B,)
    return centred / std[:, None, None, None]


def spectrum_slow_target(patches: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """:func:`~eegfm.models.tokenizer.amplitude_target` and :func:`slow_target` side by side: (B, C, K, F + S)."""
    return torch.cat([amplitude_target(patches, token_mask), slow_target(patches, token_mask)], dim=-1)


@dataclass
class PretrainOutput:
    """What :meth:`MaskedPretrainer.forward` returns.

    Attributes
    ----------
    loss : torch.Tensor
        Sum over strategies of the masked-token loss (scalar): cross-entropy (``"codes"``) or
        mean squared error over the rfft bins (``"spectrum"``) or the samples (``"signal"``).
    loss_sum, count : torch.Tensor
        ``loss = loss_sum / count`` (for exact averaging across processes).
    accuracy : dict of str -> float tensor
        Masked-token accuracy (``"codes"``) or masked-token R^2 (``"spectrum"``, ``"signal"``)
        per strategy.
    baseline_accuracy : torch.Tensor
        Accuracy of always predicting the most frequent code (over all masked tokens); 0 for
        ``"spectrum"`` and ``"signal"`` (the R^2 of predicting 0, the target's mean).
    n_masked : dict of str -> int tensor
        Masked tokens per strategy.
    accuracy_weight : dict of str -> float tensor
        Denominator of each ``accuracy``: the masked tokens (``"codes"``) or the sum of the
        squared targets over them (``"spectrum"``, ``"signal"``); :meth:`MaskedPretrainer.evaluate` weighs
        batches by it, so that its figures are those of all batches pooled.
    """

    loss: torch.Tensor
    loss_sum: torch.Tensor
    count: torch.Tensor
    accuracy: dict = field(default_factory=dict)
    baseline_accuracy: torch.Tensor | None = None
    n_masked: dict = field(default_factory=dict)
    accuracy_weight: dict = field(default_factory=dict)


def _most_masked(strategy: str, ratio: float, n_chans: int, n_patches: int) -> int | None:
    """At least the tokens one sample can have masked by ``strategy`` (Python ints: no tensor read).

    :func:`eegfm.modules.masking.make_mask` masks ``k(n)`` of a sample's ``n`` candidates, with
    ``k(n) = clamp(round(ratio * n), 1, n - 1)`` (1 for n = 1) non-decreasing in ``n``, so the
    padded grid's ``n`` bounds every sample; rounding is taken a hair upwards so that a float32
    tie can never exceed the bound. None when the shapes are symbolic (then every token counts).
    """
    if not (isinstance(n_chans, int) and isinstance(n_patches, int)):
        return None

    def most(n: int) -> int:
        return n if n < 2 else min(max(math.floor(n * ratio * (1 + 1e-6) + 0.5), 1), n - 1)

    if strategy == "random":
        return most(n_chans * n_patches)
    if strategy == "channel":
        return most(n_chans) * n_patches
    return most(n_patches) * n_chans  # temporal


def _mask_counts(n: int, ratio: float) -> tuple[int, int]:
    """The fewest and the most of ``n`` candidates :func:`~eegfm.modules.masking.make_mask` masks.

    ``k(n) = clamp(round(ratio * n), 1, n - 1)`` (``min(n, 1)`` for n < 2); the two differ only
    when ``ratio * n`` is within float rounding of a tie (x.5), where either may come out.
    """
    if n < 2:
        return n, n

    def clamp(k: int) -> int:
        return min(max(k, 1), n - 1)

    return clamp(math.floor(n * ratio * (1 - 1e-6) + 0.5)), clamp(math.floor(n * ratio * (1 + 1e-6) + 0.5))


def _visible_slots(strategy: str, ratio: float, n_chans, n_patches,
                   complement: bool = False) -> tuple[int | None, bool]:
    """Slots that hold every sample's visible (unmasked, real) tokens, from the shapes alone.

    Returns
    -------
    slots : int or None
        At least the visible tokens of any sample (a sample's ``n - k(n)`` grows with its ``n``,
        so the padded grid bounds them all; for a ``complement`` mask the visible tokens are
        the original's masked ones). None when the shapes are symbolic (then every token).
    exact : bool
        Whether a sample without padding has exactly ``slots`` visible tokens (no rounding tie).
    """
    if not (isinstance(n_chans, int) and isinstance(n_patches, int)):
        return None, False
    n, unit = {"random": (n_chans * n_patches, 1), "channel": (n_chans, n_patches),
               "temporal": (n_patches, n_chans)}[strategy]
    fewest, most = _mask_counts(n, ratio)
    slots = most * unit if complement else (n - fewest) * unit
    return max(slots, 1), fewest == most


class MaskedPretrainer(EmbedsEncoderConfig, nn.Module, HubMixin, **hub_card()):
    """Masked pre-training of a :class:`~eegfm.MAPEEncoder` on tokenizer codes, Fourier amplitudes or samples.

    Parameters
    ----------
    encoder : EncoderConfig | dict, optional
        Settings of the encoder being pre-trained (:class:`~eegfm.EncoderConfig`); the
        tokenizer must use the same ``patch_size``.
    num_codes : int
        Codebook size of the tokenizer (the head's number of classes). Ignored with
        ``target="spectrum"`` or ``"signal"``.
    strategies : sequence of str
        Masking strategies run each step, any of ``"random"``, ``"channel"``, ``"temporal"``.
    random_ratio, channel_ratio, temporal_ratio : float
        Share of tokens / channels / time steps each strategy masks (paper: 0.5 best).
    symmetric : bool
        Also predict the complement of each mask (LaBraM's symmetric pass).
    single_pass : bool
        One encoder pass per step instead of one per strategy: sample ``i`` of a batch is
        masked with strategy ``(i + offset) % len(strategies)``, ``offset`` drawn per step.
        About ``len(strategies)`` times less compute per step; the loss is the mean over the
        masked tokens of that one pass.
    target : {"codes", "spectrum", "signal", "spectrum_slow"}
        What the masked tokens predict: the frozen tokenizer's codes (cross-entropy; needs
        :meth:`attach_tokenizer` or ``targets=``), their patch's per-sample z-scored Fourier
        amplitudes (:func:`~eegfm.models.tokenizer.amplitude_target`, mean squared error; a
        head of ``patch_size // 2 + 1`` outputs, no tokenizer), their patch's samples
        z-scored per patch (:func:`signal_target`, mean squared error; a head of
        ``patch_size`` outputs, no tokenizer), or the amplitudes and the patch's slow signed
        sub-window means (:func:`slow_target`; the two halves weigh the same; a head of
        ``patch_size // 2 + 1 + SLOW_BINS`` outputs, no tokenizer). Saved in ``config.json``; a folder saved
        before this option existed loads as ``"codes"``.
    decoder_depth : int
        0 (default): the encoder sees every token, masked ones as the mask embedding (the
        paper's masked modelling). ``>= 1``: the encoder sees only the visible tokens and a
        decoder of this many Transformer blocks (the encoder's width and heads, dropped after
        pre-training) predicts the masked ones (masked-autoencoder style: about half the
        encoder's work per step at mask ratio 0.5). A folder saved before this option existed
        loads with 0.
    visible_blocks : int
        0 (default): every encoder block sees every token. ``k >= 1``: the first ``k`` encoder
        blocks see only the visible tokens, and the masked tokens (mask embedding + position)
        join the residual stream before block ``k``; the remaining blocks see every token and
        the head reads the encoder's output. No weights are dropped after pre-training (unlike
        ``decoder_depth``), and ``k`` blocks do about half their work. Not with ``decoder_depth``.
    **encoder_fields
        :class:`~eegfm.EncoderConfig` fields that replace those of ``encoder``
        (``MaskedPretrainer(embed_dim=64)`` is ``MaskedPretrainer(encoder=EncoderConfig(embed_dim=64))``).
    """

    def __init__(
        self,
        encoder: EncoderConfig | Mapping | None = None,
        num_codes: int = 2048,
        strategies: Sequence[str] = ("random", "channel", "temporal"),
        random_ratio: float = 0.5,
        channel_ratio: float = 0.5,
        temporal_ratio: float = 0.5,
        symmetric: bool = False,
        single_pass: bool = False,
        target: str = "codes",
        decoder_depth: int = 0,
        visible_blocks: int = 0,
        **encoder_fields,
    ):
        super().__init__()
        config = EncoderConfig.build(encoder, **encoder_fields)
        if target not in PRETRAIN_TARGETS:
            raise ValueError(f"target must be one of {', '.join(map(repr, PRETRAIN_TARGETS))}, got {target!r}")
        strategies = list(strategies)
        unknown = [s for s in strategies if s not in MASK_STRATEGIES]
        if not strategies or unknown:
            raise ValueError(f"strategies must be a non-empty subset of {sorted(MASK_STRATEGIES)}, got {strategies}")
        self.strategies = strategies
        self.ratios = {"random": random_ratio, "channel": channel_ratio, "temporal": temporal_ratio}
        for name in strategies:
            if not 0.0 < self.ratios[name] < 1.0:
                raise ValueError(f"{name}_ratio must be in (0, 1), got {self.ratios[name]}")
        if not isinstance(decoder_depth, int) or isinstance(decoder_depth, bool) or decoder_depth < 0:
            raise ValueError(f"decoder_depth must be an int >= 0 (0: the encoder sees every token, the paper's "
                             f"masked modelling; >= 1: a decoder of that many blocks), got {decoder_depth!r}")
        self.symmetric = symmetric
        self.single_pass = single_pass
        self.target = target
        if (not isinstance(visible_blocks, int) or isinstance(visible_blocks, bool)
                or not 0 <= visible_blocks <= config.depth):
            raise ValueError(f"visible_blocks must be an int from 0 to the encoder's depth {config.depth} (0: every "
                             f"block sees every token, the paper's masked modelling), got {visible_blocks!r}")
        if visible_blocks and decoder_depth:
            raise ValueError(f"visible_blocks={visible_blocks} and decoder_depth={decoder_depth}: choose one (with a "
                             "decoder every encoder block already sees only the visible tokens)")
        self.decoder_depth = decoder_depth
        self.visible_blocks = visible_blocks
        self.encoder = MAPEEncoder(config)
        self.decoder_blocks = self.decoder_norm = None
        if decoder_depth:
            self.decoder_blocks = nn.ModuleList(transformer_blocks(config, decoder_depth))
            self.decoder_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
            init_transformer_weights((*self.decoder_blocks.modules(), self.decoder_norm))  # as the encoder's
        self.mask_embedding = nn.Parameter(torch.zeros(config.embed_dim))
        nn.init.trunc_normal_(self.mask_embedding, std=0.02)
        n_bins = config.patch_size // 2 + 1
        width = {"codes": num_codes, "spectrum": n_bins, "signal": config.patch_size,
                 "spectrum_slow": n_bins + SLOW_BINS}[target]
        self.head = nn.Linear(config.embed_dim, width)
        # weight of each output in the per-token squared error (None: a plain mean); a buffer, so it moves
        # with the module (no copy per step) and is not saved (derived from target)
        column_weight = None
        if target == "spectrum_slow":  # the F amplitudes weigh 1/2 in all, the S slow means 1/2
            column_weight = torch.cat([torch.full((n_bins,), 0.5 / n_bins), torch.full((SLOW_BINS,), 0.5 / SLOW_BINS)])
        self.register_buffer("column_weight", column_weight, persistent=False)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        if target == "codes":  # the most-frequent-code baseline; nothing to count for regression targets
            self.register_buffer("target_counts", torch.zeros(num_codes, dtype=torch.long))
        self._tokenizer = None  # frozen, not a submodule: not trained, not in state_dict

    def no_weight_decay(self) -> set[str]:
        """Parameters AdamW should not decay."""
        return {"mask_embedding", "encoder.cls_token"}

    def attach_tokenizer(self, tokenizer: nn.Module) -> MaskedPretrainer:
        """Use ``tokenizer`` (frozen) to make the target codes (``target="codes"`` only). Returns self."""
        if self.target != "codes":
            raise ValueError(f"target={self.target!r} needs no tokenizer: attach_tokenizer() is for target='codes'")
        if not hasattr(tokenizer, "tokenize"):
            raise TypeError(f"tokenizer must have a tokenize() method, got {type(tokenizer).__name__}")
        tok_patch = getattr(getattr(tokenizer, "encoder", tokenizer), "patch_size", self.encoder.patch_size)
        if tok_patch != self.encoder.patch_size:
            raise ValueError(f"tokenizer patch_size={tok_patch} differs from the encoder's {self.encoder.patch_size}")
        tokenizer.eval().requires_grad_(False)
        object.__setattr__(self, "_tokenizer", tokenizer)  # not a submodule: frozen, not saved
        return self

    def _targets(self, x, positions, channel_mask, n_times) -> torch.Tensor:
        if self._tokenizer is None:
            raise RuntimeError("no tokenizer: call pretrainer.attach_tokenizer(tokenizer) or pass targets=")
        if next(self._tokenizer.parameters()).device != x.device:
            self._tokenizer.to(x.device)
        with torch.autocast(x.device.type, enabled=False):  # frozen teacher: always float32
            codes, _ = self._tokenizer.tokenize(x.float(), positions.float(), channel_mask=channel_mask,
                                                n_times=n_times)
        return codes

    def _batch_targets(self, batch) -> torch.Tensor | None:
        """The loader's cached codes for ``target="codes"``; None (ignored) for ``"spectrum"``, ``"signal"``."""
        return getattr(batch, "targets", None) if self.target == "codes" else None

    def _masks(self, token_mask: torch.Tensor, generator: torch.Generator | None) -> list[tuple]:
        """The step's masks: ``(name, mask (B, C, K), strategy of each sample (B,) or None, most, visible)``.

        ``most`` (a Python int, or None for no bound) is at least the number of tokens any
        sample of the batch can have masked, known from the shapes and ratios alone: the loss
        gathers that many tokens per sample instead of all of them (no host sync, and no head
        on tokens that cannot be masked). ``visible`` is ``(slots, exact)`` of
        :func:`_visible_slots`: where ``decoder_depth > 0`` puts each sample's visible tokens.
        """
        n_chans, n_patches = token_mask.shape[1:]
        most = {name: _most_masked(name, self.ratios[name], n_chans, n_patches) for name in self.strategies}

        def visible(names, complement=False):  # slots for all of `names` (one pass), and whether exact
            slots = [_visible_slots(name, self.ratios[name], n_chans, n_patches, complement) for name in names]
            if any(n is None for n, _ in slots):
                return None, False
            return max(n for n, _ in slots), all(exact for _, exact in slots) and len({n for n, _ in slots}) == 1

        masks = [(name, make_mask(name, token_mask, self.ratios[name], generator)) for name in self.strategies]
        if self.single_pass:
            batch = token_mask.shape[0]
            offset = torch.randint(len(masks), (1,), generator=generator,
                                   device=draw_device(token_mask.device, generator)).to(token_mask.device)
            strategy_of_sample = (torch.arange(batch, device=token_mask.device) + offset) % len(masks)  # (B,)
            stacked = torch.stack([mask for _, mask in masks])  # (S, B, C, K)
            mixed = stacked[strategy_of_sample, torch.arange(batch, device=token_mask.device)]  # (B, C, K)
            bound = None if None in most.values() else max(most.values())
            chosen = [("mixed", mixed, strategy_of_sample, bound, visible(self.strategies), self.strategies)]
        else:
            chosen = [(name, mask, None, most[name], visible([name]), [name]) for name, mask in masks]
        if self.symmetric:  # a complement may hold nearly every token: no bound
            chosen = [item for name, mask, which, bound, seen, names in chosen
                      for item in ((name, mask, which, bound, seen, names),
                                   (f"{name}_complement", token_mask & ~mask, which, None, visible(names, True),
                                    names))]
        return [item[:5] for item in chosen]

    def _token_loss_and_score(self, pred: torch.Tensor, target: torch.Tensor, chosen: torch.Tensor):
        """Per-token loss, score and weight, 0 wherever ``chosen`` is False.

        Parameters
        ----------
        pred : torch.Tensor, float32, shape (B, M, H)
            The head's output on M tokens of each sample.
        target : torch.Tensor, shape (B, M) int codes or (B, M, F) float32 amplitudes / (B, M, W) samples
            Anything where ``chosen`` is False (e.g. -1 at padding).
        chosen : torch.Tensor of bool, shape (B, M)
            The masked tokens: the only ones that count.

        Returns
        -------
        loss : torch.Tensor, shape (B, M)
            Cross-entropy, or mean squared error over the F bins (W samples); ``loss.sum()`` is
            the loss summed over the masked tokens.
        score, weight : torch.Tensor, shape (B, M), no grad
            Codes: hit (1/0) and 1. Spectrum, signal: ``sum(target^2) - sum((pred - target)^2)``
            and ``sum(target^2)`` over the bins (samples), so that the ratio of their sums is
            the R^2.
        """
        if self.target == "codes":
            target = torch.where(chosen, target, torch.zeros_like(target))  # a valid class everywhere
            loss = F.cross_entropy(pred.flatten(0, 1), target.flatten(), reduction="none").view_as(target)
            with torch.no_grad():
                score = ((pred.argmax(-1) == target) & chosen).float()  # (B, M)
                weight = chosen.float()
        elif self.column_weight is None:
            squared_error = (pred - target).pow(2)  # (B, M, F) or (B, M, W)
            loss = squared_error.mean(-1)
            with torch.no_grad():
                weight = torch.where(chosen, target.pow(2).sum(-1), 0.0)  # (B, M)
                score = torch.where(chosen, weight - squared_error.sum(-1), 0.0)
        else:  # spectrum_slow: a weighted mean over the F bins and the S slow means
            loss = ((pred - target).pow(2) * self.column_weight).sum(-1)  # (B, M)
            with torch.no_grad():
                weight = torch.where(chosen, (target.pow(2) * self.column_weight).sum(-1), 0.0)
                score = torch.where(chosen, weight - loss, 0.0)
        # where, not a product: a non-finite value at a token that does not count stays out
        return torch.where(chosen, loss, 0.0), score, weight

    def masked_output(self, inputs: EncoderInputs, mask: torch.Tensor,
                      visible: tuple[int | None, bool] = (None, False),
                      rows: torch.Tensor | None = None) -> torch.Tensor:
        """What the head reads at every token (or at ``rows``) when ``mask`` is hidden.

        Parameters
        ----------
        inputs : EncoderInputs
            ``self.encoder.prepare_inputs(...)`` of the batch (``embeddings`` may be None with
            ``decoder_depth``/``visible_blocks > 0``: only the visible patches are embedded then).
        mask : torch.Tensor of bool, shape (B, C, K)
            True = masked.
        visible : (int or None, bool)
            ``decoder_depth``/``visible_blocks > 0`` only: slots that hold any sample's visible
            tokens (None: every token) and whether every sample fills them all (then no key mask
            is needed); from the shapes alone (:func:`_visible_slots`), never read from a tensor.
        rows : torch.Tensor of int64, shape (B, M), optional
            Only these tokens' outputs (indices into ``C*K``): the last block computes nothing
            else (:meth:`MAPEEncoder.run_blocks`' ``query_index``; exact). The loss reads the
            masked tokens only, so its step passes them (about half of the last block's work).

        Returns
        -------
        torch.Tensor, shape (B, C*K, D), or (B, M, D) with ``rows``
            The encoder's output tokens, or the decoder's (``decoder_depth > 0``); zeros at padding.
        """
        enc, token_mask = self.encoder, inputs.token_mask
        if not (self.decoder_depth or self.visible_blocks):
            embeddings = inputs.embeddings if inputs.embeddings is not None else enc.embed_patches(inputs.patches,
                                                                                                   token_mask)
            hidden = torch.where(mask[..., None], self.mask_embedding.to(embeddings.dtype), embeddings)
            positions = inputs.positions.to(embeddings.dtype)
            if rows is None:
                return enc.encode(hidden, positions, token_mask, inputs.valid_patches, padded=inputs.padded).tokens
            tokens, _, keep, attn_mask = enc.block_inputs(hidden, positions, token_mask, inputs.valid_patches,
                                                          inputs.padded)
            out = enc.norm(enc.run_blocks(tokens, keep, attn_mask, padded=inputs.padded, query_index=rows + 1))
            return torch.where(token_mask.flatten(1).gather(1, rows)[..., None], out, 0.0)  # (B, M, D)
        n_blocks = len(enc.blocks) if self.decoder_depth else self.visible_blocks
        return self._visible_first(inputs, mask, visible, n_blocks, rows)

    def _visible_first(self, inputs: EncoderInputs, mask: torch.Tensor, visible: tuple[int | None, bool],
                       n_blocks: int, rows: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`masked_output` when the first ``n_blocks`` encoder blocks see the visible tokens only
        (all of them and a decoder with ``decoder_depth``; ``n_blocks=0`` is the every-token maths)."""
        enc, token_mask = self.encoder, inputs.token_mask
        batch, n_chans, n_patches = token_mask.shape
        flat_valid = token_mask.flatten(1)  # (B, N)
        seen = flat_valid & ~mask.flatten(1)  # (B, N): the visible tokens
        slots, exact = visible
        slots = seen.shape[1] if slots is None else min(slots, seen.shape[1])
        exact = exact and inputs.padded is False  # every slot of every sample holds a visible token
        # each sample's visible tokens first, in token order: a gather of `slots`, no data-dependent shape
        order = torch.argsort((~seen).to(torch.uint8), dim=1, stable=True)[:, :slots]  # (B, V)
        keep = seen.gather(1, order)  # (B, V): False where a sample has fewer visible tokens
        patches = inputs.patches.flatten(1, 2)  # (B, N, W)
        patches = patches.gather(1, order[..., None].expand(-1, -1, patches.shape[-1]))  # (B, V, W)
        embedded = enc.embed_patches(patches[:, :, None], keep[:, :, None])[:, :, 0]  # (B, V, D)
        dtype, dim = embedded.dtype, embedded.shape[-1]
        positions = enc.zero_padded_positions(inputs.positions.to(dtype), token_mask)
        position = enc.pos_embed(positions, n_patches, inputs.valid_patches).to(dtype).flatten(1, 2)  # (B, N, D)
        by_slot = order[..., None].expand(-1, -1, dim)  # (B, V, D)
        tokens = torch.where(keep[..., None], embedded, 0.0) + position.gather(1, by_slot)
        tokens = torch.cat((enc.cls_token.expand(batch, -1, -1).to(dtype), tokens), dim=1)  # (B, 1 + V, D)
        keep_cls = torch.cat((torch.ones_like(keep[:, :1]), keep), dim=1)  # (B, 1 + V)
        # the full grid's mask or bias (the later blocks take it whole), built once
        keep_all, attn_all = enc.attention_inputs(positions, token_mask, inputs.padded, dtype)
        if enc.config.attention_bias == "distance":  # that bias at the slots' tokens (kept slots are real tokens)
            bias = attn_all  # (B, H, 1 + N, 1 + N)
            index = torch.cat((torch.zeros_like(order[:, :1]), order + 1), dim=1)  # (B, 1 + V)
            heads = bias.shape[1]
            bias = bias.gather(2, index[:, None, :, None].expand(-1, heads, -1, bias.shape[3]))
            attn_mask = bias.gather(3, index[:, None, None, :].expand(-1, heads, index.shape[1], -1))
            if not exact:
                attn_mask = attn_mask.masked_fill(~keep_cls[:, None, None, :], float("-inf"))
        else:
            attn_mask = None if exact else keep_cls[:, None, None, :]
        stream = enc.run_blocks(tokens, keep_cls, attn_mask, padded=False if exact else None,
                                blocks=enc.blocks[:n_blocks])
        filler = self.mask_embedding.to(dtype)
        query_index = None if rows is None else rows + 1  # the CLS token is first
        if self.decoder_depth:  # a decoder: encoder outputs where visible, the mask embedding where masked, + position
            encoded = enc.norm(stream)
            content = torch.where(keep[..., None], encoded[:, 1:], filler)  # (B, V, D)
            grid = filler.expand(batch, flat_valid.shape[1], dim).scatter(1, by_slot, content)  # (B, N, D)
            grid = torch.where(flat_valid[..., None], grid, 0.0) + position
            grid = torch.cat((encoded[:, :1], grid), dim=1)  # (B, 1 + N, D), the encoder's CLS first
            out = self.decoder_norm(enc.run_blocks(grid, keep_all, attn_all, padded=inputs.padded,
                                                   blocks=self.decoder_blocks, query_index=query_index))
        else:  # the mask tokens join the residual stream before the encoder's remaining blocks
            base = filler + position  # (B, N, D): what a masked token is at the input
            content = torch.where(keep[..., None], stream[:, 1:], base.gather(1, by_slot))  # (B, V, D)
            grid = torch.where(flat_valid[..., None], base.scatter(1, by_slot, content), 0.0)
            grid = torch.cat((stream[:, :1], grid), dim=1)  # (B, 1 + N, D)
            out = enc.norm(enc.run_blocks(grid, keep_all, attn_all, padded=inputs.padded,
                                          blocks=enc.blocks[n_blocks:], query_index=query_index))
        if rows is not None:
            return torch.where(flat_valid.gather(1, rows)[..., None], out, 0.0)  # (B, M, D)
        return torch.where(flat_valid[..., None], out[:, 1:], 0.0)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PretrainOutput:
        """Masked-token prediction loss.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)
            EEG in µV.
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
        channel_mask : torch.Tensor of bool, shape (B, C), optional
        n_times : torch.Tensor of int, shape (B,), optional
        targets : torch.Tensor of int, shape (B, C*K), optional
            ``target="codes"`` only: code of each token (-1 or anything at padding); by default
            from the tokenizer. With ``target="spectrum"`` or ``"signal"`` the targets come from ``x`` itself
            and passing ``targets`` is a ValueError (:meth:`training_step` and
            :meth:`evaluate` leave a batch's cached codes out).
        generator : torch.Generator, optional
            Makes the masks reproducible.

        Returns
        -------
        PretrainOutput
        """
        enc = self.encoder
        inputs = enc.prepare_inputs(x, positions, channel_mask=channel_mask, n_times=n_times,
                                    embed=not (self.decoder_depth or self.visible_blocks))  # else: the visible only
        if self.target != "codes" and targets is not None:
            what = {"spectrum": "amplitudes", "signal": "samples",
                    "spectrum_slow": "amplitudes and slow means"}[self.target]
            raise ValueError(f"target={self.target!r} regresses {what} computed from x: targets= (tokenizer codes) "
                             "is for target='codes'")
        if self.target == "codes" and targets is None:
            with torch.no_grad():
                targets = self._targets(x, inputs.positions, inputs.channel_mask, inputs.n_times)
        patches, token_mask = inputs.patches, inputs.token_mask  # (B, C, K, ...)
        flat_valid = token_mask.flatten(1)  # (B, N)
        if self.target == "codes":
            flat_targets = targets.reshape(targets.shape[0], -1)  # (B, N)
            if self.training:  # counts of the real tokens' codes (padding may hold anything: index 0, weight 0)
                codes = torch.where(flat_valid, flat_targets, torch.zeros_like(flat_targets)).flatten()
                self.target_counts.index_add_(0, codes, flat_valid.flatten().to(self.target_counts.dtype))
            most_frequent = self.target_counts.argmax()
        else:
            regressed = {"spectrum": amplitude_target, "signal": signal_target,
                         "spectrum_slow": spectrum_slow_target}[self.target]
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):  # float32, as the tokenizer's
                flat_targets = regressed(patches, token_mask).flatten(1, 2)  # (B, N, F) or (B, N, W)

        masks = self._masks(token_mask, generator)
        n_tokens = flat_valid.shape[1]
        loss_sum = torch.zeros((), device=x.device)
        count = torch.zeros((), device=x.device)
        accuracy, n_masked, weights = {}, {}, {}
        hits_baseline = n_total = torch.zeros((), device=x.device)
        # No boolean indexing (a host sync and a data-dependent shape): each sample's masked
        # tokens are gathered into `most` slots (the masked ones first, in token order; the
        # others weigh 0), or every token counts with weight 0 where unmasked.
        for name, mask, strategy_of_sample, most, visible in masks:
            target = flat_targets
            chosen = mask.flatten(1)  # (B, N)
            which = None if strategy_of_sample is None else strategy_of_sample[:, None].expand_as(chosen)  # (B, N)
            if most is None or most >= n_tokens:
                tokens = self.masked_output(inputs, mask, visible)  # (B, N, D)
            else:  # the encoder's last block computes these slots only
                order = torch.argsort((~chosen).to(torch.uint8), dim=1, stable=True)[:, :most]  # (B, most)
                tokens = self.masked_output(inputs, mask, visible, rows=order)  # (B, most, D)
                target = (target.gather(1, order) if target.ndim == 2 else
                          target.gather(1, order[..., None].expand(-1, -1, target.shape[-1])))
                chosen = chosen.gather(1, order)
                which = None if which is None else which.gather(1, order)
            pred = self.head(tokens).float()  # (B, M, num_codes) logits, (B, M, F) amplitudes or (B, M, W) samples
            token_loss, score, weight = self._token_loss_and_score(pred, target, chosen)
            loss_sum = loss_sum + token_loss.sum()
            count = count + chosen.sum()
            with torch.no_grad():
                if which is None:
                    weights[name] = weight.sum()
                    accuracy[name] = score.sum() / weights[name]
                    n_masked[name] = chosen.sum()
                else:  # one pass, several strategies: split the scores by each sample's strategy
                    suffix = name.removeprefix("mixed")
                    for i, strategy in enumerate(self.strategies):
                        of_strategy = ((which == i) & chosen).float()
                        weights[strategy + suffix] = (weight * of_strategy).sum()
                        accuracy[strategy + suffix] = ((score * of_strategy).sum()
                                                       / weights[strategy + suffix].clamp_min(1e-12))
                        n_masked[strategy + suffix] = of_strategy.sum().long()
                if self.target == "codes":
                    hits_baseline = hits_baseline + ((target == most_frequent) & chosen).sum()
                    n_total = n_total + chosen.sum()
        if not self.single_pass:
            count = count / len(masks)  # loss = sum over strategies of (about) each one's mean
        baseline = hits_baseline / n_total.clamp_min(1) if self.target == "codes" else torch.zeros((), device=x.device)
        return PretrainOutput(
            loss=loss_sum / count.clamp_min(1), loss_sum=loss_sum, count=count, accuracy=accuracy,
            baseline_accuracy=baseline, n_masked=n_masked, accuracy_weight=weights,
        )

    @torch.no_grad()
    def evaluate(self, batches, *, seed: int = 0) -> dict:
        """Masked-token accuracy (codes) or R^2 (spectrum, signal) per strategy, beside the baseline.

        Parameters
        ----------
        batches : iterable of EEGBatch
        seed : int
            Seeds the masks, so two models can be compared on the same masks.

        Returns
        -------
        dict
            ``accuracy`` {strategy: float}: masked-token accuracy, or with ``target="spectrum"``
            or ``"signal"`` the masked-token R^2 (``1 - SSE / sum(target^2)``, pooled over the
            batches); ``baseline_accuracy``: always predicting the code most frequent in
            training (0 for ``"spectrum"``, ``"signal"``: predicting 0); ``masked_tokens``
            {strategy: int}.
        """
        was_training, single_pass = self.training, self.single_pass
        self.eval()
        self.single_pass = False  # every strategy on every sample: figures comparable across modes
        device = self.mask_embedding.device
        generator = torch.Generator(device).manual_seed(seed)  # masks drawn where the batches are
        hits, weights, totals, base_hits, base_total = {}, {}, {}, 0.0, 0
        for batch in batches:
            batch = batch.to(device)
            out = self(**batch.encoder_inputs(), targets=self._batch_targets(batch), generator=generator)
            for name, acc in out.accuracy.items():
                weight = float(out.accuracy_weight[name])
                hits[name] = hits.get(name, 0.0) + (float(acc) * weight if weight > 0 else 0.0)  # 0/0: left out
                weights[name] = weights.get(name, 0.0) + weight
                totals[name] = totals.get(name, 0) + int(out.n_masked[name])
            n_all = sum(int(v) for v in out.n_masked.values())
            base_hits += float(out.baseline_accuracy) * n_all
            base_total += n_all
        self.train(was_training)
        self.single_pass = single_pass
        return {
            "accuracy": {name: hits[name] / weights[name] if weights[name] > 0 else 0.0 for name in hits},
            "baseline_accuracy": base_hits / max(base_total, 1),
            "masked_tokens": totals,
        }

    def training_step(self, batch) -> dict:
        """One step's loss for :class:`eegfm.training.Trainer` (``loss_sum``, ``count``, metrics)."""
        out = self(**batch.encoder_inputs(), targets=self._batch_targets(batch))
        metrics = {f"accuracy_{name}": acc for name, acc in out.accuracy.items()}
        return {"loss_sum": out.loss_sum, "count": out.count, **metrics,
                "baseline_accuracy": out.baseline_accuracy.float()}
