"""Fine-tuning loop: full fine-tuning with layer-wise learning-rate decay, linear probing, LoRA, frozen features.

``FinetuneConfig.mode`` picks the strategy, through one call, :func:`finetune`: ``"full"`` (every
weight, layer-wise lr decay), ``"linear"`` (frozen encoder, head trained), ``"lora"`` (peft LoRA
adapters on the encoder's attention layers + head, merged at the end) or ``"frozen"`` (no
gradient training: a cross-validated logistic / ridge regression on the frozen features, written
into the head); see :mod:`eegfm.finetune.strategies`. Each returns a plain classifier in place.

Runs on the shared training engine (:class:`eegfm.training.Trainer`): AdamW, cosine schedule
with warm-up, clipping, autocast, atomic checkpoints and exact ``resume``, DDP under torchrun.
With a validation set, :func:`finetune` evaluates it after every epoch, keeps the weights of the
best epoch (``FinetuneConfig.monitor``, ``select_best``) and stops early (``patience``).
:func:`evaluate` reports what EEG papers report (balanced accuracy, AUROC, Cohen's kappa,
weighted F1, the confusion matrix) and logs a WARNING when the classifier predicts one class
for (nearly) every example (:func:`eegfm.finetune.metrics.one_class_warning`).

Example
-------
>>> from eegfm import MAPEClassifier
>>> from eegfm.finetune import FinetuneConfig, finetune, evaluate
>>> model = MAPEClassifier.from_pretrained("runs/pretrain/encoder", n_outputs=2)   # doctest: +SKIP
>>> finetune(model, train_set, FinetuneConfig(epochs=10))                           # doctest: +SKIP
>>> evaluate(model, test_set)                                                        # doctest: +SKIP
{'balanced_accuracy': ..., 'accuracy': ..., 'auroc': ..., 'cohen_kappa': ..., 'weighted_f1': ...,
 'confusion_matrix': [[...], ...], 'n': ...}
>>> out = finetune(model, train_set, FinetuneConfig(epochs=50, patience=5), valid=valid_set)  # doctest: +SKIP
>>> out["best_epoch"], out["valid"]["balanced_accuracy"], len(out["history"])      # doctest: +SKIP
>>> finetune(model, train_set, FinetuneConfig(mode="lora", lora_rank=8), valid=valid_set)   # doctest: +SKIP
>>> finetune(model, train_set, FinetuneConfig(mode="frozen"))["frozen"]["value"]    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoder import MAPEEncoder
from ..modules.input_stage import inputs_checked
from ..training import TrainConfig, Trainer, is_main_process
from ..training import distributed as D
from ..training.checkpoint import capture_rng_state, restore_rng_state
from .augment import augment_batch, check_augmentation
from .data import LabeledEEG
from .layer_decay import layer_decay_groups
from .metrics import classification_report, one_class_warning, regression_report
from .strategies import LORA_TARGETS, add_lora, fit_frozen, merge_lora

__all__ = ["MODES", "FinetuneConfig", "FinetuneTask", "evaluate", "finetune", "predict"]

logger = logging.getLogger("eegfm.finetune")

MODES = ("full", "linear", "lora", "frozen")
#: fields of FinetuneConfig that apply to one mode only (None elsewhere), with their defaults there
MODE_FIELDS = {"lora": {"lora_rank": 16, "lora_alpha": 32.0, "lora_dropout": 0.1, "lora_targets": "attention"}}
TASKS = ("classification", "regression")
#: keys of :func:`evaluate`'s dict that ``FinetuneConfig.monitor`` may name, per task
MONITORS = {"classification": ("balanced_accuracy", "accuracy", "auroc", "cohen_kappa", "weighted_f1"),
            "regression": ("mse", "mae", "r2")}
_MINIMISED = ("mse", "mae")  # every other monitor is maximised


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune` (each field is commented below).

    ``patience``, ``select_best`` and ``monitor`` act only when :func:`finetune` is given
    ``valid=...``. ``monitor`` is a key of :func:`evaluate`'s dict (``MONITORS[task]``), maximised
    except ``"mse"`` and ``"mae"``; with ``task="regression"`` the default ``"balanced_accuracy"``
    becomes ``"mse"``. An epoch improves when its value is strictly better than the best so far
    (NaN never is).

    ``mode`` (:mod:`eegfm.finetune.strategies`): ``"full"`` trains every weight with layer-wise
    lr decay; ``"linear"`` the head only, on a frozen encoder; ``"lora"`` peft LoRA adapters on the
    encoder's attention layers (``lora_*`` fields; defaults rank 16, alpha 32, dropout 0.1, as
    OpenEEGBench) plus the head and the attention pool, merged into the weights at the end
    (``pip install peft``); ``"frozen"`` trains nothing by gradient: a standardised logistic
    regression (ridge for regression) on the frozen ``forward_features``, its C / alpha chosen by
    cross-validation on the training set (grouped by ``train.groups`` when there are several) on
    ``monitor``, written into the head (``pip install scikit-learn``); the epoch, optimiser,
    augmentation and early-stopping fields do not act there. ``layer_decay`` acts in ``"full"``
    only. The ``lora_*`` fields must stay None in the other modes.
    """

    mode: str = "full"  # "full": every weight, layer decay | "linear": head only | "lora": LoRA adapters + head | "frozen": CV logistic/ridge fit on frozen features, no gradient steps
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
    # validation (only used when finetune() is given valid=...; evaluated after every epoch)
    patience: int | None = None  # stop after this many epochs without improvement of `monitor` (None: never stop early)
    select_best: bool = True  # restore the weights of the best validation epoch at the end
    monitor: str = "balanced_accuracy"  # validation figure that picks the epoch: balanced_accuracy | accuracy | auroc | cohen_kappa | weighted_f1 (maximised); regression: mse (default) | mae (minimised) | r2
    # augmentation of training batches (eegfm.finetune.augment; 0 turns each off)
    channel_dropout: float = 0.0  # share of each example's channels hidden per step (at least one kept)
    time_shift_seconds: float = 0.0  # largest circular shift of each example, either way
    amplitude_scale: float = 0.0  # a: gain of each example log-uniform in [1/(1+a), 1+a]
    # mode="lora" only (None: the default there, 16 / 32.0 / 0.1 / "attention"; must stay None in other modes)
    lora_rank: int | None = None  # rank r of the adapters
    lora_alpha: float | None = None  # the update is scaled by lora_alpha / lora_rank
    lora_dropout: float | None = None  # dropout on the adapters' input
    lora_targets: str | None = None  # "attention" (qkv, output projection) | "attention+mlp" (and the MLP's 2 layers)

    def __post_init__(self):
        check_augmentation(self.channel_dropout, self.time_shift_seconds, self.amplitude_scale)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got mode={self.mode!r}")
        for mode, fields in MODE_FIELDS.items():
            for name, default in fields.items():
                if self.mode != mode and getattr(self, name) is not None:
                    raise ValueError(f"{name}={getattr(self, name)!r} applies to mode={mode!r} only, got "
                                     f"mode={self.mode!r}; drop it or set mode={mode!r}")
                if self.mode == mode and getattr(self, name) is None:
                    setattr(self, name, default)
        if self.mode == "lora":
            if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int) or self.lora_rank < 1:
                raise ValueError(f"lora_rank must be an int >= 1, got lora_rank={self.lora_rank!r}")
            if isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, (int, float)) \
                    or not self.lora_alpha > 0:
                raise ValueError(f"lora_alpha must be > 0, got lora_alpha={self.lora_alpha!r}")
            if isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, (int, float)) \
                    or not 0 <= self.lora_dropout < 1:
                raise ValueError(f"lora_dropout must be in [0, 1), got lora_dropout={self.lora_dropout!r}")
            if self.lora_targets not in LORA_TARGETS:
                raise ValueError(f"lora_targets must be one of {tuple(LORA_TARGETS)}, "
                                 f"got lora_targets={self.lora_targets!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got task={self.task!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got epochs={self.epochs}, batch_size={self.batch_size}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be >= 1 (epochs) or None, got patience={self.patience!r}")
        if not isinstance(self.select_best, bool):
            raise ValueError(f"select_best must be True or False, got select_best={self.select_best!r}")
        if self.task == "regression" and self.monitor == "balanced_accuracy":  # the classification default
            self.monitor = "mse"
        if self.monitor not in MONITORS[self.task]:
            raise ValueError(f"monitor must be one of {MONITORS[self.task]} for task={self.task!r}, "
                             f"got monitor={self.monitor!r}")


