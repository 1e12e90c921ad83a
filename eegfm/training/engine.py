"""The training loop: AdamW + cosine warm-up, grad clipping, autocast, DDP, exact resume.

The loop lives here; launchers (CLI subcommands, example scripts, torchrun entry points) build a
model, a ``batches`` function and a :class:`TrainConfig`, then call ``Trainer(...).fit()``.

Model contract
--------------
``model.training_step(batch) -> dict[str, Tensor]`` returns at least

- ``"loss_sum"``: differentiable SUM of the per-item losses on this process,
- ``"count"``: number of items in that sum (tensor or int),

plus any scalar metrics. Optionally ``model.optimizer_groups(weight_decay) -> list[dict]`` gives
the AdamW parameter groups (each may carry ``lr_scale``, a factor on the scheduled rate: how
layer-wise learning-rate decay is applied). The engine sums ``count`` over processes and backpropagates
``loss_sum * world_size / global_count``: DDP averages gradients over processes, so the update
equals one process on the whole global batch, whatever the per-process counts. Logged metrics
are count-weighted averages over processes (``loss`` = global ``loss_sum / count``).

No step reads a tensor on the host (a device sync): the logged sums and the checks (no
items, a non-finite loss or gradient norm) stay on the device and are read once per log
interval (and before a checkpoint or the callbacks). From a faulty step on, the fused AdamW
applies nothing (its ``found_inf`` input), so the error names that step and the weights are
those of the last good one. Without a fused AdamW (MPS) or with fp16's GradScaler, the
checks are read every step as before. ``TrainConfig(compile=True)`` wraps the step
(``training_step``: forward and loss, so their backward too) in ``torch.compile``.

Data contract
-------------
``batches(epoch, start)`` returns an iterator over the batches of ``epoch`` starting at batch
index ``start`` and ends at the end of the epoch; it must be deterministic in ``(epoch, start)``
so that resume replays exactly (use ``epoch`` to reseed a sampler). Under DDP every process must
yield the same number of batches per epoch. Batches may be objects with ``.to(device)``
(``EEGBatch``, tensors) or tuples / lists / dicts of them; on a CUDA device they are copied
with ``non_blocking=True`` where ``to`` takes it, asynchronous from pinned memory
(``EEGBatch.pin_memory``, which ``WindowLoader`` applies when CUDA is available).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..modules.patch_embed import patch_embedders
from . import distributed as D
from .checkpoint import (
    FrozenParameters,
    capture_rng_state,
    clean_run_dir,
    link_or_copy_atomic,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from .metrics_logger import MetricsLogger
from .precision import AMP_MODES, autocast_factory
from .schedule import make_scheduler

log = logging.getLogger("eegfm.training")

__all__ = ["TrainConfig", "Trainer"]

_RESERVED = ("loss_sum", "count")


@dataclass
class TrainConfig:
    # schedule length
    steps: int = 1000  # optimizer steps in total (over as many epochs as needed)
    # AdamW (SPEC 4: lr 5e-4, LaBraM-style)
    lr: float = 5e-4  # peak learning rate, reached at the end of warm-up
    min_lr: float = 1e-5  # floor of the cosine decay, reached at `steps`
    weight_decay: float = 0.05  # not applied to biases, norms, 1-d params, model.no_weight_decay()
    betas: tuple = (0.9, 0.98)
    warmup_steps: int = 100  # linear warm-up steps
    grad_clip: float = 1.0  # max global grad L2 norm; <= 0 disables clipping (norm still logged)
    # precision
    amp: str = "auto"  # "auto": bf16 autocast where native (CUDA compute capability >= 8.0), else off | "bf16" | "fp16" (CUDA, GradScaler) | "no"
    # bookkeeping
    log_every: int = 10  # log metrics every N steps (and at the last step); a non-finite loss is reported then
    checkpoint_every: int = 200  # write run_dir/checkpoints/step_XXXXXXX.pt + last.pt every N steps and at the end
    keep_checkpoints: int = 3  # keep the newest N step_XXXXXXX.pt (last.pt is the newest); 0 keeps every one
    seed: int = 0  # python/numpy/torch seeded with seed + rank at the start of fit()
    run_dir: str = "runs/eegfm"  # checkpoints/, metrics.csv, model/ (save_pretrained) go here
    resume: bool = False  # continue exactly from run_dir/checkpoints/last.pt
    metrics: str = "csv"  # "csv" | "tensorboard" (also writes the CSV) | "none"
    progress: bool = True  # progress bar on rank 0 (plain lines every 30 s when stderr is not a terminal)
    device: str = "auto"  # "auto": cuda:LOCAL_RANK if available, else cpu; or any torch device string
    find_unused_parameters: bool = False  # passed to DDP, for models that skip parameters in some steps
    broadcast_buffers: bool = False  # DDP: copy rank 0's buffers to every rank each forward (BatchNorm stats); off keeps per-rank buffers (the quantizer's ring buffer of recent outputs) each rank's own
    tf32: bool | None = None  # on CUDA, fit() sets torch's process-wide TF32 flags (float32 matmuls, cuDNN) to this; None leaves them (not set by default: TF32 rounds float32 matmul inputs to 10 bits, which may change frozen-tokenizer codes, as bf16 did)
    compile: bool = False  # torch.compile the training step (forward, loss, backward); same maths; slow first step, recompiles per batch shape
    checkpoint_patch_embedder: bool = False  # recompute the patch embedders' convolutions in the backward pass instead of keeping them (NeuralPatchEmbedder.checkpoint_convs): same gradients, less memory (base size, B=128 on an H200: 5.3 -> 3.4 GiB, 14 % slower)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _StepModule(nn.Module):
    """Makes ``training_step`` the ``forward`` so DDP's gradient hooks see it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_step(batch)


