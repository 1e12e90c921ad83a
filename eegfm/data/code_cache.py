"""Frozen-tokenizer codes of every window, computed once in float32 and cached beside the recordings.

Masked pre-training predicts, for every token, the code a frozen
:class:`~eegfm.NeuralTokenizer` gives it. Those targets depend only on the window and the
tokenizer's weights, so they are computed once per window, written next to the recording
cache and reused by every epoch and every later run, instead of running the tokenizer on
every step (a full extra encoder pass per step)::

    <cache_dir>/codes/<tokenizer hash>-p<patch>-w<window>-s<stride>/<recording entry id>.npy

Each file holds one recording's codes, shape (n_windows, C*K), int16 (int32 for codebooks
over 32767 codes), channel-major like the encoder's tokens. The folder name carries the
sha256 of the tokenizer's weights and config (:func:`tokenizer_fingerprint`) and the window
spec; the recording entry id already carries the source file and the preprocessing. So a
cache hit means the same samples, the same windows and the same tokenizer, and codes of
another tokenizer are never read. ``spec.json`` in the folder repeats the full hash and is
checked on open. Files are written atomically (:func:`eegfm._fsutil.atomic_write`); opening
the folder removes the temporary files of killed writers, and a full disk raises an OSError
naming the file.

The tokenizer always runs in float32 outside autocast here (in bf16 about 7 % of the codes
change).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
from ..progress import progress_bar

from .._fsutil import ATOMIC_TMP, atomic_write, clean_stale_tmp
from .collate import EEGBatch
from .npy_map import open_npy_map
from .windows import WindowDataset

__all__ = ["CodedWindows", "cache_codes", "tokenizer_fingerprint"]

logger = logging.getLogger("eegfm.data")

_DISK_HINT = "free space or point cache_dir to a larger disk"


def tokenizer_fingerprint(tokenizer: torch.nn.Module) -> str:
    """sha256 (hex) of a tokenizer's class, config and every tensor of its ``state_dict``.

    Two tokenizers share a fingerprint only if they hold bit-identical weights and buffers.
    """
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    config = tokenizer.get_config() if callable(getattr(tokenizer, "get_config", None)) else None
    if isinstance(config, dict):
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(tokenizer.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class CodedWindows:
    """A :class:`~eegfm.data.WindowDataset` whose batches carry their tokenizer codes.

    Everything of the wrapped dataset is available (``len``, ``token_counts``, ...);
    :meth:`read_batch` (what :class:`~eegfm.data.WindowLoader` calls) returns an
    :class:`~eegfm.data.EEGBatch` with ``targets`` (B, C*K), int64, -1 at padded tokens.

    Parameters
    ----------
    windows : WindowDataset
    codes : list of numpy.ndarray
        Per recording (entry) of ``windows``: codes of shape (n_windows, C_e * K).
    n_patches : int
        ``K``, patches per window.
    """

    def __init__(self, windows: WindowDataset, codes: list, n_patches: int):
        self.windows, self.codes, self.n_patches = windows, codes, int(n_patches)

    def __getattr__(self, name):
        if name in ("windows", "codes", "n_patches"):  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.windows, name)

    def __len__(self) -> int:
        return len(self.windows)

    def read_batch(self, indices, out: torch.Tensor | None = None) -> EEGBatch:
        """:meth:`WindowDataset.read_batch` plus ``targets`` (B, C*K) int64 (-1 at padding)."""
        batch = self.windows.read_batch(indices, out)
        indices = np.asarray(indices, dtype=np.int64)
        entries = self.windows._entry[indices]
        rows = self.windows._start[indices] // self.windows.stride
        n_batch, n_chans = batch.x.shape[:2]
        targets = np.full((n_batch, n_chans, self.n_patches), -1, dtype=np.int64)
        for i, (entry, row) in enumerate(zip(entries.tolist(), rows.tolist())):
            codes = self.codes[entry][row]
            targets[i, : len(codes) // self.n_patches] = codes.reshape(-1, self.n_patches)
        batch.targets = torch.from_numpy(targets).view(n_batch, n_chans * self.n_patches)
        return batch


@torch.no_grad()
def _entry_codes(tokenizer, signal: np.ndarray, positions: np.ndarray, starts: np.ndarray, window: int,
                 batch_size: int, dtype) -> np.ndarray:
    """Codes of one recording's windows, shape (len(starts), C*K), in float32 without autocast."""
    device = next(tokenizer.parameters()).device
    pos = torch.as_tensor(positions, dtype=torch.float32, device=device)
    out = []
    for first in range(0, len(starts), batch_size):
        chunk = starts[first:first + batch_size]
        x = torch.as_tensor(np.stack([signal[:, s:s + window] for s in chunk]), dtype=torch.float32, device=device)
        with torch.autocast(device.type, enabled=False):
            codes, _ = tokenizer.tokenize(x, pos)
        out.append(codes.cpu().numpy().astype(dtype))
    return np.concatenate(out)


