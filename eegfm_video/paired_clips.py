"""The on-disk format of EEG paired with video clips, the data the ``eegfm-video`` CLI reads.

:class:`PairedClips` holds the clips in memory and reads and writes a directory of plain numpy
files (no pickles), :data:`FORMAT_FILES`:

- ``eeg.npy``: (N, C, T) float32, µV;
- ``videos.npy``: (N, F, H, W, 3) uint8, RGB frames;
- ``labels.npy``: (N,) int64, the class of each clip;
- ``split.npy``: (N,) unicode, "train" or "test";
- ``meta.json``: channel names, sampling rate, clip ids, class names.

Any data set written in it works: SEED-DV cut by :func:`eegfm.datasets.seed_dv_clips`
(the SEED-DV recipe in the repository writes it), or the synthetic moving-shapes set of
:func:`eegfm_video.synthetic.make_synthetic_clips`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_FILES", "PairedClips"]

#: The files of a paired-clips directory (all required).
FORMAT_FILES = ("eeg.npy", "videos.npy", "labels.npy", "split.npy", "meta.json")


@dataclass
class PairedClips:
    """EEG segments paired with the video clips they were recorded with.

    Attributes
    ----------
    eeg : numpy.ndarray, shape (N, C, T), float32
        EEG in µV at ``sfreq``.
    ch_names : list of str, length C
    sfreq : float
    videos : numpy.ndarray, shape (N, F, H, W, 3), uint8
        The clips' frames (RGB).
    labels : numpy.ndarray, shape (N,), int64
        Class of each clip (``class_names[label]``).
    split : numpy.ndarray, shape (N,), str
        "train" or "test".
    clip_ids : list of str, length N
    class_names : list of str
    """

    eeg: np.ndarray
    ch_names: list[str]
    sfreq: float
    videos: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    clip_ids: list[str]
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.eeg)
        if self.eeg.ndim != 3 or self.eeg.shape[1] != len(self.ch_names):
            raise ValueError(f"eeg must have shape (clips, {len(self.ch_names)} channels, times), got {self.eeg.shape}")
        if self.videos.ndim != 5 or self.videos.shape[-1] != 3 or self.videos.dtype != np.uint8:
            raise ValueError(f"videos must be uint8 of shape (clips, frames, height, width, 3), got "
                             f"{self.videos.dtype} {self.videos.shape}")
        for name in ("videos", "labels", "split", "clip_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows but eeg has {n}")
        bad = sorted(set(np.asarray(self.split).tolist()) - {"train", "test"})
        if bad:
            raise ValueError(f"split values must be 'train' or 'test', got {bad}")

    def __len__(self) -> int:
        return len(self.eeg)

    def positions(self) -> np.ndarray:
        """Proportion coordinates of the channels, shape (C, 2), float32."""
        from eegfm import proportion_coordinates

        return np.asarray(proportion_coordinates(self.ch_names), dtype=np.float32)

    def subset(self, split: str) -> "PairedClips":
        """The clips of one split ("train" or "test")."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        keep = np.flatnonzero(np.asarray(self.split) == split)
        return PairedClips(self.eeg[keep], list(self.ch_names), self.sfreq, self.videos[keep], self.labels[keep],
                           np.asarray(self.split)[keep], [self.clip_ids[i] for i in keep], list(self.class_names))

    def clips(self) -> dict[str, np.ndarray]:
        """``clip_id -> frames (F, H, W, 3)``: the input of :func:`eegfm_video.targets.precompute_targets`."""
        return dict(zip(self.clip_ids, self.videos))

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the directory format (see the module docstring); returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "eeg.npy", self.eeg.astype(np.float32))
        np.save(directory / "videos.npy", self.videos)
        np.save(directory / "labels.npy", np.asarray(self.labels, dtype=np.int64))
        np.save(directory / "split.npy", np.asarray(self.split, dtype=np.str_))
        meta = {"ch_names": list(self.ch_names), "sfreq": float(self.sfreq), "clip_ids": list(self.clip_ids),
                "class_names": list(self.class_names)}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, *, mmap: bool = False) -> "PairedClips":
        """Read a directory written by :meth:`save` (``mmap``: memory-map the arrays)."""
        directory = Path(directory)
        missing = [name for name in FORMAT_FILES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} is not a paired-clips directory: missing {missing} (expected "
                                    f"{', '.join(FORMAT_FILES)}, as written by PairedClips.save)")
        meta = json.loads((directory / "meta.json").read_text())
        mode = "r" if mmap else None
        return cls(eeg=np.load(directory / "eeg.npy", mmap_mode=mode, allow_pickle=False),
                   ch_names=list(meta["ch_names"]), sfreq=float(meta["sfreq"]),
                   videos=np.load(directory / "videos.npy", mmap_mode=mode, allow_pickle=False),
                   labels=np.load(directory / "labels.npy", allow_pickle=False),
                   split=np.load(directory / "split.npy", allow_pickle=False),
                   clip_ids=list(meta["clip_ids"]), class_names=list(meta.get("class_names", [])))
