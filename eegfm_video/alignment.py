"""``EEGAlignment``: the EEG encoder with its two alignment heads and their loss (EEGMirror 3.2).

::

    eeg (B, C, T) µV, positions (B, C, 2)
      -> MAPEEncoder -> tokens (B, N, D), token_mask (B, N), pooled (B, D)
           pooled -> SemanticDecoder      -> text embedding (B, L, W)      L_text = SoftCLIP + MSE
           tokens -> Seq2SeqLatentDecoder -> frame latents (B, M, C, h, w) L_low  = MSE
    alignment loss = L_text + L_low

It also holds the **negative embedding** ``(L, W)`` of classifier-free guidance, the condition
that replaces the semantic prediction when it is dropped in training and the "unconditional"
branch at sampling: learned (``negative_embedding_mode="learned"``, a learned negative
embedding that starts at zero) or fixed (``negative_embedding_mode="fixed"``: zeros, or the CLIP embedding of the empty
prompt set with :meth:`EEGAlignment.set_negative_embedding`). It lives here, beside the
semantic decoder whose output space it belongs to, so it is saved and loaded with it.

A diffusers model (``ModelMixin`` + ``ConfigMixin``): the config holds the constructor
arguments of the three sub-models (JSON dicts, like ``InflatedUNet``'s ``unet_config``; the
encoder's is its :class:`eegfm.EncoderConfig`, resolved)
and the loss options; ``save_pretrained`` / ``from_pretrained`` round-trip it, and it can be a
component of :class:`~eegfm_video.pipeline.EEG2VideoPipeline`. Build it from ready models (a
pre-trained encoder) with :meth:`EEGAlignment.from_components`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from eegfm._validation import check_option
from eegfm.hub import StrictDiffusersLoadingMixin
from eegfm.models.config import EncoderConfig
from eegfm.models.encoder import EncoderOutput, MAPEEncoder

from .losses import DEFAULT_TEMPERATURE, AlignmentLoss, alignment_loss
from .models.semantic_decoder import SemanticDecoder
from .models.seq2seq import Seq2SeqLatentDecoder

__all__ = ["NEGATIVE_EMBEDDING_MODES", "POOLED_FROM", "AlignmentOutput", "EEGAlignment"]

NEGATIVE_EMBEDDING_MODES = ("learned", "fixed")
POOLED_FROM = ("mean", "cls")


@dataclass
class AlignmentOutput(BaseOutput):
    """Output of :class:`EEGAlignment`.

    Attributes
    ----------
    text_embeddings : torch.Tensor, shape (B, L, W)
        Semantic decoder prediction, ``(B, 77, 768)`` for SD 1.x: the UNet's condition.
    latents : torch.Tensor, shape (B, M, C, h, w)
        Seq2Seq frame latents (scaled like the VAE targets); teacher-forced when ``latents``
        were passed to :meth:`EEGAlignment.forward`, autoregressive otherwise.
    """

    text_embeddings: torch.Tensor = None
    latents: torch.Tensor = None


def _json_dict(name: str, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of constructor arguments, got {type(value).__name__}")
    # tuples -> lists, fails loudly on non-JSON values; diffusers' private keys (_class_name, ...) dropped
    return json.loads(json.dumps({k: v for k, v in value.items() if not str(k).startswith("_")}))


class EEGAlignment(StrictDiffusersLoadingMixin, ModelMixin, ConfigMixin):  # strict: a missing weight is an error
    """MAPEEncoder + SemanticDecoder + Seq2SeqLatentDecoder, trained with ``L_text + L_low``.

    Parameters
    ----------
    encoder_config : EncoderConfig | dict
        Settings of the :class:`eegfm.MAPEEncoder` (:class:`eegfm.EncoderConfig` or a dict of
        its fields, e.g. ``encoder.config``); the model's config holds them resolved, as a dict.
    semantic_decoder_config : dict
        :class:`~eegfm_video.models.SemanticDecoder` arguments; its ``encoder_dim`` must equal
        the encoder's ``embed_dim``.
    seq2seq_config : dict
        :class:`~eegfm_video.models.Seq2SeqLatentDecoder` arguments; ``encoder_dim`` likewise.
    pooled_from : {"mean", "cls"}
        What the semantic decoder reads: the mean of the real tokens (``output.pooled()``,
        default) or the CLS token.
    negative_embedding_mode : {"learned", "fixed"}
        Whether the CFG negative embedding ``(L, W)`` is trained (see the module docstring).
    temperature, pooling, direction, mse_weight, low_weight
        Options of :func:`eegfm_video.losses.alignment_loss` (defaults: the paper's).

    Examples
    --------
    >>> import torch
    >>> from eegfm import MAPEEncoder
    >>> from eegfm_video.models import SemanticDecoder, Seq2SeqLatentDecoder
    >>> model = EEGAlignment.from_components(
    ...     MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2),
    ...     SemanticDecoder(encoder_dim=16, hidden_dim=32, seq_len=4, width=8),
    ...     Seq2SeqLatentDecoder(encoder_dim=16, d_model=16, num_layers=1, num_heads=2,
    ...                          latent_height=2, latent_width=2, num_frames=3))
    >>> out = model(torch.randn(2, 3, 200), torch.rand(3, 2) * 100)
    >>> out.text_embeddings.shape, out.latents.shape
    (torch.Size([2, 4, 8]), torch.Size([2, 3, 4, 2, 2]))
    """

    @register_to_config
    def __init__(
        self,
        encoder_config: EncoderConfig | dict,
        semantic_decoder_config: dict,
        seq2seq_config: dict,
        pooled_from: str = "mean",
        negative_embedding_mode: str = "learned",
        temperature: float = DEFAULT_TEMPERATURE,
        pooling: str = "flatten",
        direction: str = "one",
        mse_weight: float = 1.0,
        low_weight: float = 1.0,
    ):
        super().__init__()
        encoder = MAPEEncoder(encoder_config)
        semantic_decoder_config = _json_dict("semantic_decoder_config", semantic_decoder_config)
        seq2seq_config = _json_dict("seq2seq_config", seq2seq_config)
        check_option("pooled_from", pooled_from, POOLED_FROM)
        check_option("negative_embedding_mode", negative_embedding_mode, NEGATIVE_EMBEDDING_MODES)
        check_option("pooling", pooling, ("flatten", "mean"))
        check_option("direction", direction, ("one", "both"))
        self.register_to_config(encoder_config=encoder.get_config(), semantic_decoder_config=semantic_decoder_config,
                                seq2seq_config=seq2seq_config)
        self.encoder = encoder
        self.semantic_decoder = SemanticDecoder(**semantic_decoder_config)
        self.seq2seq = Seq2SeqLatentDecoder(**seq2seq_config)
        dim = self.encoder.embed_dim
        for name, sub in (("semantic_decoder_config", self.semantic_decoder), ("seq2seq_config", self.seq2seq)):
            if sub.config.encoder_dim != dim:
                raise ValueError(f"{name}['encoder_dim']={sub.config.encoder_dim} must equal the encoder's "
                                 f"embed_dim={dim}")
        shape = (self.semantic_decoder.config.seq_len, self.semantic_decoder.config.width)
        self.negative_embedding = nn.Parameter(torch.zeros(shape), requires_grad=negative_embedding_mode == "learned")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_components(
        cls,
        encoder: MAPEEncoder,
        semantic_decoder: SemanticDecoder,
        seq2seq: Seq2SeqLatentDecoder,
        **options,
    ) -> "EEGAlignment":
        """Assemble from ready models (e.g. a pre-trained encoder); their weights are copied.

        Parameters
        ----------
        encoder : eegfm.MAPEEncoder
        semantic_decoder : SemanticDecoder
        seq2seq : Seq2SeqLatentDecoder
        **options
            ``pooled_from``, ``negative_embedding_mode`` and the loss options of :class:`EEGAlignment`.

        Returns
        -------
        EEGAlignment
        """
        for name, value, kind in (("encoder", encoder, MAPEEncoder), ("semantic_decoder", semantic_decoder,
                                  SemanticDecoder), ("seq2seq", seq2seq, Seq2SeqLatentDecoder)):
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        model = cls(encoder_config=encoder.config,
                    semantic_decoder_config=dict(semantic_decoder.config),
                    seq2seq_config=dict(seq2seq.config), **options)
        model.encoder.load_state_dict(encoder.state_dict())
        model.semantic_decoder.load_state_dict(semantic_decoder.state_dict())
        model.seq2seq.load_state_dict(seq2seq.state_dict())
        return model

    def set_negative_embedding(self, embedding: torch.Tensor) -> None:
        """Set the negative embedding, e.g. the CLIP embedding of the empty prompt ``""``.

        Parameters
        ----------
        embedding : torch.Tensor, shape (L, W) or (1, L, W)
        """
        shape = tuple(self.negative_embedding.shape)
        embedding = torch.as_tensor(embedding)
        if embedding.ndim == 3 and embedding.shape[0] == 1:
            embedding = embedding[0]
        if tuple(embedding.shape) != shape:
            raise ValueError(f"embedding must have shape {shape} or (1, {shape[0]}, {shape[1]}) (the semantic "
                             f"decoder's seq_len, width), got {tuple(embedding.shape)}")
        with torch.no_grad():
            self.negative_embedding.copy_(embedding)

    # ------------------------------------------------------------------ forward
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of one frame latent of the Seq2Seq decoder."""
        return self.seq2seq.latent_shape

    def encode(self, eeg: torch.Tensor, positions: torch.Tensor, *, channel_mask: torch.Tensor | None = None,
               n_times: torch.Tensor | None = None) -> EncoderOutput:
        """Run the encoder: ``eeg`` (B, C, T), ``positions`` (B, C, 2) or (C, 2) -> :class:`eegfm.EncoderOutput`."""
        return self.encoder(eeg, positions, channel_mask=channel_mask, n_times=n_times)

    def semantic(self, encoded: EncoderOutput) -> torch.Tensor:
        """Text-embedding prediction (B, L, W) from an encoder output."""
        pooled = encoded.pooled() if self.config.pooled_from == "mean" else encoded.cls
        return self.semantic_decoder(pooled)

    def forward(
        self,
        eeg: torch.Tensor,
        positions: torch.Tensor,
        *,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        latents: torch.Tensor | None = None,
        num_frames: int | None = None,
        return_dict: bool = True,
    ) -> AlignmentOutput | tuple:
        """Predict the condition and the frame latents of each clip.

        Parameters
        ----------
        eeg : torch.Tensor, shape (B, C, T)
            EEG in µV at the encoder's ``sfreq``.
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
            Proportion coordinates (:func:`eegfm.proportion_coordinates`).
        channel_mask : torch.Tensor of bool, shape (B, C), optional
        n_times : torch.Tensor, shape (B,), optional
        latents : torch.Tensor, shape (B, M, C, h, w), optional
            Ground-truth frame latents: teacher forcing (training). None: autoregressive.
        num_frames : int, optional
            ``M`` for autoregressive decoding (default: the Seq2Seq config's).
        return_dict : bool

        Returns
        -------
        AlignmentOutput | tuple
            ``text_embeddings`` (B, L, W), ``latents`` (B, M, C, h, w).
        """
        encoded = self.encode(eeg, positions, channel_mask=channel_mask, n_times=n_times)
        text = self.semantic(encoded)  # (B, L, W)
        if latents is not None:
            frames = self.seq2seq(encoded.tokens, latents, encoded.token_mask)  # (B, M, C, h, w)
        else:
            frames = self.seq2seq.generate(encoded.tokens, encoded.token_mask, num_frames)
        if not return_dict:
            return text, frames
        return AlignmentOutput(text_embeddings=text, latents=frames)

    def loss(self, output: AlignmentOutput, text_target: torch.Tensor, latent_target: torch.Tensor) -> AlignmentLoss:
        """``L_text + L_low`` of an output against the targets, with the configured options.

        Parameters
        ----------
        output : AlignmentOutput
            From :meth:`forward` with ``latents=latent_target`` (teacher forcing).
        text_target : torch.Tensor, shape (B, L, W)
            CLIP text embeddings of the captions.
        latent_target : torch.Tensor, shape (B, M, C, h, w)
            Scaled VAE latents of the frames.

        Returns
        -------
        AlignmentLoss
        """
        cfg = self.config
        return alignment_loss(output.text_embeddings, text_target, output.latents, latent_target,
                              temperature=cfg.temperature, pooling=cfg.pooling, direction=cfg.direction,
                              mse_weight=cfg.mse_weight, low_weight=cfg.low_weight)
