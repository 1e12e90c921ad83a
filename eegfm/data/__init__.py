"""EEG data: batching recordings of mixed montages."""

from .collate import EEGBatch, pad_recordings
from .recording import Recording

__all__ = ["EEGBatch", "Recording", "pad_recordings"]