class FinetuneTask(nn.Module):
    """A model + its fine-tuning loss, in the engine's ``training_step`` contract.

    Parameters
    ----------
    model : nn.Module
        ``model(x, positions, channel_mask=..., n_times=...) -> (B, n_outputs)`` with an
        ``encoder`` and a ``head`` (e.g. :class:`eegfm.MAPEClassifier`).
    config : FinetuneConfig
    class_weights : torch.Tensor, shape (n_classes,), optional
    checked : bool
        Every training example was checked beforehand (:meth:`LabeledEEG.check_inputs`), so the
        steps skip the encoder's own input check and its device-to-host sync.
    """

    def __init__(self, model: nn.Module, config: FinetuneConfig, class_weights: torch.Tensor | None = None,
                 checked: bool = False):
        super().__init__()
        self.model = model
        self.config = config
        self.checked = checked
        self.register_buffer("class_weights", class_weights, persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.mode == "linear":  # a frozen encoder keeps its eval-mode behaviour (no dropout)
            self.model.encoder.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        if self.config.mode == "linear":
            return list(self.model.head.parameters())
        if self.config.mode == "lora":  # the adapters, the head and the pool (strategies.add_lora)
            return [p for p in self.model.parameters() if p.requires_grad]
        return list(self.model.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        if self.config.mode == "full" and callable(getattr(self.model, "layer_id", None)):
            return layer_decay_groups(self.model, weight_decay=weight_decay, layer_decay=self.config.layer_decay)
        decay = [p for p in self.trainable_parameters() if p.requires_grad and p.ndim >= 2]
        other = [p for p in self.trainable_parameters() if p.requires_grad and p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]

    def training_step(self, batch) -> dict:
        eeg, labels = batch
        cfg = self.config
        if self.training:
            eeg = augment_batch(eeg, sfreq=float(getattr(self.model.encoder, "sfreq", 200.0)),
                                channel_dropout=cfg.channel_dropout, time_shift_seconds=cfg.time_shift_seconds,
                                amplitude_scale=cfg.amplitude_scale)
        with inputs_checked() if self.checked else contextlib.nullcontext():  # no sync per step for checked data
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


class _Selection(nn.Module):
    """Per-epoch validation of :func:`finetune`: a Trainer callback with best-weights selection.

    After the last step of every epoch it evaluates ``valid`` (:func:`evaluate`, on the main
    process; the metrics are shared so that every process takes the same decision), appends them
    to ``history``, keeps a CPU copy of the best weights (``select_best``) and asks the trainer to
    stop after ``patience`` epochs without a strict improvement of ``monitor``. The RNG state is
    restored after evaluating, so the training stream and batches are those of a run without
    validation.

    It is a module (a child of :class:`FinetuneTask`, no parameters) only so that its state rides
    in the trainer's checkpoints as extra state: ``resume=True`` continues the selection exactly.
    """

    def __init__(self, model: nn.Module, valid: LabeledEEG, config: FinetuneConfig, per_epoch: int):
        super().__init__()
        self._model = (model,)  # a tuple: not registered as a child (its weights are the task's already)
        self.valid, self.config, self.per_epoch = valid, config, per_epoch
        self.trainer: Trainer | None = None
        self.history: list[dict] = []  # [{"epoch": e (1-based), **evaluate()}, ...]
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None  # model.state_dict() of best_epoch (select_best)
        self.bad_epochs = 0  # epochs since the last improvement

    def _improves(self, value: float) -> bool:
        best = self.best_value
        if best is None:
            return True
        if math.isnan(value):  # e.g. AUROC of a one-class validation set
            return False
        if math.isnan(best):
            return True
        return value < best if self.config.monitor in _MINIMISED else value > best

    def _should_stop(self) -> bool:
        return self.config.patience is not None and self.bad_epochs >= self.config.patience

    def on_step(self, trainer: Trainer, step: int) -> None:
        """The trainer's callback: validate at every epoch end (once, see :meth:`get_extra_state`)."""
        if step % self.per_epoch == 0:  # else nothing: no host sync inside an epoch
            self._validate(trainer)

    def _validate(self, trainer: Trainer) -> None:
        epoch = trainer.step // self.per_epoch
        if trainer.step % self.per_epoch or epoch < 1 or (self.history and self.history[-1]["epoch"] >= epoch):
            return  # mid-epoch, or this epoch is validated already
        model = self._model[0]
        metrics = None
        if D.is_main_process():
            rng = capture_rng_state()
            # no one-class warning per epoch: finetune() gives it once, for the epoch it returns
            metrics = evaluate(model, self.valid, task=self.config.task, batch_size=self.config.batch_size,
                               warn=False)
            restore_rng_state(rng)
        metrics = D.all_gather_object(metrics)[0]  # the main process's metrics, on every process
        trainer.model.train()  # predict() left model.encoder in train mode; a linear probe's stays in eval
        self.history.append({"epoch": epoch, **metrics})
        value = float(metrics[self.config.monitor])
        if self._improves(value):
            self.best_epoch, self.best_value, self.bad_epochs = epoch, value, 0
            if self.config.select_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        if self._should_stop():
            trainer.request_stop()

    def get_extra_state(self) -> dict:
        # The trainer checkpoints an epoch end before it calls the step callbacks: validate that
        # epoch first, so that the checkpoint holds the selection state of its own step.
        if self.trainer is not None:
            self._validate(self.trainer)
        return {"monitor": self.config.monitor, "history": self.history, "best_epoch": self.best_epoch,
                "best_value": self.best_value, "bad_epochs": self.bad_epochs, "best_state": self.best_state}

    def set_extra_state(self, state: dict) -> None:  # resume: Trainer._resume loads the task's state_dict
        if state["monitor"] != self.config.monitor:
            raise ValueError(f"resume=True with monitor={self.config.monitor!r}, but the run in "
                             f"{self.config.run_dir!r} selected on monitor={state['monitor']!r}; keep the monitor")
        self.history = list(state["history"])
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.bad_epochs = state["bad_epochs"]
        self.best_state = state["best_state"]
        if self.config.select_best and self.best_state is None and self.best_epoch is not None:
            raise ValueError(f"resume=True with select_best=True, but the run in {self.config.run_dir!r} "
                             "kept no best weights (select_best=False); keep select_best")
        if self._should_stop() and self.trainer is not None:  # the run had stopped early: train no further
            self.trainer.request_stop()


def _class_weights(data: LabeledEEG) -> torch.Tensor:
    counts = np.bincount(data.labels, minlength=data.n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(data.labels) / (len(counts) * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def finetune(model: nn.Module, train: LabeledEEG, config: FinetuneConfig | None = None, *,
             valid: LabeledEEG | None = None) -> dict:
    """Fine-tune ``model`` on ``train`` in place, optionally selecting on ``valid``.

    Parameters
    ----------
    model : nn.Module
        ``model(x, positions, channel_mask=..., n_times=...) -> (B, n_outputs)``, e.g.
        :class:`eegfm.MAPEClassifier` (``from_pretrained(path, n_outputs=k)``).
    train : LabeledEEG
        N examples, labels of shape (N,) (int classes) or (N,) / (N, n_outputs) (regression
        targets). Its ``sfreq`` must be the encoder's.
    config : FinetuneConfig, optional
    valid : LabeledEEG, optional
        Validation examples, evaluated with :func:`evaluate` after every epoch (on the main
        process under DDP; the stop decision is shared). The weights of the best epoch by
        ``config.monitor`` are restored at the end when ``config.select_best``, and training stops
        after ``config.patience`` epochs without a strict improvement. Evaluating changes neither
        the training RNG nor the batches: with ``patience=None`` and ``select_best=False`` the
        final weights equal those of a run without ``valid``. The selection state (history,
        best weights) is part of the checkpoints, so ``resume=True`` needs the same ``valid``
        (given or not) as the run it continues; ``checkpoints/`` hold the last weights, the
        selected ones are in ``config.run_dir/model``. Never pass the test set here.

    Returns
    -------
    dict
        ``steps`` (optimizer steps done: fewer than planned after an early stop), ``train`` (last
        logged training metrics) and ``config``; with ``valid`` also

        - ``history``: list with one dict per epoch run, ``{"epoch": e, **evaluate(model, valid)}``
          (``e`` 1-based),
        - ``best_epoch``: int, 1-based epoch of the best ``config.monitor`` value,
        - ``valid``: :func:`evaluate` metrics of the returned weights (those of ``best_epoch`` when
          ``select_best``, else of the last epoch),
        - ``warnings``: list of str, empty unless the returned weights predict one class for at
          least 95 % of the validation examples (then also logged as a WARNING on the main
          process, naming the class; :func:`eegfm.finetune.metrics.one_class_warning`).

        The fine-tuned (selected) model is also saved to ``config.run_dir/model`` (when it has
        ``save_pretrained``), beside ``checkpoints/`` and ``metrics.csv``.

        ``mode="lora"`` adds ``lora``: the ``trainable`` parameter names during training (adapters,
        head, pool), ``trainable_parameters`` and ``parameters`` (counts) and the adapter settings;
        the returned model has the adapters merged into its weights (its ``requires_grad`` flags
        as they were before). ``mode="frozen"`` runs no epoch: ``steps`` is 0, ``train`` holds the
        ``loss`` (and ``accuracy``) of the fitted head on ``train``, ``frozen`` the read-out
        (:func:`eegfm.finetune.strategies.fit_frozen`: estimator, chosen ``C`` / ``alpha``, the
        grid and its cross-validation scores, how folds were made) and, with ``valid``,
        ``history`` is empty, ``best_epoch`` None and ``valid`` the metrics of the fitted model.

    Raises
    ------
    ValueError
        On data that does not fit the model or the task, and for ``config.patience`` without
        ``valid`` (except with ``mode="frozen"``, which has no epochs to stop).
    ImportError
        ``mode="lora"`` without peft, ``mode="frozen"`` without scikit-learn (one line: what to install).
    """
    config = config or FinetuneConfig()
    if config.patience is not None and valid is None and config.mode != "frozen":
        raise ValueError(f"patience={config.patience} needs a validation set to monitor: pass valid=..., "
                         "or set patience=None")
    encoder = getattr(model, "encoder", None)
    for name, data in (("train", train), ("valid", valid)):
        if data is not None and encoder is not None and float(data.sfreq) != float(encoder.sfreq):
            raise ValueError(f"{name}.sfreq={data.sfreq} Hz but the encoder expects {encoder.sfreq} Hz; "
                             "preprocess the data with the model's contract (model.encoder.preprocessing)")
    n_out = getattr(model, "n_outputs", None)
    if config.task == "classification":
        if train.labels.dtype.kind not in "iu":
            raise ValueError("task='classification' needs integer class labels; use task='regression' for floats")
        if n_out is not None and int(train.labels.max()) >= n_out:
            raise ValueError(f"labels go up to {int(train.labels.max())} but the model has n_outputs={n_out}; "
                             f"load it with n_outputs={train.n_classes}")
    if config.mode == "frozen":
        return _finetune_frozen(model, train, config, valid)
    lora = None
    if config.mode == "lora":
        flags = {name: p.requires_grad for name, p in model.named_parameters()}
        lora = add_lora(model, rank=config.lora_rank, alpha=config.lora_alpha, dropout=config.lora_dropout,
                        targets=config.lora_targets, seed=config.seed)
    try:
        summary = _finetune_gradient(model, train, config, valid)
        if lora is not None:
            summary["lora"] = {"trainable": [n for n, p in model.named_parameters() if p.requires_grad],
                               "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                               "parameters": sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n),
                               "rank": config.lora_rank, "alpha": config.lora_alpha,
                               "dropout": config.lora_dropout, "targets": config.lora_targets}
            merge_lora(lora)  # the adapters folded into the encoder's weights: a plain model again
            lora = None
            for name, p in model.named_parameters():
                p.requires_grad_(flags.get(name, True))
            model.eval()
    finally:
        if lora is not None:  # training failed: drop the adapters, the model's weights are those it came with
            merge_lora(lora, merge=False)
            for name, p in model.named_parameters():
                p.requires_grad_(flags.get(name, True))
    if callable(getattr(model, "save_pretrained", None)) and is_main_process():
        model.save_pretrained(Path(config.run_dir) / "model")
    return summary


def _finetune_frozen(model: nn.Module, train: LabeledEEG, config: FinetuneConfig, valid: LabeledEEG | None) -> dict:
    """mode="frozen": a cross-validated linear read-out of the frozen features in the head (no gradient steps)."""
    device = torch.device(config.device) if config.device != "auto" else (
        torch.device("cuda", D.local_rank()) if torch.cuda.is_available() else torch.device("cpu"))
    model.to(device)
    fit = fit_frozen(model, train, task=config.task, monitor=config.monitor, balance_classes=config.balance_classes,
                     batch_size=config.batch_size, seed=config.seed, device=device)
    model.eval()
    summary = {"steps": 0, "train": fit.pop("train"), "config": dataclasses.asdict(config), "frozen": fit}
    if valid is not None:
        metrics = evaluate(model, valid, task=config.task, batch_size=config.batch_size, warn=False)
        summary.update(history=[], best_epoch=None, valid=metrics, warnings=[])
        if "confusion_matrix" in metrics:
            message = one_class_warning(metrics["confusion_matrix"], classes=valid.classes,
                                        where=f"the validation set ({metrics.get('n', len(valid))} examples)")
            if message is not None:
                summary["warnings"].append(message)
                if is_main_process():
                    logger.warning(message)
    if callable(getattr(model, "save_pretrained", None)) and is_main_process():
        model.save_pretrained(Path(config.run_dir) / "model")
    return summary


def _finetune_gradient(model: nn.Module, train: LabeledEEG, config: FinetuneConfig, valid: LabeledEEG | None) -> dict:
    """The gradient modes ("full", "linear", "lora" once its adapters are in): the engine's loop."""
    weights = _class_weights(train) if config.task == "classification" and config.balance_classes else None
    encoder = next((m for m in model.modules() if isinstance(m, MAPEEncoder)), None)
    train.check_inputs(None if encoder is None else encoder.patch_size, name="training example")
    task = FinetuneTask(model, config, weights, checked=True)
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

    selection = None
    if valid is not None:
        task.selection = selection = _Selection(model, valid, config, per_epoch)
    trainer = Trainer(task, train_cfg, batches, trainable_parameters=task.trainable_parameters(),
                      callbacks=[selection.on_step] if selection is not None else None)
    if selection is not None:
        selection.trainer = trainer  # a resumed run that had stopped early stops again at once
    fit = trainer.fit()
    if selection is not None and config.select_best and selection.best_state is not None:
        model.load_state_dict(selection.best_state)
    model.eval()
    summary = {"steps": steps, "train": {k: v for k, v in fit.get("metrics", {}).items()},
               "config": dataclasses.asdict(config)}
    if selection is not None:
        chosen = selection.best_epoch if config.select_best else selection.history[-1]["epoch"]
        metrics = next(h for h in selection.history if h["epoch"] == chosen)
        summary.update(steps=fit["steps"], history=[dict(h) for h in selection.history],
                       best_epoch=selection.best_epoch, valid={k: v for k, v in metrics.items() if k != "epoch"},
                       warnings=[])
        if "confusion_matrix" in metrics:
            message = one_class_warning(metrics["confusion_matrix"], classes=valid.classes,
                                        where=f"the validation set (epoch {chosen}, {metrics.get('n', len(valid))} "
                                              "examples)")
            if message is not None:
                summary["warnings"].append(message)
                if is_main_process():
                    logger.warning(message)
    return summary


@torch.no_grad()
def predict(model: nn.Module, data: LabeledEEG, *, batch_size: int = 128, device=None) -> np.ndarray:
    """Model outputs for every example, shape (N, n_outputs) (logits for classifiers)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    for eeg, _ in data.batches(batch_size):
        eeg = eeg.to(device, non_blocking=device.type == "cuda")  # the .cpu() below waits for it
        outputs.append(model(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times).float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


def evaluate(model: nn.Module, data: LabeledEEG, *, task: str = "classification", batch_size: int = 128,
             name: str = "the evaluated set", warn: bool = True) -> dict:
    """Score ``model`` on ``data``.

    Parameters
    ----------
    model : nn.Module
        As in :func:`finetune`; its outputs are (N, n_outputs).
    data : LabeledEEG
        N examples; labels (N,) ints (classification) or (N,) / (N, n_outputs) floats.
    task : str
        ``"classification"`` or ``"regression"``.
    batch_size : int
    name : str
        What ``data`` is, for the warning (``"the test subjects"``, ``"the validation set"``).
    warn : bool
        Log a WARNING (logger ``eegfm.finetune``) naming the class and ``name`` when at least
        95 % of the predictions are one class while ``data`` holds several
        (:func:`eegfm.finetune.metrics.one_class_warning`): balanced accuracy and kappa are
        then at chance level, whatever the accuracy.

    Returns
    -------
    dict
        Classification (:func:`eegfm.finetune.metrics.classification_report`):
        ``balanced_accuracy``, ``accuracy``, ``auroc``, ``cohen_kappa``, ``weighted_f1``,
        ``confusion_matrix`` (n_classes lists of n_classes ints; row: true class, column:
        predicted) and ``n``. Regression: ``mse``, ``mae``, ``r2`` and ``n``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got task={task!r}")
    outputs = predict(model, data, batch_size=batch_size)
    if task != "classification":
        return regression_report(data.labels, outputs)
    report = classification_report(data.labels, outputs)
    if warn:
        message = one_class_warning(report["confusion_matrix"], where=name, classes=data.classes)
        if message is not None:
            logger.warning(message)
    return report
