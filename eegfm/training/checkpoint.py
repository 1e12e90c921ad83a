"""Atomic checkpoints: a crash while saving never leaves a half-written file that is read later.

A checkpoint is written to a hidden temporary file beside it, flushed and fsync'ed, then renamed over
``path`` with :func:`os.replace` (atomic on POSIX and Windows). A killed writer leaves the temporary
file, which :func:`clean_run_dir` removes when the run is opened again (``Trainer.fit``); a full disk
raises an OSError that names the checkpoint. Checkpoints hold only tensors and plain Python values
(RNG states included, see :func:`capture_rng_state`), so :func:`load_checkpoint` uses
``torch.load(weights_only=True)`` and never unpickles code.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from .._fsutil import ATOMIC_TMP, atomic_write, clean_stale_tmp, tmp_path
from .._fsutil import fsync_dir as _fsync_dir

__all__ = [
    "CheckpointError",
    "capture_rng_state",
    "clean_run_dir",
    "latest_checkpoint",
    "link_or_copy_atomic",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_DISK_HINT = "free space or set run_dir to a larger disk"


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    return atomic_write(path, lambda f: torch.save(state, f), what="checkpoint", hint=_DISK_HINT)


def link_or_copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` an atomic alias of the finished file ``src`` (hard link, else copy).

    Used for ``last.pt``: the step file is written once and ``last.pt`` points at it, so a
    checkpoint costs one write, and ``last.pt`` is always either the old or the new file.
    """
    src, dst = Path(src), Path(dst)
    tmp = tmp_path(dst)
    try:
        os.link(src, tmp)
    except OSError:  # file systems without hard links
        with open(src, "rb") as fi:
            return atomic_write(dst, lambda fo: shutil.copyfileobj(fi, fo), what="checkpoint", hint=_DISK_HINT)
    try:
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)
    return dst


def clean_run_dir(run_dir: str | os.PathLike, max_age_s: float = 3600.0) -> list[Path]:
    """Remove the temporary files of killed writers in ``run_dir`` and ``run_dir/checkpoints``.

    See :func:`eegfm._fsutil.clean_stale_tmp`: a file is removed when its writer's process is
    gone, or once last modified ``max_age_s`` seconds ago. Returns the files removed.
    """
    run_dir = Path(run_dir)
    return [path for folder in (run_dir, run_dir / "checkpoints")
            for path in clean_stale_tmp(folder, ATOMIC_TMP, max_age_s=max_age_s, what="temporary file")]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is truncated, corrupt or not a checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {str(e)[:200]}); "
            "delete it and resume from an earlier step_*.pt (copy it to last.pt)"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``run_dir/checkpoints/last.pt`` if present, else the highest ``step_*.pt``, else None."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    last = ckpt_dir / "last.pt"
    if last.is_file():
        return last
    steps = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            m = _STEP_FILE.match(p.name)
            if m and p.is_file():
                steps.append((int(m.group(1)), p))
    return max(steps)[1] if steps else None


def capture_rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
