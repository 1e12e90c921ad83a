"""``eegfm finetune``: fine-tune a (pre-trained) encoder on labelled EEG windows.

    eegfm finetune --pretrained=runs/pretrain/encoder --data.sources="bids:/data/eegmat" \\
        --data.label=task --data.test_subjects=30,31 --finetune.epochs=20
    eegfm finetune --pretrained=eegfm/mape-encoder-base ...     # a Hub repo (encoder or classifier)
    eegfm finetune --pretrained= ...                            # from scratch (--encoder.* sizes)

Each window's label is a field of its recording's metadata (``--data.label``; BIDS gives
``task``, ``subject``, ``session``, ``run``); ``--data.test_subjects`` holds subjects out for a
cross-subject evaluation. For event-locked labels (motor imagery trials) use the Python API:
``eegfm.finetune.LabeledEEG.from_epochs(mne_epochs)``.

Validation (choosing the epoch, early stopping) uses subjects too, never the test subjects:
``--data.valid_subjects``, or by default ``--data.valid_fraction`` (20 %) of the remaining
subjects, at least one, drawn with ``--data.split_seed`` (the same data and seed give the same
split, so a resumed run validates on the same subjects). After every epoch the validation
subjects are scored; the weights of the best epoch by ``--finetune.monitor`` (balanced
accuracy) are kept and training stops after ``--finetune.patience`` (5) epochs without
improvement. With fewer than two training subjects (or ``--data.valid_fraction=0``) there is
no validation: every epoch runs, the last weights are kept, and a WARNING says so.

Writes to --finetune.run_dir: run_config.json (first), checkpoints/ (resume with
--finetune.resume=true), metrics.csv, model/ (the fine-tuned MAPEClassifier; config.json
names its classes, README.md is the model card: training subjects' data, preprocessing, the
command that reruns the run, test and validation figures with the seed), plots/ (loss.png,
validation.png: the validation figures per epoch, confusion.png: the test subjects' confusion
matrix, else the validation one, montage.png: each cap's channels), evaluation.json
(``test``: balanced accuracy, AUROC, Cohen's kappa, weighted F1 and the confusion matrix of the
test subjects; ``valid`` the same for the validation subjects at ``best_epoch``; ``history``
one entry per epoch; ``subjects`` of each split; ``warnings``). A WARNING is logged (and
listed there) when the classifier predicts one class for at least 95 % of a set's windows.
A run directory that holds an earlier run is refused unless resumed or --overwrite is given.
--push_to_hub=you/name uploads the classifier with its card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import PreprocessConfig
from ..finetune import FinetuneConfig
from ..finetune.metrics import one_class_warning
from .overrides import ConfigError, add_config_parser
from .report import caps_of, card_recipe, data_facts, plots_line, typed_command, write_plots
from .rundir import check_run_dir, load_config, start_run
from .runs import EncoderSettings, check_pretrained_source, load_pretrained, resolve_sources

#: What to do when --pretrained is not there.
PRETRAINED_REMEDY = ("pre-train an encoder with `eegfm pretrain` first (it saves runs/pretrain/encoder), pass a "
                     "Hub repo id, or --pretrained= to train from scratch")

#: Early-stopping patience (epochs) of ``eegfm finetune`` when it has validation subjects.
DEFAULT_PATIENCE = 5

logger = logging.getLogger("eegfm.finetune")


@dataclass
class LabeledDataConfig:
    sources: str = "sample"  # ';'-separated: sample | files:GLOB | bids:ROOT[:subs] | moabb:NAME[:subs] | ... | a file/folder
    label: str = "task"  # recording metadata key that gives each window's class (BIDS: task)
    classes: list[str] = field(default_factory=list)  # class names in index order (default: sorted labels)
    test_subjects: list[str] = field(default_factory=list)  # held out for evaluation (cross-subject); empty: none
    valid_subjects: list[str] = field(default_factory=list)  # validation subjects (pick the epoch, stop early); empty: drawn, see valid_fraction
    valid_fraction: float = 0.2  # share of the non-test subjects drawn for validation when valid_subjects is empty (>= 1 subject; 0: no validation)
    split_seed: int = 0  # seed of the draw of validation subjects
    cache_dir: str = "~/.cache/eegfm"  # preprocessed recordings (memory-mapped, reused)
    window_seconds: float = 4.0  # window length (one example each)
    stride_seconds: float | None = None  # hop between windows (default: window_seconds)
    sfreq: float = 200.0  # must match a pre-trained encoder's contract
    l_freq: float | None = 0.1  # band-pass low edge (Hz)
    h_freq: float | None = 75.0  # band-pass high edge (Hz)
    notch_freq: float | None = None  # line frequency to notch (50/60), with harmonics

    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(sfreq=self.sfreq, l_freq=self.l_freq, h_freq=self.h_freq, notch_freq=self.notch_freq)


@dataclass
class ScratchEncoderConfig(EncoderSettings):
    """The encoder's settings (every EncoderConfig field but the rate and contract, which --data.* give),
    used only when --pretrained is empty (training from scratch)."""


@dataclass
class FinetuneRun:
    pretrained: str = "runs/pretrain/encoder"  # encoder or classifier folder / Hub repo id; "" = from scratch
    pooling: str = "mean"  # mean | cls | cls+mean | attention | moments
    head_dropout: float = 0.0  # dropout before the linear head
    encoder: ScratchEncoderConfig = field(default_factory=ScratchEncoderConfig)
    data: LabeledDataConfig = field(default_factory=LabeledDataConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(patience=DEFAULT_PATIENCE))
    push_to_hub: str | None = None  # Hub repo id to upload the fine-tuned classifier to


def _subjects(data) -> list[str]:
    return sorted(set(data.groups.astype(str).tolist()))


def validation_split(train, data_cfg: LabeledDataConfig):
    """Validation subjects out of the training data: ``(train, valid or None, valid subjects)``.

    ``data_cfg.valid_subjects`` when given; else ``round(valid_fraction * n)`` of the ``n``
    training subjects (at least one, at most ``n - 1``) drawn by ``split_seed``; None (no
    validation) with ``valid_fraction=0`` or fewer than two subjects. Windows are split by
    subject (``LabeledEEG.groups``), never within a subject: neighbouring windows of one
    recording would make the validation score optimistic.
    """
    subjects = _subjects(train)
    if data_cfg.valid_subjects:
        chosen = [str(s) for s in data_cfg.valid_subjects]
        unknown = sorted(set(chosen) - set(subjects))
        if unknown:
            raise ValueError(f"--data.valid_subjects {','.join(unknown)} are not among the training subjects "
                             f"{','.join(subjects)}")
        if set(chosen) >= set(subjects):
            raise ValueError(f"--data.valid_subjects={','.join(chosen)} leaves no subject to train on")
    elif data_cfg.valid_fraction > 0 and len(subjects) >= 2:
        n = min(len(subjects) - 1, max(1, round(data_cfg.valid_fraction * len(subjects))))
        chosen = sorted(np.random.default_rng(data_cfg.split_seed).choice(subjects, n, replace=False).tolist())
    else:
        return train, None, []
    rest, valid = train.split_by_group(chosen)
    return rest, valid, chosen


def _labeled_data(cfg: FinetuneRun, preprocess):
    """``(corpus, data, train, valid or None, test or None, {split: subjects})`` of the configured sources."""
    from ..data import EEGCorpus
    from ..data.specs import sources_from_spec
    from ..finetune import LabeledEEG

    corpus = EEGCorpus(sources_from_spec(cfg.data.sources), cfg.data.cache_dir, preprocess,
                       progress=cfg.finetune.progress)
    if len(corpus) == 0:
        raise RuntimeError(f"no usable recordings in --data.sources={cfg.data.sources!r}; skipped: {corpus.skipped}")
    data = LabeledEEG.from_corpus(corpus, cfg.data.window_seconds, cfg.data.label, stride_seconds=cfg.data.stride_seconds,
                                  classes=cfg.data.classes or None)
    train, test = data.split_by_group(cfg.data.test_subjects) if cfg.data.test_subjects else (data, None)
    train, valid, _ = validation_split(train, cfg.data)
    subjects = {"train": _subjects(train), "valid": _subjects(valid) if valid is not None else [],
                "test": _subjects(test) if test is not None else []}
    return corpus, data, train, valid, test, subjects


def _no_validation_warning(cfg: FinetuneRun, subjects: dict) -> str:
    why = ("--data.valid_fraction=0" if cfg.data.valid_fraction <= 0 and not cfg.data.valid_subjects else
           f"the training data has {len(subjects['train'])} subject ({','.join(subjects['train']) or 'unnamed'}); "
           "validation takes whole subjects")
    return (f"no validation subjects ({why}): fine-tuning runs all {cfg.finetune.epochs} epochs and keeps the last "
            "weights, without early stopping (--finetune.patience is not used). Add subjects or give "
            "--data.valid_subjects")


def finetune_run(cfg: FinetuneRun, *, overwrite: bool = False, typed: str | None = None) -> tuple[object, dict]:
    """Fine-tune as configured. Returns (MAPEClassifier, summary dict).

    ``run_config.json`` is written to ``cfg.finetune.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there. The classifier carries the class names
    (``config.json``'s ``class_names``); ``model/README.md`` is the run's model card
    (:func:`card_facts`; ``typed``: the command line as typed, shown in it) and ``plots/``
    holds its figures (:func:`save_plots`); ``summary["plots"]`` lists them.
    """
    from ..finetune import evaluate, finetune
    from ..model_card import update_model_card
    from ..models.classifier import MAPEClassifier
    from ..training import init_distributed, is_main_process

    init_distributed()  # under torchrun: the process group, before run_config.json is written (idempotent)
    finetune_cfg = FinetuneConfig(**dataclasses.asdict(cfg.finetune))  # re-validates overridden values
    preprocess = cfg.data.preprocess_config()
    corpus, data, train, valid, test, subjects = _labeled_data(cfg, preprocess)
    warnings = []
    if finetune_cfg.task == "classification":
        elsewhere = set().union(*(set(d.labels.tolist()) for d in (valid, test) if d is not None))
        missing = sorted(elsewhere - set(train.labels.tolist()))
        if missing:
            names = ", ".join(repr(data.classes[c]) if data.classes else str(c) for c in missing)
            warnings.append(f"the training windows hold no example of class {names}, which the validation or test "
                            "subjects have: the model cannot learn to predict it")
    if valid is None:
        finetune_cfg = dataclasses.replace(finetune_cfg, patience=None)  # nothing to monitor
        warnings.append(_no_validation_warning(cfg, subjects))
    if is_main_process():
        for message in warnings:
            logger.warning(message)
    n_outputs = data.n_classes if finetune_cfg.task == "classification" else int(
        1 if data.labels.ndim == 1 else data.labels.shape[1])
    class_names = ([str(c) for c in data.classes] if finetune_cfg.task == "classification" and data.classes
                   else None)  # saved in config.json: output i is class_names[i]
    torch.manual_seed(finetune_cfg.seed)  # the same --finetune.seed builds the same head and weights
    if cfg.pretrained:
        model = load_pretrained(MAPEClassifier, cfg.pretrained, key="pretrained", remedy=PRETRAINED_REMEDY,
                                n_outputs=n_outputs, pooling=cfg.pooling, head_dropout=cfg.head_dropout,
                                class_names=class_names)
        model.encoder.check_preprocessing(preprocess)
    else:
        model = MAPEClassifier(n_outputs=n_outputs, pooling=cfg.pooling, head_dropout=cfg.head_dropout,
                               encoder=cfg.encoder.encoder_config(preprocess), class_names=class_names)
    start_run(finetune_cfg.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    summary = finetune(model, train, finetune_cfg, valid=valid)  # the test subjects never choose an epoch
    warnings += summary.pop("warnings", [])  # finetune() logged them already
    if test is not None:
        summary["test"] = evaluate(model, test, task=finetune_cfg.task, batch_size=finetune_cfg.batch_size,
                                   warn=False)
        if "confusion_matrix" in summary["test"]:
            message = one_class_warning(summary["test"]["confusion_matrix"], classes=data.classes,
                                        where=f"the test subjects ({len(test)} windows)")
            if message is not None:
                warnings.append(message)
                if is_main_process():
                    logger.warning(message)
    summary.update(windows={"train": len(train), "valid": len(valid) if valid is not None else 0,
                            "test": len(test) if test is not None else 0},
                   subjects=subjects, classes=data.classes, pretrained=cfg.pretrained or None, warnings=warnings)
    if is_main_process():
        run_dir = Path(finetune_cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        model.card_facts = card_facts(cfg, corpus, summary, typed=typed)  # also for push_to_hub
        if (run_dir / "model" / "config.json").is_file():
            update_model_card(run_dir / "model", model.card_facts)
        (run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=float))
        summary["plots"] = [str(p) for p in save_plots(cfg, corpus, summary)]
        if cfg.push_to_hub:
            model.push_to_hub(cfg.push_to_hub)
    return model, summary


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def card_facts(cfg: FinetuneRun, corpus, summary: dict, *, typed: str | None = None):
    """The :class:`~eegfm.model_card.ModelCardFacts` of a fine-tuning run.

    Data: the recordings of the training subjects (those the weights were fitted on). The
    downstream table: each figure of the test subjects and of the validation subjects (at
    the chosen epoch), with ``--finetune.seed``.
    """
    from ..model_card import DownstreamResult, ModelCardFacts

    subjects, windows, seed = summary.get("subjects", {}), summary.get("windows", {}), cfg.finetune.seed
    train_subjects = set(subjects.get("train", []))
    entries = [e for e in corpus.entries if str((e.meta.get("metadata") or {}).get("subject", "")) in train_subjects]
    what = f"the {cfg.data.label!r} label of {', '.join(data_facts(corpus.entries, cfg.data.sources).sources)}"
    rows = []
    for split, words in (("test", "test subjects {} (held out: cross-subject)"),
                         ("valid", "validation subjects {} (chose the epoch)")):
        metrics = summary.get(split)
        if not metrics:
            continue
        task = f"{what}, {words.format(','.join(subjects.get(split, [])))}, {windows.get(split, 0)} windows"
        rows += [DownstreamResult(task=task, metric=label, mean=float(metrics[key]), std=0.0, seeds=[seed])
                 for key, label in SHOWN if _finite(metrics.get(key))]
    history = summary.get("history") or []
    epoch = (f"{summary['best_epoch']} of {len(history)} (best by {cfg.finetune.monitor})"
             if history and cfg.finetune.select_best and summary.get("best_epoch") else
             f"the last of {len(history) or cfg.finetune.epochs}")
    training = {"task": cfg.finetune.task, "label": f"--data.label={cfg.data.label}",
                "classes": ", ".join(map(str, summary.get("classes") or [])) or None, "mode": cfg.finetune.mode,
                "seed": seed, "steps": summary.get("steps"), "epochs": cfg.finetune.epochs, "weights of epoch": epoch,
                "batch size": cfg.finetune.batch_size, "peak learning rate": cfg.finetune.lr,
                "training subjects": ",".join(subjects.get("train", [])) or None,
                "validation subjects": ",".join(subjects.get("valid", [])) or "none",
                "test subjects": ",".join(subjects.get("test", [])) or "none",
                "windows": ", ".join(f"{k} {v}" for k, v in windows.items()) + f" (of {cfg.data.window_seconds:g} s)"}
    limitations = list(summary.get("warnings", []))
    limitations.append(f"Figures of one fine-tuning seed ({seed}): their spread over seeds is not measured.")
    if not subjects.get("test"):
        limitations.append("No test subjects: the validation figures chose the epoch, so they are optimistic.")
    local = Path(cfg.pretrained).expanduser() if cfg.pretrained else None
    base = (str(local.resolve()) if local is not None and local.is_dir() else cfg.pretrained) or \
        f"random initialisation (--finetune.seed={seed}; no pre-training)"
    return ModelCardFacts(summary=f"A MAPEClassifier fine-tuned with `eegfm finetune` to predict {what}.",
                          data=data_facts(entries, cfg.data.sources), base_model=base,
                          recipe=card_recipe("finetune", cfg, FinetuneRun(), cfg.finetune.run_dir, typed=typed,
                                             skip=("finetune.resume",)),
                          training={k: v for k, v in training.items() if v is not None}, downstream=rows,
                          limitations=limitations)


def save_plots(cfg: FinetuneRun, corpus, summary: dict) -> list[Path]:
    """plots/ of a fine-tuning run: loss, validation (per epoch), confusion (test, else validation), montage."""
    from .. import plots

    run_dir = Path(cfg.finetune.run_dir)
    rows = plots.read_metrics(run_dir / "metrics.csv")
    subjects = summary.get("subjects", {})
    split = "test" if "confusion_matrix" in (summary.get("test") or {}) else "valid"
    shown = summary.get(split) or {}
    names = {"test": "test", "valid": "validation"}[split]
    figures = {
        "loss": lambda: plots.loss_curve(rows, title="fine-tuning loss") if any("loss" in r for r in rows) else None,
        "validation": lambda: plots.validation_curve(
            summary["history"], best_epoch=summary.get("best_epoch") if cfg.finetune.select_best else None,
            monitor=cfg.finetune.monitor, title=f"validation subjects {','.join(subjects.get('valid', []))}")
        if summary.get("history") else None,
        "confusion": lambda: plots.confusion_matrix(
            shown["confusion_matrix"], summary.get("classes"),
            title=f"{names} subjects {','.join(subjects.get(split, []))}: confusion matrix")
        if "confusion_matrix" in shown else None,
        "montage": lambda: plots.montage_topography(caps_of(corpus.entries), title="caps of the labelled data"),
    }
    return write_plots(run_dir, figures)


#: Figures of the end summary: (key of evaluate()'s dict, label).
SHOWN = (("balanced_accuracy", "balanced accuracy"), ("auroc", "AUROC"), ("cohen_kappa", "kappa"),
         ("weighted_f1", "weighted F1"), ("mse", "MSE"), ("r2", "R2"))


def _figures(metrics: dict) -> str:
    return ", ".join(f"{label} {metrics[k]:.3f}" for k, label in SHOWN if k in metrics)


def format_confusion(matrix, classes=None, indent: str = "  ", width: int = 24) -> list[str]:
    """Lines of a confusion matrix (rows: true class, with its name; columns: predicted class index).

    Parameters
    ----------
    matrix : array-like of int, shape (n_classes, n_classes)
    classes : list of str, optional
        Class names in index order (cut to ``width`` characters).
    """
    m = np.asarray(matrix, dtype=np.int64)
    names = [str(classes[i]) if classes is not None and i < len(classes) else "" for i in range(len(m))]
    names = [n if len(n) <= width else n[:width - 1] + "~" for n in names]
    label = max([len(f"{i} {n}") for i, n in enumerate(names)] + [len("true \\ predicted")])
    cell = max([len(str(v)) for v in m.ravel()] + [len(str(len(m) - 1))]) + 1
    lines = [indent + "true \\ predicted".ljust(label) + " |" + "".join(str(j).rjust(cell) for j in range(len(m)))]
    for i, row in enumerate(m):
        lines.append(indent + f"{i} {names[i]}".ljust(label) + " |" + "".join(str(v).rjust(cell) for v in row))
    return lines


def format_summary(cfg: FinetuneRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm finetune``.

    The training run; the validation subjects' figures at the chosen epoch; the test subjects'
    balanced accuracy, AUROC, Cohen's kappa and weighted F1 with their confusion matrix (the
    validation one without test subjects); every warning; where the model is.
    """
    windows, loss = summary["windows"], summary.get("train", {}).get("loss")
    subjects = summary.get("subjects", {})
    what = f"{len(summary['classes'])} classes" if cfg.finetune.task == "classification" else "regression"
    lines = [f"finetune: {summary['steps']} steps on {windows['train']} windows ({what})"
             + (f", final loss {loss:.4g}" if loss is not None else "")]
    shown = None
    if "valid" in summary:
        history, best = summary.get("history", []), summary.get("best_epoch")
        stopped = len(history) < cfg.finetune.epochs
        epoch = (f"best epoch {best} of {len(history)}" if cfg.finetune.select_best else
                 f"last epoch {len(history)}") + (" (stopped early)" if stopped else "")
        if "frozen" in summary:  # --finetune.mode=frozen: one cross-validated fit, no epochs
            fit = summary["frozen"]
            epoch = f"{fit['estimator']} on frozen features, {fit['param']}={fit['value']:.3g} by {fit['cv']}"
        lines.append(f"validation subjects {','.join(subjects.get('valid', []))}: {epoch}, "
                     f"{_figures(summary['valid'])} ({windows['valid']} windows)")
        shown = summary["valid"]
    if "test" in summary:
        lines.append(f"test subjects {','.join(cfg.data.test_subjects)}: {_figures(summary['test'])} "
                     f"({windows['test']} windows)")
        shown = summary["test"]
    if shown is not None and "confusion_matrix" in shown:
        lines += format_confusion(shown["confusion_matrix"], summary.get("classes"))
    lines += [f"WARNING: {w}" for w in summary.get("warnings", [])]
    model = Path(cfg.finetune.run_dir) / "model"
    lines.append(f"model: {model} (MAPEClassifier.from_pretrained; model card README.md)"
                 + (f", on the Hub: {cfg.push_to_hub}" if cfg.push_to_hub else ""))
    plots = plots_line(cfg.finetune.run_dir, [Path(p) for p in summary.get("plots", [])])
    return "\n".join(lines + ([plots] if plots else []))


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "finetune", "fine-tune an encoder on labelled EEG", __doc__, FinetuneRun(),
                             run_options=True)


