"""The MAPE encoder as a braindecode model, for ``braindecode.EEGClassifier`` (skorch) and MOABB.

Importing this module imports braindecode (``pip install "eegfm[data]"``); ``import eegfm``
never does.

:class:`EEGMirror` follows braindecode's model conventions: the signal arguments of
``EEGModuleMixin``, a last child named ``final_layer``, ``activation`` and ``drop_prob``
arguments, ``forward(x, return_features=True)``, ``reset_head``, ``get_config`` /
``from_config``, ``from_pretrained`` / ``push_to_hub``, ``torch.export`` and braindecode's
torchinfo table as ``str(model)``. :data:`MODEL_SUMMARY` is its row of braindecode's model
table (``braindecode/models/summary.csv``). It passes braindecode's generic model checks.

Example
-------
>>> import mne
>>> from braindecode import EEGClassifier
>>> from eegfm.finetune.braindecode import EEGMirror
>>> info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 200.0, "eeg")
>>> module = EEGMirror(n_outputs=2, chs_info=info["chs"], n_times=800, sfreq=200.0,
...                    encoder=dict(embed_dim=32, depth=1, num_heads=2, patch_size=100))
>>> clf = EEGClassifier(module, max_epochs=5)                                        # doctest: +SKIP
>>> clf.fit(X_microvolts.astype("float32"), y)                                       # doctest: +SKIP

A pre-trained eegfm encoder (local folder or Hub repo):
``EEGMirror.from_encoder("runs/pretrain/encoder", n_outputs=2, chs_info=..., n_times=..., sfreq=200)``.

braindecode's ``EEGClassifier`` passes ``chs_info`` and ``sfreq`` on from ``mne.Epochs`` only;
from a braindecode windows dataset take them with :func:`signal_kwargs`:
``EEGClassifier(EEGMirror, **signal_kwargs(windows_ds, prefix="module__"), ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import mne
import numpy as np
import torch
from torch import nn

from .._optional import import_braindecode
from ..hub import StrictLoadingMixin, hub_card
from ..model_card import ModelCardMixin
from ..models.classifier import ATTENTION_QUERIES, POOLINGS, MAPEClassifier, pool_tokens, pooled_width
from ..models.config import EncoderConfig
from ..models.encoder import MAPEEncoder
from ..modules.attention_pool import AttentionPool
from ..montage import proportion_coordinates

__all__ = ["EEGMirror", "MODEL_SUMMARY", "signal_kwargs"]

# One-line ImportError when braindecode is missing or its torchaudio cannot load (eegfm._optional).
EEGModuleMixin = import_braindecode("braindecode.models.base", needed_by="eegfm.finetune.braindecode").EEGModuleMixin

#: The rate MAPEEncoder expects by default (Hz): EEGMirror's ``sfreq`` when none is given.
DEFAULT_SFREQ = float(EncoderConfig.sfreq)

_CARD = hub_card()  # this project's links and licence, not braindecode's

#: Names of a checkpoint saved before the head was called ``final_layer`` -> current names.
_LEGACY_PREFIXES = (("model.encoder.", "encoder."), ("model.head.", "final_layer."))


def _digitised(chs_info) -> dict:
    """Head-frame positions (metres) of the channels whose ``loc`` holds one."""
    positions = {}
    for ch in chs_info:
        loc = np.asarray(ch.get("loc", np.zeros(12)), dtype=np.float64)[:3]
        if loc.shape == (3,) and np.isfinite(loc).all() and np.linalg.norm(loc) > 0:
            positions[ch["ch_name"]] = tuple(float(v) for v in loc)
    return positions


def _infos(data) -> list:
    """Every ``mne.Info`` that ``data`` (or the datasets it is made of) carries."""
    if isinstance(data, mne.Info):
        return [data]
    if isinstance(data, (mne.BaseEpochs, mne.io.BaseRaw)):
        return [data.info]
    for name in ("windows", "raw"):  # braindecode WindowsDataset / EEGWindowsDataset, RawDataset
        inner = getattr(data, name, None)
        if isinstance(inner, (mne.BaseEpochs, mne.io.BaseRaw)):
            return [inner.info]
    if isinstance(getattr(data, "datasets", None), (list, tuple)):  # BaseConcatDataset, ConcatDataset
        return [info for ds in data.datasets for info in _infos(ds)]
    if isinstance(data, torch.utils.data.Subset):
        return _infos(data.dataset)
    return []


def signal_kwargs(data, prefix: str = "") -> dict:
    """The signal arguments that braindecode's ``EEGClassifier`` does not take from a dataset.

    ``EEGClassifier`` infers ``n_chans``, ``n_times`` and ``n_outputs`` from any data, but
    ``chs_info`` and ``sfreq`` only from ``mne.Epochs``; braindecode's datasets carry both (an
    ``mne.Epochs`` or ``mne.io.Raw`` per recording), and :class:`EEGMirror` needs ``chs_info``.

    Parameters
    ----------
    data : mne.Info | mne.BaseEpochs | mne.io.BaseRaw | braindecode dataset
        A ``WindowsDataset``, ``EEGWindowsDataset``, ``RawDataset``, a ``BaseConcatDataset``
        of them (or a ``torch.utils.data.Subset`` of one).
    prefix : str
        Put before each key: ``"module__"`` gives ``EEGClassifier`` keyword arguments.

    Returns
    -------
    dict
        ``{prefix + "chs_info": list of dict (n_chans,), prefix + "sfreq": float}``.

    Raises
    ------
    ValueError
        ``data`` holds no channel info (plain arrays, tensors), or its recordings differ in
        channels or sampling rate.

    Examples
    --------
    >>> clf = EEGClassifier(EEGMirror, **signal_kwargs(windows_ds, prefix="module__"))  # doctest: +SKIP
    """
    infos = _infos(data)
    if not infos:
        raise ValueError(f"{type(data).__name__} carries no channel info; pass chs_info=info['chs'] "
                         "(or positions=) to EEGMirror yourself")
    first = infos[0]
    for info in infos[1:]:
        if info["ch_names"] != first["ch_names"] or info["sfreq"] != first["sfreq"]:
            raise ValueError(f"the recordings of {type(data).__name__} differ in channels or sampling rate "
                             f"({first['ch_names']} at {first['sfreq']} Hz vs {info['ch_names']} at "
                             f"{info['sfreq']} Hz); pick the channels and resample them alike first")
    return {f"{prefix}chs_info": first["chs"], f"{prefix}sfreq": float(first["sfreq"])}


#: EEGMirror's row of braindecode's model table (``braindecode/models/summary.csv``), same
#: columns; ``#Parameters`` is that of the ``get_#Parameters`` call (the default encoder).
MODEL_SUMMARY = {
    "Model": "EEGMirror",
    "Application": "General",
    "Type": "Prediction, Embedding",
    "Sampling Frequency (Hz)": 200,
    "Hyperparameters": "chs_info, n_outputs",
    "#Parameters": 5_806_594,
    "get_#Parameters": "EEGMirror(chs_info=<user>, n_outputs=2)",
    "Categorization": "Convolution,Foundation Model,Attention/Transformer,Channel",
    "Modality": "EEG",
}


# StrictLoadingMixin: braindecode loads with strict=False (a mismatched checkpoint loads silently);
# ModelCardMixin: eegfm's model card instead of huggingface_hub's boilerplate.
class EEGMirror(StrictLoadingMixin, ModelCardMixin, EEGModuleMixin, nn.Module, **_CARD):
    """MAPE encoder + classification head with braindecode's signal arguments.

    :bdg-success:`Convolution` :bdg-danger:`Foundation Model` :bdg-info:`Attention/Transformer`
    :bdg-dark-line:`Channel`

    A convolutional patch embedder, montage-agnostic position embeddings (MAPE: each
    channel's scalp position + the patch index) and a Transformer; the head reads the mean
    of the tokens, the CLS token, or both. The channel positions come from ``chs_info``
    (digitised ``loc`` when present, else the channel names on the standard 10-05 montage), or
    from ``positions``.

    Parameters
    ----------
    n_outputs, n_chans, chs_info, n_times, input_window_seconds
        braindecode's signal arguments. ``chs_info`` (or ``positions``) is required: MAPE
        embeds where each electrode is. The model takes any ``n_times`` (it is used for
        ``input_shape`` only).
    sfreq : float, optional
        Sampling rate of the input; it must equal the encoder's (``encoder.sfreq``).
        Default: ``n_times / input_window_seconds`` when both are given, else the encoder's
        rate, 200 Hz unless ``encoder`` says otherwise; ``model.sfreq`` returns it.
    encoder : EncoderConfig | dict, optional
        Settings of the :class:`eegfm.MAPEEncoder` (:class:`eegfm.EncoderConfig` or a dict of
        its fields; default: its defaults, with ``sfreq`` when a dict does not give one).
    pooling : {"mean", "cls", "cls+mean", "attention", "moments"}
        Features for the head (see :class:`eegfm.MAPEClassifier`).
    drop_prob : float
        Dropout on the features before ``final_layer``.
    activation : type of nn.Module
        Nonlinearity of the Transformer MLPs. MAPE encoders are pre-trained with the default,
        ``nn.GELU``; another one changes what a pre-trained encoder computes.
    input_scale : float
        Factor that turns the input into µV (1e6 when it is in volts, as MOABB and
        braindecode datasets give it unless scaled; default 1: already µV).
    positions : list of [x_p, y_p], optional
        Proportion coordinates of each channel, overriding ``chs_info`` (``n_chans`` defaults
        to their number).
    head_dropout : float, optional
        Former name of ``drop_prob`` (configs saved before it was renamed still load).

    Notes
    -----
    Children, in order: ``encoder`` (:class:`eegfm.MAPEEncoder`), ``head_drop`` (dropout),
    ``final_layer`` (``nn.Linear(num_features, n_outputs)``). :attr:`classifier` gives the same
    modules as an :class:`eegfm.MAPEClassifier` (eegfm's own API and checkpoint format).
    """

    #: Hub notes that braindecode appends to the docstring (its own say ``braindecode.models``).
    _HUB_NOTES_TEMPLATE = """
    .. rubric:: Hugging Face Hub integration

    ``model.push_to_hub("me/my-{name_lower}")``; ``{name}.from_pretrained("me/my-{name_lower}")``
    (``n_outputs=k`` rebuilds the head); ``model(x, return_features=True)["features"]``;
    ``model.reset_head(k)``; ``{name}.from_config(model.get_config())``. Import it with
    ``from eegfm.finetune.braindecode import {name}``.
    """

    #: Row of braindecode's model table: :data:`MODEL_SUMMARY`.
    model_summary: dict = MODEL_SUMMARY

    def __init__(self, n_outputs=None, n_chans=None, chs_info=None, n_times=None, input_window_seconds=None,
                 sfreq=None, encoder: EncoderConfig | Mapping | None = None, pooling: str = "mean",
                 drop_prob: float = 0.0, activation: type[nn.Module] = nn.GELU, input_scale: float = 1.0,
                 positions: list | None = None, head_dropout: float | None = None):
        encoder_sfreq = encoder.sfreq if isinstance(encoder, EncoderConfig) else dict(encoder or {}).get("sfreq")
        if sfreq is None and (n_times is None or input_window_seconds is None):
            # explicit: model.sfreq says what the encoder assumes
            sfreq = float(DEFAULT_SFREQ if encoder_sfreq is None else encoder_sfreq)
        if n_chans is None and chs_info is None and positions is not None:
            n_chans = len(positions)
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info, n_times=n_times,
                         input_window_seconds=input_window_seconds, sfreq=sfreq)
        del n_outputs, n_chans, chs_info, n_times, input_window_seconds, sfreq
        if encoder_sfreq is None:
            encoder = EncoderConfig.build(encoder, sfreq=float(self.sfreq))
        elif not math.isclose(float(encoder_sfreq), self.sfreq, rel_tol=1e-6):
            raise ValueError(f"sfreq={float(self.sfreq)} differs from encoder['sfreq']={encoder_sfreq}; "
                             f"resample the data to {encoder_sfreq} Hz")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling=!r}")
        if head_dropout is not None:
            if drop_prob not in (0.0, head_dropout):
                raise ValueError(f"{drop_prob=} and {head_dropout=} disagree; head_dropout is drop_prob's old "
                                 "name, pass drop_prob only")
            drop_prob = head_dropout
        if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
            raise TypeError(f"activation must be an nn.Module class such as nn.GELU, got {activation!r}")
        coords = self._channel_coordinates(positions)
        if self._n_outputs is None:
            raise ValueError("EEGMirror needs n_outputs= (number of classes or regression targets); EEGClassifier "
                             "infers it from y, else pass module__n_outputs=")

        self.pooling, self.drop_prob = pooling, float(drop_prob)
        self.activation = activation
        self.input_scale = float(input_scale)
        self.encoder = MAPEEncoder(encoder)
        if activation is not nn.GELU:
            for block in self.encoder.blocks:
                for index, layer in enumerate(block.mlp):
                    if isinstance(layer, nn.GELU):
                        block.mlp[index] = activation()
        dim = self.encoder.embed_dim
        self.pool = (AttentionPool(dim, ATTENTION_QUERIES, num_heads=4 if dim % 4 == 0 else 1)
                     if pooling == "attention" else None)
        self.num_features = pooled_width(pooling, dim, self.pool)
        self.head_drop = nn.Dropout(self.drop_prob)
        self.final_layer = self._new_head(self.n_outputs)
        self.register_buffer("channel_positions", torch.from_numpy(coords), persistent=False)

    def get_config(self) -> dict:
        """braindecode's config (every constructor argument, JSON-safe), with the encoder's resolved
        settings (:class:`eegfm.EncoderConfig` as a dict)."""
        return {**super().get_config(), "encoder": self.encoder.get_config()}

    def _channel_coordinates(self, positions) -> np.ndarray:
        """(n_chans, 2) float32 proportion coordinates from ``positions`` or ``chs_info``."""
        if positions is not None:
            coords = np.asarray(positions, dtype=np.float32)
            if coords.shape != (self.n_chans, 2):
                raise ValueError(f"positions must be ({self.n_chans}, 2) proportion coordinates, got {coords.shape}")
            return coords
        if self._chs_info is None:
            raise ValueError("EEGMirror needs chs_info=info['chs'] (or positions=) to know where each channel is: "
                             "MAPE embeds electrode positions, n_chans alone is not enough (EEGClassifier on a "
                             "braindecode dataset: **eegfm.finetune.braindecode.signal_kwargs(ds, 'module__'))")
        names = [ch["ch_name"] for ch in self.chs_info]
        return np.asarray(proportion_coordinates(names, positions=_digitised(self.chs_info) or None),
                          dtype=np.float32)

    def _new_head(self, n_outputs: int) -> nn.Linear:
        head = nn.Linear(self.num_features, n_outputs)
        nn.init.trunc_normal_(head.weight, std=0.02)  # as MAPEClassifier's
        nn.init.zeros_(head.bias)
        return head

    @classmethod
    def from_encoder(cls, encoder: str | MAPEEncoder, *, n_outputs: int, chs_info=None, n_times=None,
                     sfreq=None, pooling: str = "mean", drop_prob: float = 0.0, input_scale: float = 1.0,
                     positions: list | None = None, **hub_kwargs) -> EEGMirror:
        """Wrap a pre-trained eegfm encoder (a MAPEEncoder, a folder or a Hub repo id) with a new head."""
        if not isinstance(encoder, MAPEEncoder):
            encoder = MAPEEncoder.from_pretrained(encoder, **hub_kwargs)
        if sfreq is not None and float(sfreq) != float(encoder.sfreq):
            raise ValueError(f"{sfreq=} Hz but the pre-trained encoder expects {encoder.sfreq} Hz; resample the data")
        model = cls(n_outputs=n_outputs, chs_info=chs_info, n_times=n_times, sfreq=encoder.sfreq,
                    encoder=encoder.config, pooling=pooling, drop_prob=drop_prob,
                    input_scale=input_scale, positions=positions)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.to(next(encoder.parameters()).device)

    @property
    def classifier(self) -> MAPEClassifier:
        """The same modules as an :class:`eegfm.MAPEClassifier` (weights shared, not copied).

        For eegfm's own API: ``forward_features``, ``save_pretrained`` (eegfm's checkpoint
        format, which ``MAPEClassifier.from_pretrained`` and ``eegfm finetune`` read).
        """
        if self.activation is not nn.GELU:
            raise ValueError(f"classifier needs activation=nn.GELU: a MAPEClassifier cannot record "
                             f"activation={self.activation.__name__}; use this EEGMirror itself")
        with torch.device("meta"):  # build the shell without allocating, then share our modules
            shell = MAPEClassifier(n_outputs=self.n_outputs, encoder=self.encoder.config,
                                   pooling=self.pooling, head_dropout=self.drop_prob)
        shell.encoder, shell.head_drop, shell.head = self.encoder, self.head_drop, self.final_layer
        shell.training = self.training  # not .train(): it would reset the shared modules' modes
        return shell

    def reset_head(self, n_outputs: int) -> None:
        """New ``final_layer`` for ``n_outputs`` outputs (``from_pretrained(..., n_outputs=k)`` calls it)."""
        if not isinstance(n_outputs, int) or n_outputs < 1:
            raise ValueError(f"n_outputs must be a positive int, got {n_outputs=!r}")
        self.final_layer = self._new_head(n_outputs).to(self.final_layer.weight.device)
        self._set_n_outputs(n_outputs)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor | dict:
        """Classify, or return the encoder's features.

        Parameters
        ----------
        x : torch.Tensor, shape (B, n_chans, T)
            EEG at ``self.sfreq``, in µV once multiplied by ``input_scale``; any ``T`` of at
            least one patch (samples past the last whole patch are dropped).
        return_features : bool
            Return braindecode's feature dict instead of the logits.

        Returns
        -------
        torch.Tensor, shape (B, n_outputs)
            Logits, by default.
        dict
            With ``return_features=True``: ``"features"`` (B, n_chans * K, D), one token per
            (channel, patch), channel-major, ``K = T // patch_size``; ``"cls_token"`` (B, D);
            ``"pooled"`` (B, num_features), what ``final_layer`` reads (before dropout).
        """
        if x.ndim != 3 or x.shape[1] != self.channel_positions.shape[0]:
            raise ValueError(f"x must be (batch, n_chans={self.channel_positions.shape[0]}, n_times), "
                             f"got {tuple(x.shape)}")
        if self.input_scale != 1.0:
            x = x * self.input_scale
        # .forward, not __call__: hooks on the encoder itself would see its EncoderOutput, which
        # torchinfo (braindecode's str(model)) cannot size; its layers are all called as usual.
        positions = self.channel_positions.to(x.dtype)
        if self.pooling == "cls" and not return_features:  # the last block computes the CLS token only
            return self.final_layer(self.head_drop(self.encoder.forward_cls(x, positions)))
        out = self.encoder.forward(x, positions)
        pooled = pool_tokens(self.pooling, out, positions, self.pool)
        if return_features:
            return {"features": out.tokens, "cls_token": out.cls, "pooled": pooled}
        return self.final_layer(self.head_drop(pooled))

    def load_state_dict(self, state_dict, *args, **kwargs):
        """As ``nn.Module.load_state_dict``; also reads checkpoints saved when the head was
        ``model.head`` and the encoder ``model.encoder``."""
        renamed = {}
        for key, value in state_dict.items():
            for old, new in _LEGACY_PREFIXES:
                if key.startswith(old):
                    key = new + key.removeprefix(old)
                    break
            renamed[key] = value
        return super().load_state_dict(renamed, *args, **kwargs)

    def layer_id(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay (as :meth:`MAPEClassifier.layer_id`):
        0 for the patch embedder, position embedding and CLS token, ``i + 1`` for Transformer
        block ``i``, ``num_layers - 1`` for the final norm and ``final_layer``."""
        name = name.removeprefix("model.")  # names of the former layout
        if name.startswith("encoder.blocks."):
            return int(name.split(".")[2]) + 1
        if name.startswith(("encoder.patch_embed", "encoder.pos_embed", "encoder.cls_token")):
            return 0
        return self.num_layers - 1

    @property
    def num_layers(self) -> int:
        """Layer ids run from 0 to ``num_layers - 1`` (see :meth:`layer_id`)."""
        return len(self.encoder.blocks) + 2

    def no_weight_decay(self) -> set[str]:
        return {"encoder.cls_token"}
