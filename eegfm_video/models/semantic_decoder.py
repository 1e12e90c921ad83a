"""``SemanticDecoder``: an MLP from the EEG encoder's pooled output to CLIP text embeddings.

EEGMirror 3.2.1 (high-level alignment): ``l_p = D_s(E_brain(x))``, predicting the CLIP text
embedding of the clip's BLIP caption, ``(77, 768)`` for Stable Diffusion 1.x's text encoder.
The prediction replaces the text encoder's output as the UNet's conditioning. Train it with
:func:`eegfm_video.losses.alignment_text_loss` (SoftCLIP + MSE)::

    pooled (B, D)                            encoder(x, positions, ...).pooled()
      -> LayerNorm -> Linear (B, H)
      -> num_blocks x residual [LayerNorm -> Linear -> GELU -> Dropout] (B, H)
      -> LayerNorm -> Linear (B, L * W) -> reshape (B, L, W)

It is a diffusers model (``ModelMixin`` + ``ConfigMixin``): ``save_pretrained`` writes
``config.json`` + ``diffusion_pytorch_model.safetensors``, ``from_pretrained`` reads them, and
it can be a component of a diffusers pipeline.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from eegfm._validation import check_positive_int
from eegfm.hub import StrictDiffusersLoadingMixin

__all__ = ["SemanticDecoder"]


class SemanticDecoder(StrictDiffusersLoadingMixin, ModelMixin, ConfigMixin):  # strict: a missing weight is an error
    """MLP from a pooled EEG embedding ``(B, D)`` to a CLIP text embedding ``(B, L, W)``.

    Parameters
    ----------
    encoder_dim : int
        ``D``, the EEG encoder's width (``MAPEEncoder.embed_dim``; 200 for the base encoder).
    hidden_dim : int
        ``H``, width of the hidden layers.
    num_blocks : int
        Residual MLP blocks between the input and output projections (0 = one hidden layer).
    seq_len : int
        ``L``, tokens of the text embedding (77 for CLIP's text encoder).
    width : int
        ``W``, width of the text embedding (768 for SD 1.x, 1024 for SD 2.x).
    dropout : float
        Dropout in the residual blocks, in [0, 1).
    layer_norm_eps : float
        Epsilon of every LayerNorm.

    Examples
    --------
    >>> import torch
    >>> decoder = SemanticDecoder(encoder_dim=32, hidden_dim=64, seq_len=77, width=768)
    >>> decoder(torch.randn(2, 32)).shape
    torch.Size([2, 77, 768])
    """

    @register_to_config
    def __init__(
        self,
        encoder_dim: int = 200,
        hidden_dim: int = 1024,
        num_blocks: int = 2,
        seq_len: int = 77,
        width: int = 768,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        check_positive_int("encoder_dim", encoder_dim)
        check_positive_int("hidden_dim", hidden_dim)
        check_positive_int("num_blocks", num_blocks, minimum=0)
        check_positive_int("seq_len", seq_len)
        check_positive_int("width", width)
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.in_norm = nn.LayerNorm(encoder_dim, eps=layer_norm_eps)
        self.in_proj = nn.Linear(encoder_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden_dim, eps=layer_norm_eps),
                nn.Linear(hidden_dim, hidden_dim),
                nn.GELU(),
                nn.Dropout(dropout),
            )
            for _ in range(num_blocks)
        )
        self.out_norm = nn.LayerNorm(hidden_dim, eps=layer_norm_eps)
        self.out_proj = nn.Linear(hidden_dim, seq_len * width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Predict CLIP text embeddings.

        Parameters
        ----------
        pooled : torch.Tensor, shape (B, D)
            The EEG encoder's pooled output, ``encoder(...).pooled()`` (the mean of the real
            tokens; ``.cls`` works too).

        Returns
        -------
        torch.Tensor, shape (B, L, W)
            Predicted text embeddings, ``(B, 77, 768)`` by default: the UNet's
            ``encoder_hidden_states``.
        """
        dim = self.config.encoder_dim
        if pooled.ndim != 2 or pooled.shape[1] != dim:
            raise ValueError(
                f"pooled must have shape (batch, {dim}) (encoder_dim={dim}), got {tuple(pooled.shape)}; "
                "pass the encoder's pooled output, encoder(...).pooled()"
            )
        hidden = self.in_proj(self.in_norm(pooled))  # (B, H)
        for block in self.blocks:
            hidden = hidden + block(hidden)
        out = self.out_proj(self.out_norm(hidden))  # (B, L*W)
        return out.view(pooled.shape[0], self.config.seq_len, self.config.width)