def _check_settings(cfg: FinetuneRun) -> None:
    """Bad --finetune.* values and a missing --pretrained folder, before any work."""
    try:
        FinetuneConfig(**dataclasses.asdict(cfg.finetune))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not 0 <= cfg.data.valid_fraction < 1:
        raise ConfigError(f"--data.valid_fraction must be in [0, 1), got {cfg.data.valid_fraction}")
    overlap = sorted(set(map(str, cfg.data.valid_subjects)) & set(map(str, cfg.data.test_subjects)))
    if overlap:
        raise ConfigError(f"subjects {','.join(overlap)} are in both --data.valid_subjects and --data.test_subjects; "
                          "a test subject must never choose the epoch")
    if cfg.pretrained:
        check_pretrained_source(cfg.pretrained, key="pretrained", remedy=PRETRAINED_REMEDY)


def run(args) -> int:
    from ..training import init_distributed, is_main_process

    cfg = load_config(FinetuneRun(), args, section="finetune")
    cfg.data = dataclasses.replace(cfg.data, sources=resolve_sources(cfg.data.sources))
    _check_settings(cfg)
    overwrite = getattr(args, "overwrite", False)
    init_distributed()
    check_run_dir(cfg.finetune.run_dir, resume=cfg.finetune.resume, overwrite=overwrite, section="finetune")
    _, summary = finetune_run(cfg, overwrite=overwrite, typed=typed_command("finetune", args))
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
