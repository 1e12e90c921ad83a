"""Labelled EEG examples for fine-tuning: signals of any montage, positions, labels, groups.

Fine-tuning sets are small next to pre-training corpora, so :class:`LabeledEEG` keeps a list
of per-example arrays (views of the memory-mapped cache when built from an
:class:`eegfm.data.EEGCorpus`, arrays in RAM when built from ``mne.Epochs`` or numpy) and pads
each batch with :func:`eegfm.data.collate.pad_into`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.collate import EEGBatch, pad_into
from ..modules import input_stage
from ..montage import proportion_coordinates

__all__ = ["LabeledBatch", "LabeledEEG"]


@dataclass
class LabeledBatch:
    """A padded batch and its labels; unpacks as ``eeg, labels = batch``.

    Attributes
    ----------
    eeg : EEGBatch
        ``x`` (B, C, T), ``positions`` (B, C, 2), ``channel_mask`` (B, C), ``n_times`` (B,).
    labels : torch.Tensor
        (B,) int64 classes or (B, n_targets) float32 targets.
    """

    eeg: EEGBatch
    labels: torch.Tensor

    def __iter__(self):
        return iter((self.eeg, self.labels))

    def to(self, device, non_blocking: bool = False) -> LabeledBatch:
        """Both parts on ``device`` (see :meth:`EEGBatch.to`)."""
        return LabeledBatch(self.eeg.to(device, non_blocking), self.labels.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> LabeledBatch:
        """Both parts in page-locked memory (``DataLoader(pin_memory=True)`` calls it)."""
        return LabeledBatch(self.eeg.pin_memory(), self.labels.pin_memory())


class LabeledEEG(torch.utils.data.Dataset):
    """Labelled EEG examples.

    Parameters
    ----------
    signals : sequence of array-like, each (C_i, T_i)
        EEG in µV at ``sfreq`` (montages and lengths may differ between examples).
    positions : sequence of array-like, each (C_i, 2)
        Proportion coordinates (:func:`eegfm.proportion_coordinates`).
    labels : array-like, shape (N,) or (N, n_targets)
        Integer classes ``0..n_classes-1``, or float regression targets.
    sfreq : float
        Sampling rate of every signal.
    groups : array-like, shape (N,), optional
        Who each example comes from (subject ids), for cross-subject splits.
    classes : sequence of str, optional
        Name of each class index.

    Each item is a dict: ``x`` (C, T) float32, ``positions`` (C, 2), ``label``, ``group``.
    """

    def __init__(self, signals: Sequence, positions: Sequence, labels, *, sfreq: float, groups=None,
                 classes: Sequence[str] | None = None):
        n = len(signals)
        if len(positions) != n:
            raise ValueError(f"signals ({n}) and positions ({len(positions)}) must have one entry per example")
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} entries for {n} examples")
        if labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and not np.isfinite(labels).all()):
            raise ValueError(f"labels must be integer classes or finite floats, got dtype {labels.dtype}")
        for i, (sig, pos) in enumerate(zip(signals, positions)):
            if np.ndim(sig) != 2 or np.shape(pos) != (np.shape(sig)[0], 2):
                raise ValueError(f"example {i}: signal must be (C, T) with positions (C, 2), got "
                                 f"{np.shape(sig)} and {np.shape(pos)}")
        self.signals = list(signals)
        self.positions = [np.asarray(p, dtype=np.float32) for p in positions]
        self.labels = labels.astype(np.int64) if labels.dtype.kind in "iu" else labels.astype(np.float32)
        self.groups = np.asarray(groups) if groups is not None else np.zeros(n, dtype=np.int64)
        if len(self.groups) != n:
            raise ValueError(f"groups has {len(self.groups)} entries for {n} examples")
        self.sfreq = float(sfreq)
        self.classes = list(classes) if classes is not None else None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, X, y, ch_names: Sequence[str], *, sfreq: float, groups=None, classes=None,
                    scale: float = 1.0, positions=None) -> LabeledEEG:
        """From one montage: ``X`` (N, C, T) times ``scale`` must give µV (``scale=1e6`` for volts).

        Positions come from ``ch_names`` (or ``positions`` (C, 2) when given).
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"X must be (examples, channels, times), got shape {X.shape}")
        if len(ch_names) != X.shape[1]:
            raise ValueError(f"{len(ch_names)} ch_names for X with {X.shape[1]} channels")
        pos = np.asarray(positions if positions is not None else proportion_coordinates(list(ch_names)),
                         dtype=np.float32)
        if scale != 1.0:
            X = X * np.float32(scale)
        return cls(list(X), [pos] * len(X), y, sfreq=sfreq, groups=groups, classes=classes)

    @classmethod
    def from_epochs(cls, epochs, labels=None, *, groups=None) -> LabeledEEG:
        """From ``mne.Epochs`` (EEG channels only, volts -> µV, positions from ``epochs.info``).

        ``labels`` default: the event codes mapped to 0..n-1 in the order of
        ``epochs.event_id``'s values; class names are its keys.
        """
        picked = epochs.copy().pick("eeg")
        X = picked.get_data(copy=False)
        positions = np.asarray(proportion_coordinates(picked.info), dtype=np.float32)
        classes = None
        if labels is None:
            codes = sorted(picked.event_id.items(), key=lambda kv: kv[1])
            index = {code: i for i, (_, code) in enumerate(codes)}
            labels = np.array([index[c] for c in picked.events[:, 2]], dtype=np.int64)
            classes = [name for name, _ in codes]
        return cls.from_arrays(X, labels, picked.ch_names, sfreq=picked.info["sfreq"], groups=groups,
                               classes=classes, scale=1e6, positions=positions)

    @classmethod
    def from_corpus(cls, corpus, seconds: float, label: str | Callable[[dict], object], *,
                    stride_seconds: float | None = None, classes: Sequence[str] | None = None,
                    group: str | None = "subject") -> LabeledEEG:
        """Windows of a preprocessed :class:`eegfm.data.EEGCorpus`, labelled from recording metadata.

        Parameters
        ----------
        corpus : EEGCorpus
        seconds, stride_seconds : float
            Window length and hop.
        label : str or callable
            A metadata key (e.g. ``"task"`` for BIDS) or ``metadata -> label``. String labels
            become class indices in the order of ``classes`` (default: sorted).
        group : str, optional
            Metadata key that names the subject (default ``"subject"``).
        """
        windows = corpus.windows(seconds, stride_seconds)
        metas = [e.meta.get("metadata", {}) for e in corpus.entries]
        get = label if callable(label) else (lambda m: m.get(label))
        raw_labels = [get(metas[windows.entry_of(i)]) for i in range(len(windows))]
        missing = sorted({windows.sources[windows.entry_of(i)] for i, v in enumerate(raw_labels) if v is None})
        if missing:
            raise ValueError(f"no label {label!r} in the metadata of {len(missing)} recording(s), e.g. {missing[0]}")
        if all(isinstance(v, str) for v in raw_labels):
            names = list(classes) if classes is not None else sorted(set(raw_labels))
            unknown = sorted(set(raw_labels) - set(names))
            if unknown:
                raise ValueError(f"labels {unknown} are not in classes={names}")
            labels = np.array([names.index(v) for v in raw_labels], dtype=np.int64)
        else:
            names, labels = classes, np.asarray(raw_labels)
        groups = np.array([str(metas[windows.entry_of(i)].get(group, "")) for i in range(len(windows))]) \
            if group else None
        signals, positions = [], []
        for i in range(len(windows)):
            item = windows[i]
            signals.append(item["x"])
            positions.append(item["positions"])
        return cls(signals, positions, labels, sfreq=windows.sfreq, groups=groups, classes=names)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, index: int) -> dict:
        return {"x": np.asarray(self.signals[index], dtype=np.float32), "positions": self.positions[index],
                "label": self.labels[index], "group": self.groups[index]}

    def check_inputs(self, patch_size: int | None = None, *, name: str = "example") -> None:
        """Raise for an example the encoder would turn into garbage, naming it: what
        :func:`eegfm.modules.input_stage.check_finite_inputs` refuses (NaN/Inf samples or
        positions, volts, positions in another unit, fewer samples than one ``patch_size``), run on
        the CPU once per example (about 0.2 ms for 64 channels x 800 samples).

        ``eegfm.finetune`` calls it before training, so that its training steps need no check of
        their own (no device-to-host sync per step).
        """
        for index in range(len(self)):
            item = self[index]
            x = torch.tensor(item["x"])[None]  # (1, C, T), a copy: signals may be read-only memory maps
            positions = torch.tensor(item["positions"])[None]  # (1, C, 2)
            try:
                input_stage.check_finite_inputs(x, positions, torch.ones(x.shape[:2], dtype=torch.bool),
                                                torch.tensor([x.shape[-1]]), patch_size)
            except ValueError as err:
                raise ValueError(f"{name} {index}: {err}") from None

    @property
    def n_classes(self) -> int:
        """Number of classes (``max label + 1``; integer labels only)."""
        if self.labels.dtype.kind not in "iu":
            raise ValueError("n_classes is defined for integer class labels, these are regression targets")
        return len(self.classes) if self.classes else int(self.labels.max()) + 1

    def subset(self, indices) -> LabeledEEG:
        """The examples at ``indices`` (views, no copy of the signals)."""
        indices = np.asarray(indices, dtype=np.int64)
        return LabeledEEG([self.signals[i] for i in indices], [self.positions[i] for i in indices],
                          self.labels[indices], sfreq=self.sfreq, groups=self.groups[indices], classes=self.classes)

    def split_by_group(self, test_groups: Sequence) -> tuple[LabeledEEG, LabeledEEG]:
        """(examples of other groups, examples of ``test_groups``): a cross-subject split."""
        test = np.isin(self.groups.astype(str), [str(g) for g in test_groups])
        if not test.any():
            raise ValueError(f"none of test_groups={list(test_groups)} is in the data's groups "
                             f"{sorted(set(self.groups.astype(str).tolist()))}")
        return self.subset(np.flatnonzero(~test)), self.subset(np.flatnonzero(test))

    def batch(self, indices) -> LabeledBatch:
        """Pad the examples at ``indices`` into one :class:`LabeledBatch`."""
        indices = np.asarray(indices, dtype=np.int64)
        eeg = pad_into([self.signals[i] for i in indices], [self.positions[i] for i in indices])
        return LabeledBatch(eeg, torch.from_numpy(self.labels[indices]))

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0, start: int = 0,
                drop_last: bool = False, rank: int = 0, world_size: int = 1) -> Iterator[LabeledBatch]:
        """Batches in order (or shuffled by ``seed + epoch``), from batch ``start`` on.

        With ``world_size > 1`` (DDP) every process gets the same number of batches: process
        ``rank`` takes items ``rank::world_size`` of each global batch of ``batch_size``.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got {rank=}, {world_size=}")
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for begin in range(start * batch_size, stop, batch_size):
            chunk = order[begin:begin + batch_size][rank::world_size]
            if len(chunk):
                yield self.batch(chunk)

    def drop_channels(self, fraction: float, *, seed: int = 0) -> LabeledEEG:
        """A copy where each example keeps a random ``1 - fraction`` of its channels (at least one).

        The channel-impaired test of the paper's Table 3: the montage-agnostic model sees only
        the remaining electrodes, with their positions.
        """
        if not 0 <= fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {fraction=}")
        rng = np.random.default_rng(seed)
        signals, positions = [], []
        for sig, pos in zip(self.signals, self.positions):
            n = len(pos)
            keep = np.sort(rng.permutation(n)[:max(1, round(n * (1 - fraction)))])
            signals.append(np.asarray(sig)[keep])
            positions.append(pos[keep])
        return LabeledEEG(signals, positions, self.labels, sfreq=self.sfreq, groups=self.groups, classes=self.classes)
