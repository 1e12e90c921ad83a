"""Ready-made EEG datasets: what to read, where :mod:`eegfm.data` is how to read anything.

- :mod:`eegfm.datasets.sample`: a small real-EEG sample bundled with the package (works offline):
  :func:`load_sample`, :func:`list_sample_recordings`.
- :mod:`eegfm.datasets.paper`: the licensed datasets named by the paper, read from a local copy
  (nothing is downloaded): :func:`load_seed_dv`, :func:`load_seed`, :func:`load_faced` yield
  recordings for :class:`eegfm.data.EEGCorpus`; :func:`seed_dv_clips` cuts SEED-DV into the 2-s
  clips paired with its videos.
"""

from .paper import (
    FACED_CHANNELS,
    SEED_CHANNELS,
    SeedDVClip,
    UnsafePickleError,
    load_faced,
    load_seed,
    load_seed_dv,
    seed_dv_clip_onset,
    seed_dv_clips,
)
from .sample import list_sample_recordings, load_sample

__all__ = [
    "FACED_CHANNELS",
    "SEED_CHANNELS",
    "SeedDVClip",
    "UnsafePickleError",
    "list_sample_recordings",
    "load_faced",
    "load_sample",
    "load_seed",
    "load_seed_dv",
    "seed_dv_clip_onset",
    "seed_dv_clips",
]
