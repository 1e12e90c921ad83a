"""``eegfm finetune``: fine-tune a (pre-trained) encoder on labelled EEG windows.

    eegfm finetune --pretrained=runs/pretrain/encoder --data.sources="bids:/data/eegmat" \\
        --data.label=task --data.test_subjects=30,31 --finetune.epochs=20
    eegfm finetune --pretrained=eegfm/mape-encoder-base ...     # a Hub repo (encoder or classifier)
    eegfm finetune --pretrained= ...                            # from scratch (--encoder.* sizes)

Each window's label is a field of its recording's metadata (``--data.label``; BIDS gives
``task``, ``subject``, ``session``, ``run``); ``--data.test_subjects`` holds subjects out for a
cross-subject evaluation. For event-locked labels (motor imagery trials) use the Python API:
``eegfm.finetune.LabeledEEG.from_epochs(mne_epochs)``.

Writes to --finetune.run_dir: run_config.json (first), checkpoints/ (resume with
--finetune.resume=true), metrics.csv, model/ (the fine-tuned MAPEClassifier), evaluation.json
(balanced accuracy, AUROC). A run directory that holds an earlier run is refused unless
resumed or --overwrite is given. --push_to_hub=you/name uploads the classifier.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import PreprocessConfig
from ..finetune import FinetuneConfig
from .overrides import ConfigError, add_config_parser, config_to_dict
from .rundir import check_run_dir, load_config, start_run
from .runs import check_pretrained_source, load_pretrained, resolve_sources

#: What to do when --pretrained is not there.
PRETRAINED_REMEDY = ("pre-train an encoder with `eegfm pretrain` first (it saves runs/pretrain/encoder), pass a "
                     "Hub repo id, or --pretrained= to train from scratch")


@dataclass
class LabeledDataConfig:
    sources: str = "sample"  # ';'-separated: sample | files:GLOB | bids:ROOT[:subs] | moabb:NAME[:subs] | ... | a file/folder
    label: str = "task"  # recording metadata key that gives each window's class (BIDS: task)
    classes: list[str] = field(default_factory=list)  # class names in index order (default: sorted labels)
    test_subjects: list[str] = field(default_factory=list)  # held out for evaluation (cross-subject); empty: none
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
class ScratchEncoderConfig:
    patch_size: int = 100  # used only when --pretrained is empty (training from scratch)
    embed_dim: int = 200  # width (from scratch only)
    depth: int = 12  # Transformer blocks (from scratch only)
    num_heads: int = 10  # attention heads, divide embed_dim (from scratch only)
    position_embedding: str = "mape"  # "mape" | "sincos1d" (from scratch only)


@dataclass
class FinetuneRun:
    pretrained: str = "runs/pretrain/encoder"  # encoder or classifier folder / Hub repo id; "" = from scratch
    pooling: str = "mean"  # mean | cls | cls+mean
    head_dropout: float = 0.0  # dropout before the linear head
    encoder: ScratchEncoderConfig = field(default_factory=ScratchEncoderConfig)
    data: LabeledDataConfig = field(default_factory=LabeledDataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    push_to_hub: str | None = None  # Hub repo id to upload the fine-tuned classifier to


def _labeled_data(cfg: FinetuneRun, preprocess):
    from ..data import EEGCorpus
    from ..data.specs import sources_from_spec
    from ..finetune import LabeledEEG

    corpus = EEGCorpus(sources_from_spec(cfg.data.sources), cfg.data.cache_dir, preprocess,
                       progress=cfg.finetune.progress)
    if len(corpus) == 0:
        raise RuntimeError(f"no usable recordings in --data.sources={cfg.data.sources!r}; skipped: {corpus.skipped}")
    data = LabeledEEG.from_corpus(corpus, cfg.data.window_seconds, cfg.data.label, stride_seconds=cfg.data.stride_seconds,
                                  classes=cfg.data.classes or None)
    if cfg.data.test_subjects:
        return data, *data.split_by_group(cfg.data.test_subjects)
    return data, data, None


def finetune_run(cfg: FinetuneRun, *, overwrite: bool = False) -> tuple[object, dict]:
    """Fine-tune as configured. Returns (MAPEClassifier, summary dict).

    ``run_config.json`` is written to ``cfg.finetune.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there.
    """
    from ..finetune import evaluate, finetune
    from ..models.classifier import MAPEClassifier
    from ..training import init_distributed, is_main_process

    init_distributed()  # under torchrun: the process group, before run_config.json is written (idempotent)
    finetune_cfg = FinetuneConfig(**dataclasses.asdict(cfg.finetune))  # re-validates overridden values
    preprocess = cfg.data.preprocess_config()
    data, train, test = _labeled_data(cfg, preprocess)
    n_outputs = data.n_classes if finetune_cfg.task == "classification" else int(
        1 if data.labels.ndim == 1 else data.labels.shape[1])
    torch.manual_seed(finetune_cfg.seed)  # the same --finetune.seed builds the same head and weights
    if cfg.pretrained:
        model = load_pretrained(MAPEClassifier, cfg.pretrained, key="pretrained", remedy=PRETRAINED_REMEDY,
                                n_outputs=n_outputs, pooling=cfg.pooling, head_dropout=cfg.head_dropout)
        model.encoder.check_preprocessing(preprocess)
    else:
        model = MAPEClassifier(n_outputs=n_outputs, pooling=cfg.pooling, head_dropout=cfg.head_dropout,
                               encoder={**config_to_dict(cfg.encoder), "sfreq": preprocess.sfreq,
                                        "preprocessing": preprocess.to_dict()})
    start_run(finetune_cfg.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    summary = finetune(model, train, finetune_cfg)  # the test subjects never choose an epoch
    if test is not None:
        summary["valid"] = evaluate(model, test, task=finetune_cfg.task, batch_size=finetune_cfg.batch_size)
    summary.update(windows={"train": len(train), "test": len(test) if test is not None else 0},
                   classes=data.classes, pretrained=cfg.pretrained or None)
    if is_main_process():
        run_dir = Path(finetune_cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=float))
        if cfg.push_to_hub:
            model.push_to_hub(cfg.push_to_hub)
    return model, summary


def format_summary(cfg: FinetuneRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm finetune``: the test figures and where the model is."""
    windows, loss = summary["windows"], summary.get("train", {}).get("loss")
    what = f"{len(summary['classes'])} classes" if cfg.finetune.task == "classification" else "regression"
    lines = [f"finetune: {summary['steps']} steps on {windows['train']} windows ({what})"
             + (f", final loss {loss:.4g}" if loss is not None else "")]
    if "valid" in summary:
        v = summary["valid"]
        shown = ", ".join(f"{k} {v[k]:.3f}" for k in ("balanced_accuracy", "auroc", "mse", "r2") if k in v)
        lines.append(f"test subjects {','.join(cfg.data.test_subjects)}: {shown} ({windows['test']} windows)")
    model = Path(cfg.finetune.run_dir) / "model"
    lines.append(f"model: {model} (MAPEClassifier.from_pretrained)"
                 + (f", on the Hub: {cfg.push_to_hub}" if cfg.push_to_hub else ""))
    return "\n".join(lines)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "finetune", "fine-tune an encoder on labelled EEG", __doc__, FinetuneRun(),
                             run_options=True)


def _check_settings(cfg: FinetuneRun) -> None:
    """Bad --finetune.* values and a missing --pretrained folder, before any work."""
    try:
        FinetuneConfig(**dataclasses.asdict(cfg.finetune))
    except ValueError as err:
        raise ConfigError(str(err)) from err
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
    _, summary = finetune_run(cfg, overwrite=overwrite)
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
