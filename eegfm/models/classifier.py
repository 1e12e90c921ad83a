"""A classification / regression head on a (pre-trained) :class:`MAPEEncoder`.

The head API follows timm: :meth:`MAPEClassifier.forward_features` (pooled encoder features),
:meth:`MAPEClassifier.forward_head` (features -> outputs), :meth:`MAPEClassifier.reset_head`.
:meth:`MAPEClassifier.from_pretrained` takes either a saved classifier or a saved *encoder*
(what ``eegfm pretrain`` writes to ``run_dir/encoder``); ``n_outputs=k`` replaces the head.
``class_names`` are saved in ``config.json`` with the weights, so a published classifier says
what each output is (and its model card lists them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..hub import (CONFIG_NAME, MODEL_CLASS_KEY, HubMixin, ModelLoadError, _download, hub_card,
                   read_config_file)
from ..modules.attention_pool import AttentionPool
from ..modules.spatial_moments import spatial_moments
from .config import EmbedsEncoderConfig, EncoderConfig
from .encoder import MAPEEncoder

__all__ = ["MAPEClassifier", "POOLINGS", "pool_tokens", "pooled_width"]

POOLINGS = ("mean", "cls", "cls+mean", "attention", "moments")
ATTENTION_QUERIES = 4  # learned queries of pooling="attention"


def pooled_width(pooling: str, embed_dim: int, pool: AttentionPool | None = None) -> int:
    """Width of the features ``pooling`` gives for tokens of ``embed_dim`` (``pool``: the attention pool)."""
    if pool is not None:
        return pool.num_features
    return embed_dim * {"cls+mean": 2, "moments": 3}.get(pooling, 1)


def pool_tokens(pooling: str, out, positions: torch.Tensor, pool: AttentionPool | None = None) -> torch.Tensor:
    """The ``(B, pooled_width)`` features of an :class:`~eegfm.models.encoder.EncoderOutput` for ``pooling``
    (see :class:`MAPEClassifier`); ``positions`` (B, C, 2) or (C, 2) are the input's, for ``"moments"``."""
    if pooling == "mean":
        return out.pooled()
    if pooling == "cls":
        return out.cls
    if pooling == "attention":
        return pool(out.tokens, out.token_mask)
    if pooling == "moments":
        return spatial_moments(out.grid(), out.token_mask, positions)
    return torch.cat((out.cls, out.pooled()), dim=-1)


