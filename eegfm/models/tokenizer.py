"""``NeuralTokenizer``: EEG patches -> discrete codes, trained to predict Fourier amplitudes
(paper 3.1.3).

The data path, top to bottom::

    x (B, C, T) µV, positions (B, C, 2)
      -> MAPEEncoder (its own weights)           tokens (B, C*K, D), token_mask (B, C*K)
      -> Linear D -> d, l2-normalise             z (B, C*K, d)
      -> valid tokens only: z[token_mask]        (n_valid, d)   padding never reaches the codebook
      -> EMAVectorQuantizer                      z_q (n_valid, d), codes (n_valid,)
      -> scattered back, padding = 0 / code -1   z_q (B, C*K, d), codes (B, C*K)
      -> Linear d -> D, + MAPE again             (B, C, K, D)
      -> decoder_depth Transformer blocks (key padding mask), LayerNorm
      -> Linear D -> W//2 + 1                    predicted amplitude of every patch

Target: ``|rfft(patch)|`` of every patch (``W//2 + 1`` bins; the full ``fft`` magnitude of
the references repeats half of them), z-scored **per sample**: one mean and one standard
deviation per recording in the batch, over its valid tokens and all bins; padded tokens
are excluded from the statistics and the loss. Why per sample: a z-score per patch would
erase the amplitude differences between channels and over time that the codes should carry,
and a z-score per frequency bin would flatten the 1/f shape of the spectrum; one scale per
recording only removes what differs between recordings and datasets (gain, units,
impedance), and a recording gets the same target alone or padded inside any batch.

Loss = ``commitment_weight * commitment + amplitude MSE`` (the mean over valid tokens and
bins), the straight-through estimator carrying the decoder's gradient to the encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import HubMixin, hub_card
from ..modules.packing import TokenPacking
from ..modules.quantizer import EMAVectorQuantizer, code_usage
from .config import EmbedsEncoderConfig, EncoderConfig
from .encoder import MAPEEncoder, transformer_blocks

__all__ = ["NeuralTokenizer", "TokenizerOutput"]

#: Floor of the per-sample standard deviation of the amplitude target.
TARGET_STD_FLOOR = 1e-6


@dataclass
class TokenizerOutput:
    """What :meth:`NeuralTokenizer.forward` returns.

    Attributes
    ----------
    loss : torch.Tensor, shape ()
        ``commitment_weight * commitment_loss + amplitude_loss``.
    amplitude_loss : torch.Tensor, shape ()
        MSE of the predicted amplitudes over valid tokens and bins.
    commitment_loss : torch.Tensor, shape ()
        ``mean ||z - sg(z_q)||^2`` over valid tokens.
    codes : torch.Tensor of int64, shape (B, C*K)
        Code of each token; -1 where padded.
    token_mask : torch.Tensor of bool, shape (B, C*K)
        True for real tokens.
    n_valid : torch.Tensor of int64, shape ()
        Number of real tokens.
    amplitude : torch.Tensor, shape (B, C*K, W//2+1)
        Predicted (z-scored) amplitudes; meaningless where padded.
    target : torch.Tensor, shape (B, C*K, W//2+1)
        Z-scored rfft amplitudes; 0 where padded.
    """

    loss: torch.Tensor
    amplitude_loss: torch.Tensor
    commitment_loss: torch.Tensor
    codes: torch.Tensor
    token_mask: torch.Tensor
    n_valid: torch.Tensor
    amplitude: torch.Tensor
    target: torch.Tensor


def amplitude_target(patches: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample z-scored rfft amplitude of every patch.

    Parameters
    ----------
    patches : torch.Tensor, shape (B, C, K, W)
        EEG patches.
    token_mask : torch.Tensor of bool, shape (B, C, K)
        True for real patches; the others are left out of the statistics.

    Returns
    -------
    torch.Tensor, float32, shape (B, C, K, W//2+1)
        ``(|rfft(patch)| - mean_b) / max(std_b, 1e-6)`` with ``mean_b`` and ``std_b`` (the
        population standard deviation) taken over sample ``b``'s valid patches and all
        bins; 0 at padded patches, whatever they hold.
    """
    valid = token_mask[..., None]  # (B, C, K, 1)
    amp = torch.fft.rfft(patches.float(), dim=-1).abs()  # (B, C, K, F)
    amp = torch.where(valid, amp, torch.zeros_like(amp))  # garbage (even NaN) in padding is dropped
    count = (token_mask.sum(dim=(1, 2)) * amp.shape[-1]).clamp_min(1).to(amp.dtype)  # (B,)
    mean = amp.sum(dim=(1, 2, 3)) / count  # (B,)
    centred = torch.where(valid, amp - mean[:, None, None, None], torch.zeros_like(amp))
    std = (centred.pow(2).sum(dim=(1, 2, 3)) / count).sqrt().clamp_min(TARGET_STD_FLOOR)  # (B,)
    return centred / std[:, None, None, None]


class NeuralTokenizer(EmbedsEncoderConfig, nn.Module, HubMixin, **hub_card()):
    """Vector-quantised EEG tokenizer with a Fourier-amplitude decoder (EEGMirror 3.1.3).

    Parameters
    ----------
    encoder : EncoderConfig | dict, optional
        Settings of the tokenizer's own :class:`~eegfm.MAPEEncoder`; its width, heads, MLP
        ratio, biases, dropouts and LayerNorm epsilon are also those of the decoder's blocks.
    code_dim : int
        ``d``, width of the l2-normalised code space.
    num_codes : int
        ``K``, codebook size.
    ema_decay : float
        Decay of the codebook's exponential moving averages.
    decoder_depth : int
        Transformer blocks of the amplitude decoder.
    commitment_weight : float
        ``beta``, weight of the commitment loss.
    dead_code_steps : int
        Training steps a code may go unused before it is restarted (0: never).
    kmeans_iters : int
        Iterations of the k-means that initialises the codebook on the first batch.
    **encoder_fields
        :class:`~eegfm.EncoderConfig` fields that replace those of ``encoder``
        (``NeuralTokenizer(embed_dim=64)`` is ``NeuralTokenizer(encoder=EncoderConfig(embed_dim=64))``).

    Examples
    --------
    >>> import torch
    >>> from eegfm import EncoderConfig
    >>> tok = NeuralTokenizer(encoder=EncoderConfig(patch_size=25, embed_dim=32, depth=1, num_heads=2),
    ...                       code_dim=8, num_codes=16, decoder_depth=1)
    >>> x, pos = torch.randn(2, 3, 100) * 20, torch.rand(3, 2) * 100
    >>> out = tok(x, pos)                   # training mode: loss, codebook updated
    >>> codes, mask = tok.tokenize(x, pos)  # (2, 12) each, -1 at padding
    >>> codes.shape
    torch.Size([2, 12])
    """

    def __init__(
        self,
        encoder: EncoderConfig | Mapping | None = None,
        code_dim: int = 32,
        num_codes: int = 2048,
        ema_decay: float = 0.99,
        decoder_depth: int = 3,
        commitment_weight: float = 1.0,
        dead_code_steps: int = 100,
        kmeans_iters: int = 10,
        **encoder_fields,
    ):
        super().__init__()
        config = EncoderConfig.build(encoder, **encoder_fields)
        if decoder_depth < 1:
            raise ValueError(f"decoder_depth must be >= 1, got {decoder_depth=}")
        if commitment_weight < 0:
            raise ValueError(f"commitment_weight must be >= 0, got {commitment_weight=}")
        self.encoder = MAPEEncoder(config)
        self.preprocessing = self.encoder.preprocessing
        self.patch_size = patch_size = config.patch_size
        self.n_bins = patch_size // 2 + 1
        self.commitment_weight = commitment_weight
        embed_dim = config.embed_dim
        self.to_code = nn.Linear(embed_dim, code_dim)
        self.quantizer = EMAVectorQuantizer(
            num_codes=num_codes, code_dim=code_dim, decay=ema_decay,
            kmeans_iters=kmeans_iters, dead_code_steps=dead_code_steps,
        )
        self.from_code = nn.Linear(code_dim, embed_dim)
        self.decoder = nn.ModuleList(transformer_blocks(config, decoder_depth))
        self.decoder_norm = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.head = nn.Linear(embed_dim, self.n_bins)
        for module in (self.to_code, self.from_code, self.head, *self.decoder.modules()):
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:  # qkv_bias=False
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ stages
    def _encode(self, x, positions, channel_mask, n_times, sfreq):
        """Input stage + encoder + code projection. Returns (EncoderInputs, positions cast, z (B, C*K, d))."""
        inputs = self.encoder.prepare_inputs(x, positions, channel_mask=channel_mask, n_times=n_times, sfreq=sfreq)
        embeddings = inputs.embeddings  # (B, C, K, D)
        positions = inputs.positions.to(embeddings.dtype)
        # codes describe content: the direct position term is removed (the decoder re-adds MAPE)
        encoded = self.encoder.encode(embeddings, positions, inputs.token_mask, inputs.valid_patches,
                                      remove_position=True, padded=inputs.padded)
        z = F.normalize(self.to_code(encoded.tokens).float(), dim=-1)  # (B, C*K, d)
        return inputs, positions, z

    def _quantize(self, z: torch.Tensor, flat_mask: torch.Tensor):
        """Quantise the valid tokens only and scatter back: (z_q (B, N, d), codes (B, N), commitment)."""
        z_q_valid, codes_valid, commitment = self.quantizer(z[flat_mask])  # (n_valid, d), (n_valid,)
        z_q = torch.zeros_like(z).index_put((flat_mask,), z_q_valid)  # padding: 0
        codes = torch.full(flat_mask.shape, -1, dtype=torch.long, device=z.device)
        codes[flat_mask] = codes_valid
        return z_q, codes, commitment

    def _decode(self, z_q, positions, mask, valid_patches) -> torch.Tensor:
        """Quantised tokens (B, C*K, d) -> predicted amplitudes (B, C*K, W//2+1)."""
        batch, n_chans, n_patches = mask.shape
        positions = torch.where(mask.any(-1, keepdim=True), positions, torch.zeros_like(positions))  # NaN-safe
        h = self.from_code(z_q).view(batch, n_chans, n_patches, -1)  # (B, C, K, D)
        h = (h + self.encoder.pos_embed(positions, n_patches, valid_patches).to(h.dtype)).flatten(1, 2)
        flat_mask = mask.flatten(1)  # (B, N)
        # A sample without any real token attends to all (its outputs are ignored) to avoid NaN.
        keep = flat_mask | ~flat_mask.any(dim=1, keepdim=True)
        attn_mask = None if bool(keep.all()) else keep[:, None, None, :]  # (B, 1, 1, N)
        packing = TokenPacking.of(keep)  # the CPU skips the padding's per-token work (eegfm.modules.packing)
        if packing is not None:
            h = packing.pack(h)  # (T, D)
        for block in self.decoder:
            h = block(h, attn_mask, packing)
        out = self.head(self.decoder_norm(h))
        return out if packing is None else packing.unpack(out)  # (B, N, F), zeros at padding when packed

    # ------------------------------------------------------------------ API
    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        sfreq: float | None = None,
    ) -> TokenizerOutput:
        """Tokenize and reconstruct Fourier amplitudes; in training mode update the codebook.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)
            EEG in µV at ``sfreq``; zero-padded where channels or samples are missing.
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
            Proportion coordinates of each channel.
        channel_mask : torch.Tensor of bool, shape (B, C), optional
            True for real channels (default: all).
        n_times : torch.Tensor of int, shape (B,), optional
            Valid samples of each recording (default: all ``T``).
        sfreq : float, optional
            Sampling rate of ``x``; checked against the model's when given.

        Returns
        -------
        TokenizerOutput
            Losses over valid tokens only, ``codes`` (B, C*K) with -1 at padding.
        """
        inputs, positions, z = self._encode(x, positions, channel_mask, n_times, sfreq)
        mask = inputs.token_mask  # (B, C, K)
        flat_mask = mask.flatten(1)  # (B, N)
        z_q, codes, commitment = self._quantize(z, flat_mask)
        amplitude = self._decode(z_q, positions, mask, inputs.valid_patches).float()  # (B, N, F)
        target = amplitude_target(inputs.patches, mask).flatten(1, 2)  # (B, N, F)
        n_valid = flat_mask.sum()
        denominator = (n_valid * self.n_bins).clamp_min(1).to(amplitude.dtype)
        amplitude_loss = (amplitude - target).pow(2)[flat_mask].sum() / denominator
        loss = self.commitment_weight * commitment + amplitude_loss
        return TokenizerOutput(
            loss=loss, amplitude_loss=amplitude_loss, commitment_loss=commitment, codes=codes,
            token_mask=flat_mask, n_valid=n_valid, amplitude=amplitude, target=target,
        )

    @torch.no_grad()
    def tokenize(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        sfreq: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Code of every token, without touching the codebook (eval semantics, no decoder).

        Parameters
        ----------
        x, positions, channel_mask, n_times, sfreq
            As in :meth:`forward`.

        Returns
        -------
        codes : torch.Tensor of int64, shape (B, C*K)
            -1 at padded tokens.
        token_mask : torch.Tensor of bool, shape (B, C*K)
        """
        was_training = self.training
        self.eval()
        try:
            inputs, _, z = self._encode(x, positions, channel_mask, n_times, sfreq)
            flat_mask = inputs.token_mask.flatten(1)
            codes = torch.full(flat_mask.shape, -1, dtype=torch.long, device=z.device)
            codes[flat_mask] = self.quantizer.nearest(z[flat_mask])
        finally:
            self.train(was_training)
        return codes, flat_mask

    def codebook_stats(self) -> dict:
        """Usage and perplexity of the training assignments, dead codes and restarts.

        :meth:`EMAVectorQuantizer.stats`: counted over every training step since
        ``quantizer.reset_stats()``, the first (k-means) one included, so they overstate a
        codebook that collapsed later. The final codebook's health: :meth:`codebook_health`.
        """
        return self.quantizer.stats()

    @torch.no_grad()
    def code_counts(self, batches) -> torch.Tensor:
        """How many valid tokens of ``batches`` each code takes, with the current codebook.

        Parameters
        ----------
        batches : iterable of EEGBatch (or of dicts of :meth:`forward`'s inputs)
            Encoded in eval mode with :meth:`tokenize` (no buffer changes), each moved to the
            model's device; padded tokens are not counted.

        Returns
        -------
        torch.Tensor of int64, shape (num_codes,), on the CPU
        """
        device = next(self.parameters()).device
        counts = torch.zeros(self.quantizer.num_codes, dtype=torch.long)
        for batch in batches:
            inputs = batch if isinstance(batch, dict) else batch.encoder_inputs()
            inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            codes, mask = self.tokenize(**inputs)
            counts += torch.bincount(codes[mask].cpu(), minlength=self.quantizer.num_codes)
        return counts

    def codebook_health(self, batches) -> dict:
        """Usage and perplexity of the final codebook on ``batches`` (ideally held-out data).

        Parameters
        ----------
        batches : iterable of EEGBatch (or of dicts of :meth:`forward`'s inputs)
            As in :meth:`code_counts`.

        Returns
        -------
        dict
            :func:`eegfm.modules.quantizer.code_usage` of :meth:`code_counts`: ``usage``
            (share of the K codes used), ``perplexity`` (1 when every token gets one code, K
            when all codes are used equally), ``codes_used``, ``num_codes``, ``tokens``.
            :func:`eegfm.modules.quantizer.collapse_warning` turns it into a warning.
        """
        return code_usage(self.code_counts(batches))

    def check_preprocessing(self, config) -> None:
        """Raise if data preprocessed with ``config`` does not match this model's contract."""
        self.encoder.check_preprocessing(config)

    def training_step(self, batch) -> dict:
        """One step's losses on an :class:`eegfm.data.EEGBatch`, in the training engine's contract.

        Returns
        -------
        dict
            ``loss_sum`` (the loss times the number of valid tokens: the engine divides by
            the global count over processes), ``count`` (valid tokens, float tensor),
            ``amplitude_loss`` and ``commitment_loss`` (detached, for logging), and the
            batch's codebook health: ``codebook_usage`` (share of codes used by this batch),
            ``codebook_perplexity`` (exp entropy of its code frequencies) and ``dead_codes``.
        """
        out = self(**batch.encoder_inputs())
        count = out.n_valid.to(out.loss.dtype)
        with torch.no_grad():
            counts = torch.bincount(out.codes[out.token_mask], minlength=self.quantizer.num_codes).float()
            probs = counts / counts.sum().clamp_min(1)
            perplexity = torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum())
            dead = (self.quantizer.steps_since_used >= max(self.quantizer.dead_code_steps, 1)).sum()
        return {
            "loss_sum": out.loss * count,
            "count": count,
            "amplitude_loss": out.amplitude_loss.detach(),
            "commitment_loss": out.commitment_loss.detach(),
            "codebook_usage": (counts > 0).float().mean(),
            "codebook_perplexity": perplexity,
            "dead_codes": dead.float(),
        }
