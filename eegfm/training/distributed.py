"""torch.distributed helpers for torchrun launches; every function is a no-op on one process.

Launch with ``torchrun --nproc_per_node N script.py``: torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, which :func:`init_distributed` reads.
The backend is NCCL when CUDA is available, else Gloo (CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_gather_object",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "local_rank",
    "rank",
    "world_size",
]

_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    rank: int  # global rank of this process
    local_rank: int  # rank on this machine (the CUDA device index)
    world_size: int  # number of processes
    backend: str | None  # "nccl" | "gloo" | None when not distributed


def is_distributed() -> bool:
    """True when a process group is initialised and has more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(backend: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment (idempotent).

    Does nothing when ``WORLD_SIZE`` is unset or 1. On CUDA it also selects device
    ``cuda:LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank(), local_rank(), world_size(), dist.get_backend())
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1:
        return DistInfo(0, 0, 1, None)
    missing = [k for k in _TORCHRUN_VARS if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={n} but {missing} are not set; launch with "
            "`torchrun --nproc_per_node N script.py`, which sets them"
        )
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={n} but this torch build has no torch.distributed support")
    lr = int(os.environ["LOCAL_RANK"])
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(lr)
    dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), lr, dist.get_world_size(), backend)


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place; returns it (unchanged on one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj) -> list:
    """Every process's ``obj``, in rank order (``[obj]`` on one process)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group (call once at the end of the launcher script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
