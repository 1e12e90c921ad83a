"""Fine-tuning loop: linear probing or full fine-tuning with layer-wise learning-rate decay.

Runs on the shared training engine (:class:`eegfm.training.Trainer`): AdamW, cosine schedule
with warm-up, clipping, autocast, atomic checkpoints and exact ``resume``, DDP under torchrun.

Example
-------
>>> from eegfm import MAPEClassifier
>>> from eegfm.finetune import FinetuneConfig, finetune, evaluate
>>> model = MAPEClassifier.from_pretrained("runs/pretrain/encoder", n_outputs=2)   # doctest: +SKIP
>>> finetune(model, train_set, FinetuneConfig(epochs=10))                           # doctest: +SKIP
>>> evaluate(model, test_set)                                                        # doctest: +SKIP
{'balanced_accuracy': ..., 'accuracy': ..., 'auroc': ..., 'n': ...}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..training import TrainConfig, Trainer, is_main_process
from ..training import distributed as D
from .data import LabeledEEG
from .layer_decay import layer_decay_groups
from .metrics import classification_report, regression_report

__all__ = ["FinetuneConfig", "FinetuneTask", "evaluate", "finetune", "predict"]

MODES = ("full", "linear")
TASKS = ("classification", "regression")


@dataclass
class FinetuneConfig:
    mode: str = "full"  # "full": every weight, layer-wise lr decay | "linear": frozen encoder, head only (linear probing)
    task: str = "classification"  # "classification" (cross-entropy) | "regression" (MSE)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-4  # peak rate of the head; block i below it gets lr * layer_decay ** (depth + 1 - layer)
    min_lr: float = 1e-6
    layer_decay: float = 0.65  # LaBraM's fine-tuning value; 1.0 disables it
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    balance_classes: bool = True  # weight the loss by inverse class frequency of the training set
    seed: int = 0
    amp: str = "auto"  # as TrainConfig.amp
    device: str = "auto"
    run_dir: str = "runs/finetune"  # checkpoints/ and metrics.csv
    resume: bool = False
    checkpoint_every_epochs: int = 5
    metrics: str = "csv"
    progress: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got mode={self.mode!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got task={self.task!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got epochs={self.epochs}, batch_size={self.batch_size}")


class FinetuneTask(nn.Module):
    """A model + its fine-tuning loss, in the engine's ``training_step`` contract.

    Parameters
    ----------
    model : nn.Module
        ``model(x, positions, channel_mask=..., n_times=...) -> (B, n_outputs)`` with an
        ``encoder`` and a ``head`` (e.g. :class:`eegfm.MAPEClassifier`).
    config : FinetuneConfig
    class_weights : torch.Tensor, shape (n_classes,), optional
    """

    def __init__(self, model: nn.Module, config: FinetuneConfig, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.config = config
        self.register_buffer("class_weights", class_weights, persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.mode == "linear":  # a frozen encoder keeps its eval-mode behaviour (no dropout)
            self.model.encoder.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        if self.config.mode == "linear":
            return list(self.model.head.parameters())
        return list(self.model.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        if self.config.mode == "full" and callable(getattr(self.model, "layer_id", None)):
            return layer_decay_groups(self.model, weight_decay=weight_decay, layer_decay=self.config.layer_decay)
        decay = [p for p in self.trainable_parameters() if p.requires_grad and p.ndim >= 2]
        other = [p for p in self.trainable_parameters() if p.requires_grad and p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]

    def training_step(self, batch) -> dict:
        eeg, labels = batch
        out = self.model(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
        if self.config.task == "classification":
            losses = F.cross_entropy(out.float(), labels, weight=self.class_weights, reduction="none",
                                     label_smoothing=self.config.label_smoothing)
            if self.class_weights is not None:  # weighted mean = sum(w_i l_i) / sum(w_i); keep count = sum(w_i)
                weights = self.class_weights[labels]
                return {"loss_sum": losses.sum(), "count": weights.sum(),
                        "accuracy": (out.argmax(-1) == labels).float().mean()}
            return {"loss_sum": losses.sum(), "count": len(labels),
                    "accuracy": (out.argmax(-1) == labels).float().mean()}
        target = labels.float().reshape(out.shape)
        return {"loss_sum": F.mse_loss(out.float(), target, reduction="sum") / out.shape[-1], "count": len(labels)}


def _class_weights(data: LabeledEEG) -> torch.Tensor:
    counts = np.bincount(data.labels, minlength=data.n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(data.labels) / (len(counts) * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def finetune(model: nn.Module, train: LabeledEEG, config: FinetuneConfig | None = None, *,
             valid: LabeledEEG | None = None) -> dict:
    """Fine-tune ``model`` on ``train`` in place.

    Parameters
    ----------
    model : nn.Module
        e.g. :class:`eegfm.MAPEClassifier` (``from_pretrained(path, n_outputs=k)``).
    train : LabeledEEG
        Its ``sfreq`` must be the encoder's.
    config : FinetuneConfig, optional
    valid : LabeledEEG, optional
        Evaluated after training (:func:`evaluate`).

    Returns
    -------
    dict
        ``steps``, ``train`` (last logged metrics) and ``valid`` (metrics, when given). The
        fine-tuned model is also saved to ``config.run_dir/model`` (when it has
        ``save_pretrained``), beside ``checkpoints/`` and ``metrics.csv``.
    """
    config = config or FinetuneConfig()
    encoder = getattr(model, "encoder", None)
    if encoder is not None and float(train.sfreq) != float(encoder.sfreq):
        raise ValueError(f"train.sfreq={train.sfreq} Hz but the encoder expects {encoder.sfreq} Hz; "
                         "preprocess the data with the model's contract (model.encoder.preprocessing)")
    n_out = getattr(model, "n_outputs", None)
    if config.task == "classification":
        if train.labels.dtype.kind not in "iu":
            raise ValueError("task='classification' needs integer class labels; use task='regression' for floats")
        if n_out is not None and int(train.labels.max()) >= n_out:
            raise ValueError(f"labels go up to {int(train.labels.max())} but the model has n_outputs={n_out}; "
                             f"load it with n_outputs={train.n_classes}")
    weights = _class_weights(train) if config.task == "classification" and config.balance_classes else None
    task = FinetuneTask(model, config, weights)
    batch_size = min(config.batch_size, len(train))
    drop_last = len(train) >= 2 * batch_size
    per_epoch = len(train) // batch_size if drop_last else math.ceil(len(train) / batch_size)
    steps = config.epochs * per_epoch
    train_cfg = TrainConfig(
        steps=steps, lr=config.lr, min_lr=min(config.min_lr, config.lr), weight_decay=config.weight_decay,
        warmup_steps=int(round(config.warmup_epochs * per_epoch)), grad_clip=config.grad_clip, amp=config.amp,
        log_every=max(1, min(per_epoch, 50)), checkpoint_every=max(1, config.checkpoint_every_epochs * per_epoch),
        seed=config.seed, run_dir=config.run_dir, resume=config.resume, metrics=config.metrics,
        progress=config.progress, device=config.device,
    )

    D.init_distributed()  # under torchrun: the process group (idempotent; a no-op otherwise)
    world, rank = D.world_size(), D.rank()
    if world > 1 and (batch_size < world or (not drop_last and len(train) % batch_size and len(train) % batch_size < world)):
        raise ValueError(f"batch_size={batch_size} must give every one of the {world} processes at least one example "
                         "per batch; raise batch_size")

    def batches(epoch: int, start: int):  # under DDP each process takes its share of every global batch
        return train.batches(batch_size, shuffle=True, seed=config.seed, epoch=epoch, start=start, drop_last=drop_last,
                             rank=rank, world_size=world)

    fit = Trainer(task, train_cfg, batches, trainable_parameters=task.trainable_parameters()).fit()
    model.eval()
    if callable(getattr(model, "save_pretrained", None)) and is_main_process():
        model.save_pretrained(Path(config.run_dir) / "model")
    summary = {"steps": steps, "train": {k: v for k, v in fit.get("metrics", {}).items()},
               "config": dataclasses.asdict(config)}
    if valid is not None:
        summary["valid"] = evaluate(model, valid, task=config.task, batch_size=config.batch_size)
    return summary


@torch.no_grad()
def predict(model: nn.Module, data: LabeledEEG, *, batch_size: int = 128, device=None) -> np.ndarray:
    """Model outputs for every example, shape (N, n_outputs) (logits for classifiers)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    for eeg, _ in data.batches(batch_size):
        eeg = eeg.to(device)
        outputs.append(model(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times).float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


def evaluate(model: nn.Module, data: LabeledEEG, *, task: str = "classification", batch_size: int = 128) -> dict:
    """Balanced accuracy, accuracy and AUROC (classification) or MSE, MAE and R² (regression)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got task={task!r}")
    outputs = predict(model, data, batch_size=batch_size)
    if task == "classification":
        return classification_report(data.labels, outputs)
    return regression_report(data.labels, outputs)
