"""Checkpoints: atomic, the newest few kept, frozen parameters identified rather than stored.

Atomic: a crash while saving never leaves a half-written file that is read later. A checkpoint is written to a hidden temporary file beside it, flushed and fsync'ed, then renamed over
``path`` with :func:`os.replace` (atomic on POSIX and Windows). A killed writer leaves the temporary
file, which :func:`clean_run_dir` removes when the run is opened again (``Trainer.fit``); a full disk
raises an OSError that names the checkpoint. Checkpoints hold only tensors and plain Python values
(RNG states included, see :func:`capture_rng_state`), so :func:`load_checkpoint` uses
``torch.load(weights_only=True)`` and never unpickles code.

Kept: :func:`prune_checkpoints` deletes all but the newest ``keep`` ``step_*.pt`` files after each
save (``TrainConfig.keep_checkpoints``, default 3); ``last.pt`` always names the newest.

Frozen parameters (``requires_grad=False``, e.g. the Stable Diffusion UNet around the trained
subset in video co-training) are not written: :class:`FrozenParameters` strips them from the
model's state and stores their SHA-256 instead, and on resume checks that the model being
resumed has the same frozen parameters before putting them back into the loaded state. A model
without frozen parameters is saved whole, as before.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._fsutil import ATOMIC_TMP, atomic_write, clean_stale_tmp, tmp_path
from .._fsutil import fsync_dir as _fsync_dir

__all__ = [
    "CheckpointError",
    "FrozenParameters",
    "capture_rng_state",
    "clean_run_dir",
    "latest_checkpoint",
    "link_or_copy_atomic",
    "load_checkpoint",
    "prune_checkpoints",
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


def _step_files(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """The ``(step, path)`` of every ``step_*.pt`` in ``ckpt_dir``, by step."""
    if not ckpt_dir.is_dir():
        return []
    found = ((_STEP_FILE.match(p.name), p) for p in ckpt_dir.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m and p.is_file())


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``run_dir/checkpoints/last.pt`` if present, else the highest ``step_*.pt``, else None."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    last = ckpt_dir / "last.pt"
    if last.is_file():
        return last
    steps = _step_files(ckpt_dir)
    return steps[-1][1] if steps else None


def prune_checkpoints(ckpt_dir: str | os.PathLike, keep: int, *, protect: str | os.PathLike | None = None) -> list[Path]:
    """Delete all but the ``keep`` highest-step ``step_*.pt`` files of ``ckpt_dir``; return the deleted ones.

    ``keep=0`` keeps every file. ``last.pt`` is never deleted (it is a hard link to, or a copy
    of, the newest step file, so deleting an older step file never touches it), and neither is
    ``protect`` (the file just written, even when a stale higher step file is lying around).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"keep must be a whole number >= 0 (0 keeps every checkpoint), got keep={keep!r}")
    if keep == 0:
        return []
    protect = Path(protect).resolve() if protect is not None else None
    older = [path for _, path in _step_files(Path(ckpt_dir))[:-keep] if path.resolve() != protect]
    for path in older:
        path.unlink(missing_ok=True)
    return older


class FrozenParameters:
    """The frozen parameters (``requires_grad=False``) of a model: left out of checkpoints, identified by a hash.

    Parameters
    ----------
    model : nn.Module
        Read each time (which parameters are frozen is looked up on every call). The hash is
        computed on the first call that needs it and again only when a frozen parameter was
        replaced or changed in place since (its storage or version counter moved), so a frozen
        parameter that training does change makes resume fail loudly rather than lose it.

    Notes
    -----
    The hash is the SHA-256 of each frozen parameter's name, dtype, shape and bytes, in name
    order: it does not depend on the device, and any change of value, dtype or shape changes it.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._sha256: tuple[tuple, str | None] | None = None  # (what was hashed, hash) of the last call

    def _frozen(self) -> dict[str, torch.Tensor]:
        """Frozen parameters by state-dict name (every alias of a shared one), in name order."""
        found = {name: p for name, p in self.model.named_parameters(remove_duplicate=False) if not p.requires_grad}
        return dict(sorted(found.items()))

    def names(self) -> set[str]:
        """State-dict names of the frozen parameters."""
        return set(self._frozen())

    def sha256(self) -> str | None:
        """Hex SHA-256 of the frozen parameters; ``None`` when there are none."""
        frozen = self._frozen()
        seen = tuple((name, p.data_ptr(), p._version) for name, p in frozen.items())
        if self._sha256 is None or self._sha256[0] != seen:
            hasher = hashlib.sha256()
            for name, param in frozen.items():
                tensor = param.detach()
                hasher.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
                hasher.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            self._sha256 = (seen, hasher.hexdigest() if frozen else None)
        return self._sha256[1]

    def strip(self, state: dict) -> dict:
        """``state`` (a ``model.state_dict()``) without the frozen parameters."""
        frozen = self.names()
        return {k: v for k, v in state.items() if k not in frozen}

    def restore(self, checkpoint: dict, path: str | os.PathLike) -> dict:
        """The full model state of ``checkpoint``: its saved part plus this model's frozen parameters.

        Parameters
        ----------
        checkpoint : dict
            A trainer checkpoint: ``"model"`` (the stripped state) and ``"frozen_sha256"``. One
            without ``"frozen_sha256"`` (written before frozen parameters were left out) holds the
            whole state, which is returned as it is.
        path : str or PathLike
            The checkpoint's file, for the error message.

        Raises
        ------
        ValueError
            When the checkpoint's frozen hash is not this model's; the message names both.
        """
        if "frozen_sha256" not in checkpoint:
            return checkpoint["model"]
        saved, current = checkpoint["frozen_sha256"], self.sha256()
        if saved != current:
            def show(digest):
                return "none" if digest is None else digest[:16]

            raise ValueError(
                f"cannot resume from {path}: its frozen parameters have sha256 {show(saved)} but this model's have "
                f"{show(current)}; build the model from the same pre-trained weights and with the same trainable "
                "subset as that run (its run_config.json), or start a new run in another run_dir"
            )
        return {**checkpoint["model"], **{k: v.detach() for k, v in self._frozen().items()}}


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