def cache_codes(windows: WindowDataset, tokenizer: torch.nn.Module, cache_dir, *, batch_size: int = 32,
                progress: bool = True) -> CodedWindows:
    """Tokenizer codes of every window, read from ``cache_dir`` or computed once and written there.

    Parameters
    ----------
    windows : WindowDataset
        Windows of a corpus (:meth:`eegfm.data.EEGCorpus.windows`).
    tokenizer : NeuralTokenizer
        Frozen; run in eval mode, float32, outside autocast, on its own device.
    cache_dir : str | os.PathLike
        The recording cache's root (the codes go to its ``codes/`` folder).
    batch_size : int
        Windows per tokenizer call while computing.
    progress : bool
        Show a progress bar while computing.

    Returns
    -------
    CodedWindows
        ``windows`` whose batches carry ``targets`` (B, C*K).

    Under ``torch.distributed`` each process computes its share of the recordings, then all
    wait for each other and read every file.
    """
    patch = int(tokenizer.patch_size)
    n_patches = windows.window // patch
    if n_patches < 1:
        raise ValueError(f"windows of {windows.window} samples are shorter than the tokenizer's patch_size={patch}")
    fingerprint = tokenizer_fingerprint(tokenizer)
    spec = {"tokenizer_sha256": fingerprint, "patch_size": patch, "window": windows.window,
            "stride": windows.stride, "format": 1}
    folder = Path(cache_dir).expanduser() / "codes" / f"{fingerprint[:24]}-p{patch}-w{windows.window}-s{windows.stride}"
    spec_path = folder / "spec.json"
    clean_stale_tmp(folder, ATOMIC_TMP, what="code cache temporary file")
    if spec_path.is_file():
        found = json.loads(spec_path.read_text(encoding="utf-8"))
        if found != spec:
            raise RuntimeError(f"code cache {folder} holds {found}, expected {spec}; delete that folder")
    else:
        atomic_write(spec_path, lambda f: f.write(json.dumps(spec, indent=2)), mode="w", what="code cache spec",
                     hint=_DISK_HINT)
    dtype = np.int16 if tokenizer.quantizer.num_codes <= np.iinfo(np.int16).max else np.int32

    dist = torch.distributed
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    n_entries = len(windows._paths)
    counts = np.bincount(windows._entry, minlength=n_entries)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    paths = [folder / f"{Path(p).parent.name}.npy" for p in windows._paths]
    expected = [(int(counts[e]), int(windows._n_chans[e]) * n_patches) for e in range(n_entries)]

    def valid(e: int) -> bool:
        try:
            return open_npy_map(paths[e]).shape == expected[e]
        except (OSError, ValueError):
            return False

    todo = [e for e in range(n_entries) if e % world == rank and counts[e] and not valid(e)]
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        for e in progress_bar(todo, desc="tokenizer codes", unit="rec", enabled=bool(progress and todo)):
            starts = windows._start[firsts[e]:firsts[e] + counts[e]]
            codes = _entry_codes(tokenizer, windows._array(e), windows._positions[e], starts, windows.window,
                                 batch_size, dtype)
            buffer = io.BytesIO()
            np.save(buffer, codes)
            atomic_write(paths[e], lambda f, b=buffer: f.write(b.getvalue()), what="tokenizer codes", hint=_DISK_HINT)
    finally:
        tokenizer.train(was_training)
    if distributed:
        dist.barrier()
    logger.info("tokenizer codes: %d of %d recordings computed, the rest read from %s", len(todo), n_entries, folder)
    codes = [open_npy_map(paths[e]) if counts[e] else np.zeros((0, expected[e][1]), dtype)
             for e in range(n_entries)]
    bad = [str(paths[e]) for e in range(n_entries) if codes[e].shape != expected[e]]
    if bad:
        raise RuntimeError(f"code cache files with the wrong shape: {bad}; delete them and rerun")
    return CodedWindows(windows, codes, n_patches)
