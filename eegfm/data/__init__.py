"""EEG data: batching recordings of mixed montages."""

from .collate import EEGBatch, pad_recordings

__all__ = ["EEGBatch", "pad_recordings"]
