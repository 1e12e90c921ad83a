"""``EncoderConfig``: every setting of a :class:`~eegfm.MAPEEncoder`, in one typed, JSON-safe dataclass.

Every model built on the encoder embeds one rather than copying its arguments: ``MAPEEncoder(config)``,
``NeuralTokenizer(encoder=config, ...)``, ``MaskedPretrainer(encoder=config, ...)``,
``MAPEClassifier(encoder=config, ...)``, the braindecode wrapper and ``EEGAlignment``. The
command line exposes it whole (``--model.<field>``, ``--encoder.<field>`` for fine-tuning).

``config.json`` layout (:data:`eegfm.hub.CONFIG_VERSION`): an encoder's fields are flat in a
``MAPEEncoder`` folder and nested under ``"encoder"`` in a composite model's
(:class:`EmbedsEncoderConfig`, which also converts the folders written before
``config_version`` existed: version 1, the tokenizer's and pretrainer's encoder arguments flat
beside their own).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .._validation import with_guess
from ..data.preprocessing import PreprocessConfig

__all__ = ["ENCODER_FIELDS", "EmbedsEncoderConfig", "EncoderConfig"]


@dataclass(frozen=True)
class EncoderConfig:
    """Every constructor setting of a :class:`~eegfm.MAPEEncoder` (JSON-safe with :meth:`to_dict`).

    Attributes
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
    conv_channels : tuple of int
        Channels of the patch embedder's convolutions.
    pool_bins : int
        Time bins the patch embedder pools into.
    patch_mean : bool
        Feed each patch's signed mean (``asinh`` of µV) to the patch embedder beside its log
        amplitude (:class:`~eegfm.modules.patch_embed.NeuralPatchEmbedder` ``mean_feature``):
        keeps the slow potentials that a per-patch z-score erases. False (the default and every
        model saved before it existed): the reference embedder.
    attention_bias : {"none", "distance"}
        ``"distance"``: a fixed per-head penalty on scalp distance and patch lag added to the
        attention scores (:mod:`eegfm.modules.attention_bias`), so attention can tell a
        neighbouring channel from a distant one; nothing learned, any montage. ``"none"`` (the
        default and every model saved before it existed): MAPE alone.
    layer_norm_eps : float
        Epsilon of every LayerNorm.
    sfreq : float
        Sampling rate (Hz) the model expects.
    preprocessing : dict, optional
        The preprocessing contract (:class:`eegfm.data.PreprocessConfig` as a dict: rate,
        band, notch, units, channels) that input must follow. None: ``PreprocessConfig(sfreq=sfreq)``
        (:meth:`contract` resolves it; a built encoder's ``config`` holds the resolved dict).

    Examples
    --------
    >>> from eegfm import EncoderConfig, MAPEEncoder, NeuralTokenizer
    >>> config = EncoderConfig(patch_size=50, embed_dim=32, depth=2, num_heads=2, qkv_bias=False)
    >>> encoder = MAPEEncoder(config)
    >>> tokenizer = NeuralTokenizer(encoder=config, num_codes=64)
    >>> EncoderConfig.from_dict(config.to_dict()) == config
    True
    """

    patch_size: int = 100  # samples per patch (100 = 0.5 s at 200 Hz)
    embed_dim: int = 200  # token width (divisible by 4 and by num_heads)
    depth: int = 12  # Transformer blocks
    num_heads: int = 10  # attention heads (divide embed_dim)
    mlp_ratio: float = 4.0  # MLP hidden width as a multiple of embed_dim
    qkv_bias: bool = True  # bias on the query/key/value projection
    dropout: float = 0.0  # dropout in the Transformer blocks
    attn_dropout: float = 0.0  # dropout on the attention weights
    position_embedding: str = "mape"  # "mape" | "sincos1d" (the 1-D baseline of the paper's Table 2 ablation)
    conv_channels: tuple[int, ...] = (8, 8, 16)  # channels of the patch embedder's convolutions
    pool_bins: int = 4  # time bins the patch embedder pools each patch into
    patch_mean: bool = False  # feed each patch's signed mean (asinh µV) to the patch embedder
    attention_bias: str = "none"  # "none" | "distance" (fixed per-head scalp-distance and patch-lag penalties)
    layer_norm_eps: float = 1e-6  # epsilon of every LayerNorm
    sfreq: float = 200.0  # sampling rate (Hz) the model expects
    preprocessing: dict | None = None  # preprocessing contract (PreprocessConfig as a dict); None: PreprocessConfig(sfreq)

    def __post_init__(self):
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        if self.preprocessing is not None:
            if not isinstance(self.preprocessing, Mapping):
                raise TypeError(f"preprocessing must be a dict (PreprocessConfig.to_dict()) or None, got "
                                f"{type(self.preprocessing).__name__}")
            object.__setattr__(self, "preprocessing", dict(self.preprocessing))

    @classmethod
    def from_dict(cls, values: Mapping) -> EncoderConfig:
        """The config of ``values`` (e.g. :meth:`to_dict`'s; missing keys take their default).

        Raises
        ------
        TypeError
            A key that is not a field, with the closest field name.
        """
        return cls.build(None, **values)

    @classmethod
    def build(cls, config: EncoderConfig | Mapping | None = None, **fields) -> EncoderConfig:
        """``config`` (a config, a dict of fields, or None: the defaults) with ``fields`` replaced.

        What every model's ``encoder=`` argument goes through, so ``encoder=dict(embed_dim=64)``
        and flat ``embed_dim=64`` both work.

        Raises
        ------
        TypeError
            A field name that does not exist (did-you-mean), or a ``config`` of another type.
        """
        if isinstance(config, Mapping):
            fields = {**config, **fields}
            config = None
        elif config is not None and not isinstance(config, cls):
            raise TypeError(f"encoder config must be an EncoderConfig, a dict of its fields or None, got "
                            f"{type(config).__name__}")
        unknown = sorted(set(fields) - set(ENCODER_FIELDS))
        if unknown:
            raise TypeError(f"unknown EncoderConfig field {with_guess(unknown[0], ENCODER_FIELDS)}; its fields are "
                            f"{', '.join(ENCODER_FIELDS)}")
        return dataclasses.replace(config or cls(), **fields)

    def to_dict(self) -> dict:
        """Every field as plain JSON types (``conv_channels`` as a list)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def contract(self) -> PreprocessConfig:
        """The preprocessing contract: ``preprocessing`` with ``sfreq`` filled in.

        Raises
        ------
        ValueError
            ``preprocessing["sfreq"]`` differs from ``sfreq``.
        """
        contract = PreprocessConfig.from_dict({"sfreq": self.sfreq, **(self.preprocessing or {})})
        if contract.sfreq != float(self.sfreq):
            raise ValueError(f"preprocessing['sfreq']={contract.sfreq} differs from sfreq={self.sfreq}; they must "
                             "agree")
        return contract


#: The field names of :class:`EncoderConfig`, in order.
ENCODER_FIELDS = tuple(f.name for f in dataclasses.fields(EncoderConfig))


class EmbedsEncoderConfig:
    """Hub config of a model that embeds an :class:`EncoderConfig` (its ``encoder`` argument) and
    holds the built encoder as ``self.encoder``.

    Put it before :class:`~eegfm.hub.HubMixin` in the bases. ``config.json`` then holds the
    encoder's resolved settings under ``"encoder"``; flat encoder fields are accepted too
    (convenience constructor arguments, ``from_pretrained(..., dropout=0.1)`` overrides), and a
    version-1 folder (the tokenizer's and pretrainer's encoder arguments flat) is converted.
    """

    @classmethod
    def config_keys(cls) -> list[str]:
        return [*super().config_keys(), *ENCODER_FIELDS]

    @classmethod
    def upgrade_config(cls, config: dict, version: int) -> dict:
        """Version 1 -> 2: encoder fields saved flat beside the model's own arguments move under ``"encoder"``."""
        config = super().upgrade_config(config, version)
        if version == 1:
            flat = {key: config.pop(key) for key in ENCODER_FIELDS if key in config}
            config = {**config, "encoder": {**flat, **(config.get("encoder") or {})}}
        return config

    def get_config(self) -> dict:
        own = {key: value for key, value in super().get_config().items() if key not in ENCODER_FIELDS}
        return {**own, "encoder": self.encoder.get_config()}
