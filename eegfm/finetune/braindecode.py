"""The MAPE encoder as a braindecode model, for ``braindecode.EEGClassifier`` (skorch) and MOABB.

Importing this module imports braindecode (``pip install "eegfm[data]"``); ``import eegfm``
never does.

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
"""

from __future__ import annotations

import numpy as np
import torch
from braindecode.models.base import EEGModuleMixin
from torch import nn

from ..models.classifier import MAPEClassifier
from ..models.encoder import MAPEEncoder
from ..montage import proportion_coordinates

__all__ = ["EEGMirror"]


def _digitised(chs_info) -> dict:
    """Head-frame positions (metres) of the channels whose ``loc`` holds one."""
    positions = {}
    for ch in chs_info:
        loc = np.asarray(ch.get("loc", np.zeros(12)), dtype=np.float64)[:3]
        if loc.shape == (3,) and np.isfinite(loc).all() and np.linalg.norm(loc) > 0:
            positions[ch["ch_name"]] = tuple(float(v) for v in loc)
    return positions


class EEGMirror(EEGModuleMixin, nn.Module):
    """MAPE encoder + classification head with braindecode's signal arguments.

    The channel positions that MAPE needs come from ``chs_info`` (digitised ``loc`` when
    present, else the channel names on the standard 10-05 montage), or from ``positions``.

    Parameters
    ----------
    n_outputs, n_chans, chs_info, n_times, input_window_seconds, sfreq
        braindecode's signal arguments. ``chs_info`` (or ``positions``) is required: MAPE
        embeds where each electrode is. ``sfreq`` must equal the encoder's rate (200 Hz by
        default); the model takes any ``n_times`` (it is used for ``input_shape`` only).
    encoder : dict, optional
        :class:`eegfm.MAPEEncoder` constructor arguments (default: the encoder's defaults with
        ``sfreq``).
    pooling : {"mean", "cls", "cls+mean"}
        Features for the head (see :class:`eegfm.MAPEClassifier`).
    head_dropout : float
    input_scale : float
        Factor that turns the input into µV (1e6 when it is in volts, as MOABB and
        braindecode datasets give it unless scaled; default 1: already µV).
    positions : list of [x_p, y_p], optional
        Proportion coordinates of each channel, overriding ``chs_info``.
    """

    def __init__(self, n_outputs=None, n_chans=None, chs_info=None, n_times=None, input_window_seconds=None,
                 sfreq=None, encoder: dict | None = None, pooling: str = "mean", head_dropout: float = 0.0,
                 input_scale: float = 1.0, positions: list | None = None):
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info, n_times=n_times,
                         input_window_seconds=input_window_seconds, sfreq=sfreq)
        del n_outputs, n_chans, chs_info, n_times, input_window_seconds, sfreq
        if positions is not None:
            coords = np.asarray(positions, dtype=np.float32)
            if coords.shape != (self.n_chans, 2):
                raise ValueError(f"positions must be ({self.n_chans}, 2) proportion coordinates, got {coords.shape}")
        else:
            if self._chs_info is None:
                raise ValueError("EEGMirror needs chs_info=info['chs'] (or positions=) to know where each "
                                 "channel is: MAPE embeds electrode positions, n_chans alone is not enough")
            names = [ch["ch_name"] for ch in self.chs_info]
            coords = np.asarray(proportion_coordinates(names, positions=_digitised(self.chs_info) or None),
                                dtype=np.float32)
        encoder = dict(encoder or {})
        rate = float(self._sfreq) if self._sfreq is not None else float(encoder.get("sfreq", 200.0))
        if "sfreq" in encoder and float(encoder["sfreq"]) != rate:
            raise ValueError(f"sfreq={rate} differs from encoder['sfreq']={encoder['sfreq']}; resample the data "
                             f"to {encoder['sfreq']} Hz")
        encoder["sfreq"] = rate
        self.encoder_config, self.pooling, self.head_dropout = encoder, pooling, head_dropout
        self.input_scale = float(input_scale)
        self.model = MAPEClassifier(n_outputs=self.n_outputs, encoder=encoder, pooling=pooling,
                                    head_dropout=head_dropout)
        self.register_buffer("channel_positions", torch.from_numpy(coords), persistent=False)

    @classmethod
    def from_encoder(cls, encoder: str | MAPEEncoder, *, n_outputs: int, chs_info=None, n_times=None,
                     sfreq=None, pooling: str = "mean", head_dropout: float = 0.0, input_scale: float = 1.0,
                     positions: list | None = None, **hub_kwargs) -> EEGMirror:
        """Wrap a pre-trained eegfm encoder (a MAPEEncoder, a folder or a Hub repo id) with a new head."""
        if not isinstance(encoder, MAPEEncoder):
            encoder = MAPEEncoder.from_pretrained(encoder, **hub_kwargs)
        if sfreq is not None and float(sfreq) != float(encoder.sfreq):
            raise ValueError(f"{sfreq=} Hz but the pre-trained encoder expects {encoder.sfreq} Hz; resample the data")
        model = cls(n_outputs=n_outputs, chs_info=chs_info, n_times=n_times, sfreq=encoder.sfreq,
                    encoder=encoder.get_config(), pooling=pooling, head_dropout=head_dropout,
                    input_scale=input_scale, positions=positions)
        model.model.encoder.load_state_dict(encoder.state_dict())
        return model

    @property
    def classifier(self) -> MAPEClassifier:
        """The wrapped :class:`eegfm.MAPEClassifier` (save it with ``save_pretrained``)."""
        return self.model

    def reset_head(self, n_outputs: int) -> None:
        """New head for ``n_outputs`` outputs (``from_pretrained(..., n_outputs=k)`` calls it)."""
        self.model.reset_head(n_outputs)
        self._set_n_outputs(n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_chans, n_times) -> logits (B, n_outputs)."""
        if x.ndim != 3 or x.shape[1] != self.channel_positions.shape[0]:
            raise ValueError(f"x must be (batch, n_chans={self.channel_positions.shape[0]}, n_times), got {tuple(x.shape)}")
        if self.input_scale != 1.0:
            x = x * self.input_scale
        return self.model(x, self.channel_positions.to(x.dtype))

    def __str__(self) -> str:
        # braindecode's __str__ runs torchinfo, which cannot size the encoder's EncoderOutput
        return nn.Module.__repr__(self)

    def layer_id(self, name: str) -> int:
        return self.model.layer_id(name.removeprefix("model."))

    @property
    def num_layers(self) -> int:
        return self.model.num_layers
