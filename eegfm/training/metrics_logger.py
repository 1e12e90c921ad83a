"""``MetricsLogger``: a run's metrics to CSV (always) and optionally TensorBoard; only rank 0 writes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .._fsutil import atomic_write
from .distributed import is_main_process

__all__ = ["MetricsLogger"]

_BACKENDS = ("csv", "tensorboard", "none")


class MetricsLogger:
    """Log ``{name: float}`` rows keyed by optimizer step.

    Parameters
    ----------
    run_dir : path
        ``run_dir/metrics.csv`` is written; TensorBoard events go to ``run_dir/tensorboard``.
    backend : "csv" | "tensorboard" | "none"
        "tensorboard" writes the CSV too. "none" writes nothing.
    resume_step : int | None
        None starts a fresh CSV. An int keeps the existing rows with ``step <= resume_step``
        (rows logged after the checkpoint by a killed run are dropped) and appends after them,
        so the file keeps one header and increasing steps.
    """

    def __init__(self, run_dir, backend: str = "csv", *, resume_step: int | None = None):
        if backend not in _BACKENDS:
            raise ValueError(f"metrics backend {backend!r} is not one of {_BACKENDS}")
        self.backend = backend
        self.path = Path(run_dir) / "metrics.csv"
        self.enabled = backend != "none" and is_main_process()
        self._fields: list[str] = []
        self._tb = None
        if not self.enabled:
            return
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "metrics='tensorboard' needs the tensorboard package: `pip install tensorboard`, "
                    "or use metrics='csv'"
                ) from e
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=resume_step)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.is_file():
            self.path.unlink(missing_ok=True)
        else:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step") and int(float(r["step"])) <= resume_step]
            self._rewrite(fields, rows)

    def _rewrite(self, fields: list[str], rows: list[dict]) -> None:
        def write(f):
            if fields:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.path, write, mode="w", newline="")
        self._fields = fields

    def log(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._fields]
        if new:  # first row, or a metric that appears later: widen the header once
            rows = []
            if self._fields and self.path.is_file():
                with open(self.path, newline="") as f:
                    rows = list(csv.DictReader(f))
            self._rewrite(self._fields + new, rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and math.isfinite(v):
                    self._tb.add_scalar(k, v, global_step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
