"""Datasets bundled with eegfm: a small real-EEG sample that works offline."""

from .sample import list_sample_recordings, load_sample

__all__ = ["list_sample_recordings", "load_sample"]