class MAPEClassifier(EmbedsEncoderConfig, nn.Module, HubMixin, **hub_card()):
    """MAPEEncoder + pooling + dropout + linear head.

    Parameters
    ----------
    n_outputs : int
        Classes (logits) or regression targets.
    encoder : EncoderConfig | dict, optional
        Settings of the :class:`MAPEEncoder` (:class:`~eegfm.EncoderConfig`, or a dict of its
        fields; default: its defaults). Saved in ``config.json``, so the whole classifier
        reloads from one folder.
    pooling : {"mean", "cls", "cls+mean", "attention", "moments"}
        Features given to the head: the mean of the real tokens (padding excluded), the CLS
        token, both concatenated (2 x embed_dim), ``"attention"``: 4 learned queries read
        the real tokens by cross-attention (:class:`eegfm.modules.AttentionPool`, 4 x embed_dim),
        so regions whose patterns differ in sign (left vs right) are not averaged together, or
        ``"moments"``: the mean and the means weighted by each channel's centred left-right and
        front-back coordinate (:func:`eegfm.modules.spatial_moments`, 3 x embed_dim, no weights):
        a left-right contrast any montage gives.
    head_dropout : float
        Dropout on the features before the head.
    class_names : list of str, optional
        Name of each output, in order (``class_names[i]`` is logit ``i``): one per output,
        distinct. Saved in ``config.json`` and listed in the model card; ``None`` when unknown.
    **encoder_fields
        :class:`~eegfm.EncoderConfig` fields that replace those of ``encoder``.

    Examples
    --------
    >>> import torch
    >>> from eegfm import MAPEClassifier, proportion_coordinates
    >>> model = MAPEClassifier(n_outputs=2, encoder=dict(embed_dim=32, depth=1, num_heads=2, patch_size=50))
    >>> pos = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
    >>> model(torch.randn(4, 3, 400), pos).shape
    torch.Size([4, 2])
    """

    def __init__(self, n_outputs: int = 2, encoder: EncoderConfig | Mapping | None = None, pooling: str = "mean",
                 head_dropout: float = 0.0, class_names: list[str] | None = None, **encoder_fields):
        super().__init__()
        if not isinstance(n_outputs, int) or n_outputs < 1:
            raise ValueError(f"n_outputs must be a positive int, got {n_outputs=!r}")
        self.class_names = _check_class_names(class_names, n_outputs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling=!r}")
        self.encoder = MAPEEncoder(encoder, **encoder_fields)
        self.pooling = pooling
        self.n_outputs = n_outputs
        dim = self.encoder.embed_dim
        self.pool = (AttentionPool(dim, ATTENTION_QUERIES, num_heads=4 if dim % 4 == 0 else 1)
                     if pooling == "attention" else None)
        self.num_features = pooled_width(pooling, dim, self.pool)
        self.head_drop = nn.Dropout(head_dropout)
        self.head = self._new_head(n_outputs)

    def _new_head(self, n_outputs: int) -> nn.Linear:
        head = nn.Linear(self.num_features, n_outputs)
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        return head

    # ------------------------------------------------------------------ head API
    def reset_head(self, n_outputs: int, class_names: list[str] | None = None) -> None:
        """Replace the head with a freshly initialised one for ``n_outputs`` outputs named
        ``class_names`` (the old names go with the old head)."""
        if not isinstance(n_outputs, int) or n_outputs < 1:
            raise ValueError(f"n_outputs must be a positive int, got {n_outputs=!r}")
        class_names = _check_class_names(class_names, n_outputs)
        device = self.head.weight.device
        self.head = self._new_head(n_outputs).to(device)
        self.n_outputs = n_outputs
        self.class_names = class_names

    def get_config(self) -> dict:
        """Constructor arguments of the classifier as it is now: the current head's ``n_outputs``
        and ``class_names``, the encoder's resolved settings."""
        return {**super().get_config(), "n_outputs": self.n_outputs, "class_names": self.class_names}

    def forward_features(self, x: torch.Tensor, positions: torch.Tensor, *, channel_mask: torch.Tensor | None = None,
                         n_times: torch.Tensor | None = None, sfreq: float | None = None) -> torch.Tensor:
        """Pooled encoder features.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)
            EEG in µV at the encoder's rate (see :meth:`MAPEEncoder.forward`).
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
        channel_mask : torch.Tensor of bool, shape (B, C), optional
        n_times : torch.Tensor of int, shape (B,), optional
        sfreq : float, optional

        Returns
        -------
        torch.Tensor, shape (B, num_features)
        """
        if self.pooling == "cls":  # the last block computes the CLS token only (MAPEEncoder.forward_cls)
            return self.encoder.forward_cls(x, positions, channel_mask=channel_mask, n_times=n_times, sfreq=sfreq)
        out = self.encoder(x, positions, channel_mask=channel_mask, n_times=n_times, sfreq=sfreq)
        return pool_tokens(self.pooling, out, positions, self.pool)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features) -> (B, n_outputs)."""
        return self.head(self.head_drop(features))

    def forward(self, x: torch.Tensor, positions: torch.Tensor, *, channel_mask: torch.Tensor | None = None,
                n_times: torch.Tensor | None = None, sfreq: float | None = None) -> torch.Tensor:
        """Logits (or regression outputs), shape (B, n_outputs); inputs as :meth:`forward_features`."""
        return self.forward_head(self.forward_features(x, positions, channel_mask=channel_mask,
                                                       n_times=n_times, sfreq=sfreq))

    # ------------------------------------------------------------------ fine-tuning helpers
    def layer_id(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise learning-rate decay.

        0 for the patch embedder, position embedding and CLS token; ``i + 1`` for
        Transformer block ``i``; ``depth + 1`` for the final norm, the attention pool and the head.
        """
        depth = len(self.encoder.blocks)
        if name.startswith("encoder.blocks."):
            return int(name.split(".")[2]) + 1
        if name.startswith(("encoder.patch_embed", "encoder.pos_embed", "encoder.cls_token")):
            return 0
        return depth + 1

    @property
    def num_layers(self) -> int:
        """Layer ids run from 0 to ``num_layers - 1`` (see :meth:`layer_id`)."""
        return len(self.encoder.blocks) + 2

    def no_weight_decay(self) -> set[str]:
        return {"encoder.cls_token"}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_encoder(cls, encoder: MAPEEncoder, n_outputs: int, *, pooling: str = "mean",
                     head_dropout: float = 0.0, class_names: list[str] | None = None) -> MAPEClassifier:
        """A classifier whose encoder is a copy of ``encoder`` (weights included) and a new head."""
        model = cls(n_outputs=n_outputs, encoder=encoder.config, pooling=pooling, head_dropout=head_dropout,
                    class_names=class_names)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.to(next(encoder.parameters()).device)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, n_outputs: int | None = None,
                        pooling: str | None = None, head_dropout: float | None = None,
                        class_names: list[str] | None = None, **kwargs) -> MAPEClassifier:
        """Load a classifier, or build one on a pre-trained encoder.

        Parameters
        ----------
        pretrained_model_name_or_path : str | Path
            A folder or Hub repo written by ``MAPEClassifier.save_pretrained`` or by
            ``MAPEEncoder.save_pretrained`` (e.g. ``runs/pretrain/encoder`` or
            ``"eegfm/mape-encoder-base"``).
        n_outputs : int, optional
            Outputs of the head. From an encoder it is required; from a classifier a value
            different from the saved one replaces the head with a new one.
        pooling, head_dropout : optional
            Head settings (default: saved ones, or ``"mean"`` / 0 on an encoder).
        class_names : list of str, optional
            Names of the outputs (default: the saved ones, unless ``n_outputs`` replaces the head).
        **kwargs
            Passed to :meth:`HubMixin.from_pretrained` (``revision``, ``cache_dir``, ``token``,
            ``local_files_only``, ``map_location``, ``strict``).

        Returns
        -------
        MAPEClassifier
            In eval mode.
        """
        config, config_file = cls._read_config(pretrained_model_name_or_path, kwargs)
        head = {k: v for k, v in (("pooling", pooling), ("head_dropout", head_dropout)) if v is not None}
        saved_class = config.get(MODEL_CLASS_KEY) or ("MAPEClassifier" if "encoder" in config else "MAPEEncoder")
        if saved_class == "MAPEEncoder":  # an encoder checkpoint
            if n_outputs is None:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds a MAPEEncoder, not a classifier: pass "
                    "n_outputs=<number of classes or targets> to put a new head on it"
                )
            encoder = MAPEEncoder.from_pretrained(pretrained_model_name_or_path, **kwargs)
            return cls.from_encoder(encoder, n_outputs, class_names=class_names, **head).eval()
        if saved_class not in {base.__name__ for base in cls.__mro__}:
            raise ModelLoadError(f"{config_file} holds a {saved_class}, not a {cls.__name__} or MAPEEncoder: load "
                                 f"it with {saved_class}.from_pretrained({str(pretrained_model_name_or_path)!r}).")
        if n_outputs is not None and n_outputs != config.get("n_outputs"):  # new head: saved names do not apply
            model = super().from_pretrained(pretrained_model_name_or_path, **head, **kwargs)
            model.reset_head(n_outputs, class_names)
        else:
            names = {"class_names": class_names} if class_names is not None else {}
            model = super().from_pretrained(pretrained_model_name_or_path, **head, **names, **kwargs)
        return model.eval()

    @staticmethod
    def _read_config(source, hub_kwargs: dict) -> tuple[dict, Path]:
        source = str(source)
        if os.path.isdir(source):
            path = Path(source) / CONFIG_NAME
            if not path.is_file():
                raise ModelLoadError(f"{path} does not exist: {source!r} is not a folder written by save_pretrained()")
        else:
            keys = ("revision", "cache_dir", "force_download", "local_files_only", "token")
            path = Path(_download(source, CONFIG_NAME, **{k: hub_kwargs[k] for k in keys if k in hub_kwargs}))
        return read_config_file(path), path


def _check_class_names(class_names, n_outputs: int) -> list[str] | None:
    """``class_names`` as a list, or a one-line ValueError saying what is wrong with it."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)):
        raise ValueError(f"class_names must be a list of str (one per output) or None, got {class_names!r}")
    names = list(class_names)
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"class_names must be non-empty strings, got {names!r}")
    if len(names) != n_outputs:
        raise ValueError(f"class_names has {len(names)} names for n_outputs={n_outputs}: {names!r}; "
                         "give one name per output, in output order")
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"class_names must be distinct, {repeated} repeat: {names!r}")
    return names