def _to_device(batch, device: torch.device):
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if device.type == "cuda" and (torch.is_tensor(batch)
                                  or (hasattr(batch, "to") and _takes_non_blocking(type(batch)))):
        return batch.to(device, non_blocking=True)  # from pinned memory the copy overlaps with queued work
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


@functools.lru_cache(maxsize=None)
def _takes_non_blocking(batch_type: type) -> bool:
    """Whether a batch type's ``to`` accepts ``non_blocking=`` (EEGBatch's and nn.Module's do); asked
    once per type, not on every step."""
    try:
        params = inspect.signature(batch_type.to).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == "non_blocking" or p.kind is p.VAR_KEYWORD for p in params)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_train_config(config: TrainConfig) -> None:
    """Raise a one-line ``ValueError`` naming the first bad setting of ``config`` (amp, metrics,
    step counts, learning rates, weight decay, warm-up, grad_clip).

    :class:`Trainer` calls it; the command line calls it before any data is read, so that a bad
    setting fails in a second, not after the preprocessing.
    """
    if config.amp not in AMP_MODES:
        raise ValueError(f"amp={config.amp!r} is not one of {AMP_MODES}")
    if config.metrics not in ("csv", "tensorboard", "none"):
        raise ValueError(f"metrics={config.metrics!r} is not one of ('csv', 'tensorboard', 'none')")
    for name in ("steps", "log_every", "checkpoint_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1 or value != int(value):
            raise ValueError(f"{name} must be a whole number >= 1, got {name}={value!r}")
    keep = config.keep_checkpoints
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"keep_checkpoints must be a whole number >= 0 (0 keeps every checkpoint), got "
                         f"keep_checkpoints={keep!r}")
    for name in ("lr", "min_lr", "weight_decay", "warmup_steps"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    if not (isinstance(config.grad_clip, (int, float)) and not math.isnan(config.grad_clip)):
        raise ValueError(f"grad_clip must be a number (<= 0 disables clipping), got grad_clip={config.grad_clip!r}")


def progress_figures(metrics: dict) -> dict:
    """The figures a progress bar shows: loss, lr and, when the model logs them, the masked-token
    figure (mean over strategies: accuracy for codes, R^2 for spectra) beside its baseline,
    codebook usage and perplexity."""
    shown = {"loss": f"{metrics['loss']:.4g}"}
    masked = [v for k, v in metrics.items() if k.startswith("accuracy_")]
    if masked:
        shown["masked"] = f"{sum(masked) / len(masked):.3f}"
    if "baseline_accuracy" in metrics:
        shown["baseline"] = f"{metrics['baseline_accuracy']:.3f}"
    if "codebook_usage" in metrics:
        shown["codes used"] = f"{metrics['codebook_usage']:.0%}"
    if "codebook_perplexity" in metrics:
        shown["perplexity"] = f"{metrics['codebook_perplexity']:.3g}"
    shown["lr"] = f"{metrics['lr']:.2e}"
    return shown


class Trainer:
    """Train ``model`` for ``config.steps`` optimizer steps.

    Parameters
    ----------
    model : nn.Module
        Has ``training_step(batch) -> dict`` (see the module docstring). Seed before building it:
        ``fit()`` seeds only the training randomness. Under DDP, rank 0's weights are broadcast.
    config : TrainConfig
    batches : callable ``(epoch: int, start: int) -> Iterator[batch]``
    trainable_parameters : iterable of nn.Parameter, optional
        Parameters to optimise; every other parameter of ``model`` is frozen
        (``requires_grad_(False)``). Default: all parameters with ``requires_grad``.
    callbacks : sequence of callable ``(trainer, step) -> None``, optional
        Called after every optimizer step (after logging and checkpointing). ``trainer.metrics``
        holds the last logged metrics; ``trainer.request_stop()`` ends training after this step
        (with a final checkpoint).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        batches: Callable[[int, int], Iterable],
        *,
        trainable_parameters: Iterable[nn.Parameter] | None = None,
        callbacks: Sequence[Callable] | None = None,
    ):
        if not callable(getattr(model, "training_step", None)):
            raise TypeError(
                f"{type(model).__name__} has no training_step(batch) method; the Trainer needs one "
                "returning a dict with 'loss_sum' (differentiable sum of per-item losses) and 'count'"
            )
        check_train_config(config)
        if not callable(batches):
            raise TypeError(f"batches must be a callable (epoch, start) -> iterator, got {type(batches).__name__}")
        self.model = model
        self.config = config
        self.batches = batches
        self.callbacks = list(callbacks or [])
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        if trainable_parameters is not None:
            chosen = {id(p) for p in trainable_parameters}
            known = {id(p) for p in model.parameters()}
            if not chosen <= known:
                raise ValueError(f"trainable_parameters contains parameters that are not in {type(model).__name__}")
            for p in model.parameters():
                p.requires_grad_(id(p) in chosen)
        self.frozen = FrozenParameters(model)  # left out of checkpoints, identified by their hash
        # run state (what a checkpoint restores)
        self.step = 0  # optimizer steps done
        self.epoch = 0  # current epoch
        self.batch_in_epoch = 0  # batches of `epoch` consumed so far
        self.metrics: dict[str, float] = {}  # last logged metrics
        self._stop = False

    # ------------------------------------------------------------------ setup
    def request_stop(self) -> None:
        self._stop = True

    def _resolve_device(self) -> torch.device:
        if self.config.device != "auto":
            return torch.device(self.config.device)
        if torch.cuda.is_available():
            return torch.device("cuda", D.local_rank())
        return torch.device("cpu")

    def _autocast(self):
        return autocast_factory(self.config.amp, self.device)  # "auto": bf16 only where it is native

    def _param_groups(self) -> list[dict]:
        model = self.model
        if callable(getattr(model, "optimizer_groups", None)):  # e.g. layer-wise lr decay
            groups = [g for g in model.optimizer_groups(self.config.weight_decay) if g["params"]]
            if not groups:
                raise ValueError(f"{type(model).__name__}.optimizer_groups() gave no trainable parameters")
            return groups
        skip = set(model.no_weight_decay()) if callable(getattr(model, "no_weight_decay", None)) else set()

        def no_decay(name: str, p: nn.Parameter) -> bool:
            if p.ndim < 2 or name.endswith(".bias") or name in skip:
                return True
            return any(name.startswith(s + ".") for s in skip)

        decay, other = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (other if no_decay(name, p) else decay).append(p)
        if not decay and not other:
            raise ValueError(f"{type(model).__name__} has no trainable parameters")
        return [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ]

    # ------------------------------------------------------------------ data
    def _next_batch(self):
        while True:
            if self._iter is None:
                self._iter = iter(self.batches(self.epoch, self.batch_in_epoch))
                self._fresh_epoch = self.batch_in_epoch == 0
            try:
                batch = next(self._iter)
            except StopIteration:
                if self._fresh_epoch:
                    raise ValueError(f"batches(epoch={self.epoch}, start=0) yielded no batch") from None
                self.epoch += 1
                self.batch_in_epoch = 0
                self._iter = None
                continue
            self._fresh_epoch = False
            self.batch_in_epoch += 1
            return batch

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        from .. import __version__

        return {
            "format": 1,
            "eegfm_version": __version__,
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "model": self.frozen.strip(self.model.state_dict()),
            "frozen_sha256": self.frozen.sha256(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": D.world_size(),
            "rng": D.all_gather_object(capture_rng_state()),  # one entry per rank
            "config": self.config.to_dict(),
        }

    def save(self) -> Path:
        """Checkpoint to ``step_XXXXXXX.pt`` and point ``last.pt`` at it (rank 0 writes)."""
        state = self.state_dict()  # collective (RNG gather): every rank calls it
        path = self.ckpt_dir / f"step_{self.step:07d}.pt"
        if D.is_main_process():
            save_checkpoint(path, state)
            link_or_copy_atomic(path, self.ckpt_dir / "last.pt")
            prune_checkpoints(self.ckpt_dir, self.config.keep_checkpoints, protect=path)
        D.barrier()
        return path

    def _resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"resume=True but run_dir {str(self.run_dir)!r} has no checkpoint ({path} is missing); "
                "set resume=False to start a new run, or point run_dir at an existing run"
            )
        state = load_checkpoint(path, map_location="cpu")  # load_state_dict copies to the device
        state["model"] = self.frozen.restore(state, path)  # + this model's frozen parameters, if the same
        def shapes_of(sd: dict) -> dict:  # tensors by shape; extra states (dicts) by presence
            return {k: tuple(v.shape) if torch.is_tensor(v) else None for k, v in sd.items()}

        saved, current = shapes_of(state["model"]), shapes_of(self.model.state_dict())
        if saved != current:
            missing = [k for k in current if k not in saved]
            unexpected = [k for k in saved if k not in current]
            shapes = [f"{k} {saved[k]} vs {current[k]}" for k in current if k in saved and saved[k] != current[k]]
            from ..hub import _summarize_keys

            raise ValueError(
                f"cannot resume from {path}: it holds another model ({_summarize_keys(missing, unexpected, shapes)} "
                "against this one). Resume with the settings of that run (its run_config.json), or start a new "
                "run in another run_dir"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        rngs = state["rng"]
        if len(rngs) == D.world_size():
            restore_rng_state(rngs[D.rank()])
        else:  # world size changed: exact replay is impossible, reseed deterministically
            _seed_everything(self.config.seed + D.rank() + 1_000_003 * self.step)

    # ------------------------------------------------------------------ loop
    def _call_step(self, module: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        with self._autocast_ctx():
            out = module(batch)
        name = type(self.model).__name__
        if not isinstance(out, dict) or any(k not in out for k in _RESERVED):
            got = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise ValueError(
                f"{name}.training_step must return a dict with 'loss_sum' (differentiable sum of "
                f"per-item losses) and 'count' (items in that sum); it returned {got}"
            )
        loss_sum = out["loss_sum"]
        if not (torch.is_tensor(loss_sum) and loss_sum.numel() == 1 and loss_sum.requires_grad):
            raise ValueError(f"{name}.training_step()['loss_sum'] must be a scalar tensor that requires grad")
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        count = torch.as_tensor(out["count"], device=self.device).detach().to(acc_dtype).reshape(())
        extra = {}
        for k, v in out.items():
            if k in _RESERVED:
                continue
            v = torch.as_tensor(v, device=self.device).detach()
            if v.numel() != 1:
                raise ValueError(f"{name}.training_step()[{k!r}] must be a scalar, got shape {tuple(v.shape)}")
            extra[k] = v.reshape(()).to(acc_dtype)
        return loss_sum.reshape(()), count, extra

    @staticmethod
    def _fault_code(global_count: torch.Tensor, global_loss: torch.Tensor,
                    grad_norm: torch.Tensor | None = None) -> torch.Tensor:
        """``[code, value]`` on the device: 0 fine, 1 no items, 2 non-finite loss, 3 non-finite gradient norm."""
        code = torch.where(global_count <= 0, 1.0, torch.where(~torch.isfinite(global_loss), 2.0, 0.0))
        value = torch.where(code == 1, global_count, global_loss)
        if grad_norm is not None:
            grad_norm = grad_norm.detach().to(global_count.device, global_count.dtype)
            bad_grad = (code == 0) & ~torch.isfinite(grad_norm)
            code, value = torch.where(bad_grad, 3.0, code), torch.where(bad_grad, grad_norm, value)
        return torch.stack([code, value]).to(global_count.dtype)

    def _raise_fault(self, code: float, value: float, *, step: int) -> None:
        """Raise the error of a fault code of :meth:`_fault_code` (nothing for 0)."""
        lr = self.config.lr
        if code == 1:
            raise ValueError(f"global count is {value} at step {step}: no items to learn from")
        if code == 2:
            raise FloatingPointError(
                f"non-finite loss ({value}) at step {step}; lower the learning rate "
                f"(lr={lr}) or check the data for NaN/Inf values"
            )
        if code == 3:
            raise FloatingPointError(
                f"non-finite gradient norm at step {step}; lower the learning rate "
                f"(lr={lr}) or check the data for NaN/Inf values"
            )

    def fit(self) -> dict:
        cfg = self.config
        info = D.init_distributed()
        self.device = self._resolve_device()
        if self.device.type == "cuda" and cfg.tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
        _seed_everything(cfg.seed + info.rank)
        self._autocast_ctx, self.scaler = self._autocast()
        model = self.model.to(self.device)
        model.train()
        if cfg.checkpoint_patch_embedder:
            for embedder in patch_embedders(model):
                embedder.checkpoint_convs = True
        step_module: nn.Module = _StepModule(model)
        if info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            step_module = DDP(
                step_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
                broadcast_buffers=cfg.broadcast_buffers,
            )
        if cfg.compile:  # after DDP, so that its bucketed all-reduces split the graph (DDPOptimizer)
            step_module = torch.compile(step_module)
        # fused: one kernel for all parameters instead of ~10 per tensor (CPU and CUDA; same maths)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)
        self.scheduler = make_scheduler(
            self.optimizer, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps, base_lr=cfg.lr, min_lr=cfg.min_lr
        )
        if D.is_main_process():  # only rank 0 writes into run_dir
            clean_run_dir(self.run_dir)
        if cfg.resume:
            self._resume()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        logger = MetricsLogger(self.run_dir, cfg.metrics, resume_step=self.step if cfg.resume else None)
        main = D.is_main_process()
        bar = None
        if cfg.progress and main and self.step < cfg.steps:
            from ..progress import progress_bar  # a redrawn bar on a terminal, plain lines in a log file

            bar = progress_bar(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True)
        self._iter = None
        self._fresh_epoch = False
        t_start = time.perf_counter()
        t_log = t_start
        acc: torch.Tensor | None = None  # sums over the log interval: [count, loss_sum, grad_norm, metric*count...]
        acc_steps = 0
        # faults (no items, non-finite loss or gradient norm) found on the device and read with the
        # logged scalars, not every step, where the fused AdamW can skip a faulty update itself
        deferred = self.scaler is None and fused
        fault = torch.zeros(3, dtype=torch.float32 if self.device.type == "mps" else torch.float64,
                            device=self.device)  # [code, step, value] of the first faulty step
        keys: list[str] | None = None  # metric names, fixed by the first step
        start_step = self.step
        try:
            while self.step < cfg.steps and not self._stop:
                batch = _to_device(self._next_batch(), self.device)
                loss_sum, count, extra = self._call_step(step_module, batch)
                if keys is None:
                    keys = sorted(extra)
                elif sorted(extra) != keys:
                    raise ValueError(
                        f"{type(self.model).__name__}.training_step returned metrics {sorted(extra)} at step "
                        f"{self.step + 1}, but {keys} before; return the same keys every step"
                    )
                # one all-reduce per step: global count (for the loss scale) + count-weighted metrics
                local = torch.stack([count, loss_sum.detach().to(count.dtype)] + [extra[k] * count for k in keys])
                glob = D.all_reduce_sum(local)
                global_count = glob[0]
                if not deferred:  # read now (the scaler reads its own flags every step anyway)
                    self._raise_fault(*self._fault_code(global_count, glob[1] / global_count).tolist()[:2],
                                      step=self.step + 1)
                loss = loss_sum * (info.world_size / global_count.to(loss_sum.dtype))
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    loss.backward()
                max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
                lr = max(g["lr"] for g in self.optimizer.param_groups)  # the head's under layer decay
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                elif deferred:
                    # Checked on the device, read at the next log / checkpoint / callback: the first
                    # faulty step is kept in `fault`, and from it on the fused AdamW applies nothing
                    # (its found_inf input, as GradScaler uses it), so the weights stay those of the
                    # last good step, as when the check raised before the update.
                    code = self._fault_code(global_count, glob[1] / global_count, grad_norm)
                    new = torch.stack([code[0], torch.full_like(code[0], self.step + 1), code[1]])
                    fault = torch.where(fault[0] > 0, fault, new)
                    self.optimizer.found_inf = (fault[0] > 0).to(torch.float32)
                    try:
                        self.optimizer.step()
                    finally:
                        del self.optimizer.found_inf
                else:
                    if not bool(torch.isfinite(grad_norm)):
                        self._raise_fault(3.0, float(grad_norm), step=self.step + 1)
                    self.optimizer.step()
                self.scheduler.step()
                self.step += 1

                row = torch.cat([glob, grad_norm.detach().to(glob.device, glob.dtype).reshape(1)])
                acc = row if acc is None else acc + row
                acc_steps += 1
                log_now = self.step % cfg.log_every == 0 or self.step == cfg.steps
                if deferred and (log_now or self.step % cfg.checkpoint_every == 0 or self.callbacks):
                    fault_code, fault_step, fault_value = fault.tolist()  # the one read of the interval
                    if fault_code:
                        self._raise_fault(fault_code, fault_value, step=int(fault_step))
                if log_now:
                    a = acc.tolist()
                    now = time.perf_counter()
                    self.metrics = {
                        "loss": a[1] / a[0],
                        **{k: a[2 + i] / a[0] for i, k in enumerate(keys)},
                        "grad_norm": a[-1] / acc_steps,
                        "lr": lr,
                        "epoch": float(self.epoch),
                        "count_per_s": a[0] / max(now - t_log, 1e-9),
                    }
                    logger.log(self.step, self.metrics)
                    if bar is not None:
                        bar.set_postfix(progress_figures(self.metrics), refresh=False)
                    acc, acc_steps, t_log = None, 0, now
                if bar is not None:
                    bar.update(1)
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                for cb in self.callbacks:
                    cb(self, self.step)
            if self.step > start_step and self.step % cfg.checkpoint_every != 0:
                self.save()  # final checkpoint (unless just written)
        finally:
            if bar is not None:
                bar.close()
            logger.close()
        if main and callable(getattr(self.model, "save_pretrained", None)):
            self.model.save_pretrained(self.run_dir / "model")
        D.barrier()
        summary = {
            "steps": self.step,
            "epoch": self.epoch,
            "seconds": round(time.perf_counter() - t_start, 3),
            "metrics": dict(self.metrics),
            "run_dir": str(self.run_dir),
        }
        if main:
            log.info("done: %d steps in %.1f s (%s)", self.step, summary["seconds"], self.run_dir)
        return summary
