"""``Recording``: one continuous EEG recording as arrays, the common currency of eegfm.data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Recording"]


@dataclass
class Recording:
    """One continuous recording.

    Attributes
    ----------
    data : np.ndarray, shape (C, T), float32
        Signal in microvolts.
    ch_names : list of str
        Channel names, one per row of ``data``.
    sfreq : float
        Sampling rate in Hz.
    source : str
        Where it came from (a file path, optionally with ``#part`` such as ``#block3``).
    metadata : dict
        JSON-safe extras (dataset, subject, session, trial, labels, ...).
    """

    data: np.ndarray
    ch_names: list[str]
    sfreq: float
    source: str
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.data, np.ndarray):  # a list, a torch tensor, ...: one array
            self.data = np.asarray(self.data)
        if self.data.ndim != 2:
            raise ValueError(f"{self.source}: data must be (channels, times), got shape {self.data.shape}")
        if len(self.ch_names) != self.data.shape[0]:
            raise ValueError(
                f"{self.source}: {len(self.ch_names)} channel names for {self.data.shape[0]} channels"
            )
        if not (isinstance(self.sfreq, (int, float, np.number)) and np.isfinite(self.sfreq) and self.sfreq > 0):
            raise ValueError(f"{self.source}: sfreq must be a positive number of Hz, got sfreq={self.sfreq!r}")
        from ..montage import check_unique_channels

        check_unique_channels(self.ch_names, self.source)

    @property
    def n_times(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.n_times / self.sfreq

    def to_raw(self, *, verbose=None):
        """The recording as an ``mne.io.RawArray`` (volts, EEG channel types)."""
        import mne

        info = mne.create_info(list(self.ch_names), self.sfreq, ch_types="eeg", verbose=verbose)
        return mne.io.RawArray(self.data.astype(np.float64) * 1e-6, info, verbose=verbose)
