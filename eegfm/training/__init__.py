"""Training engine: ``Trainer(model, TrainConfig(...), batches).fit()``.

One concept per file: ``engine`` (loop + config), ``schedule`` (cosine with warm-up),
``checkpoint`` (atomic save / load / latest), ``distributed`` (torchrun helpers),
``metrics_logger`` (CSV / TensorBoard logger), ``precision`` (autocast and bf16 choice).
"""

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .distributed import (
    all_reduce_sum,
    barrier,
    cleanup,
    init_distributed,
    is_main_process,
    rank,
    world_size,
)
from .engine import TrainConfig, Trainer
from .metrics_logger import MetricsLogger
from .schedule import cosine_with_warmup, make_scheduler

__all__ = [
    "CheckpointError",
    "MetricsLogger",
    "TrainConfig",
    "Trainer",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "cosine_with_warmup",
    "init_distributed",
    "is_main_process",
    "latest_checkpoint",
    "load_checkpoint",
    "make_scheduler",
    "rank",
    "save_checkpoint",
    "world_size",
]
