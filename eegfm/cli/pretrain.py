"""``eegfm pretrain``: masked pre-training of a MAPEEncoder on a trained tokenizer's codes.

    eegfm pretrain --tokenizer=runs/tokenizer/model --data.sources="bids:/data/my_bids" --train.steps=50000
    torchrun --nproc_per_node 4 -m eegfm pretrain --tokenizer=... # several processes (DDP)

--tokenizer is the model/ folder of an `eegfm tokenizer` run (or a Hub repo id). Writes to
--train.run_dir: run_config.json (first), checkpoints/ (resume with --train.resume=true),
metrics.csv, model/ (the whole pretrainer), encoder/ (the pre-trained MAPEEncoder in Hub
format: load it with MAPEEncoder.from_pretrained and fine-tune), evaluation.json (masked-token
accuracy per strategy beside the most-frequent-code baseline). A run directory that holds an
earlier run is refused unless resumed or --overwrite is given. --push_to_hub=you/name uploads
the encoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.code_cache import cache_codes
from ..training import TrainConfig, Trainer, init_distributed, is_main_process
from .overrides import add_config_parser, config_to_dict
from .rundir import check_run_dir, load_config, start_run
from .runs import DataConfig, PretrainModelConfig, build_loader, check_loader, load_pretrained, resolve_sources

#: What to do when --tokenizer is not there.
TOKENIZER_REMEDY = ("train one with `eegfm tokenizer` first (it saves runs/tokenizer/model), or pass "
                    "--tokenizer=FOLDER (the model/ folder of a tokenizer run) or a Hub repo id")


@dataclass
class PretrainRun:
    tokenizer: str = "runs/tokenizer/model"  # the model/ folder of an `eegfm tokenizer` run, or a Hub repo id
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/pretrain"))
    eval_batches: int = 20  # batches for the final masked-accuracy report (seeded masks)
    cache_codes: bool = True  # tokenizer codes computed once (fp32) into <cache_dir>/codes and reused by every run
    push_to_hub: str | None = None  # Hub repo id to upload the pre-trained encoder to


def load_tokenizer(cfg: PretrainRun):
    """The tokenizer ``cfg.tokenizer`` names, checked against the data's preprocessing."""
    from ..models.tokenizer import NeuralTokenizer

    tokenizer = load_pretrained(NeuralTokenizer, cfg.tokenizer, key="tokenizer", remedy=TOKENIZER_REMEDY)
    tokenizer.check_preprocessing(cfg.data.preprocess_config())
    return tokenizer


def pretrain(cfg: PretrainRun, tokenizer=None, *, overwrite: bool = False):
    """Pre-train as configured (``tokenizer`` given or loaded from ``cfg.tokenizer``).

    ``run_config.json`` is written to ``cfg.train.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there.

    Returns (pretrainer, summary dict with the evaluation).
    """
    from ..models.pretrainer import MaskedPretrainer

    init_distributed()
    if tokenizer is None:
        tokenizer = load_tokenizer(cfg)
    else:
        tokenizer.check_preprocessing(cfg.data.preprocess_config())
    patch_size = tokenizer.encoder.patch_size
    corpus, windows, loader = build_loader(cfg.data, patch_size, cfg.train.seed,
                                           progress=cfg.train.progress and is_main_process())
    check_loader(loader)
    if cfg.cache_codes:  # the frozen tokenizer runs once per window, not once per step
        loader.windows = cache_codes(windows, tokenizer, cfg.data.cache_dir,
                                     progress=cfg.train.progress and is_main_process())
    torch.manual_seed(cfg.train.seed)  # the same --train.seed builds the same initial weights
    pretrainer = MaskedPretrainer(patch_size=patch_size, num_codes=tokenizer.quantizer.num_codes,
                                  sfreq=cfg.data.sfreq, preprocessing=cfg.data.preprocess_config().to_dict(),
                                  **config_to_dict(cfg.model)).attach_tokenizer(tokenizer)
    start_run(cfg.train.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    fit = Trainer(pretrainer, cfg.train, loader.batches).fit()
    evaluation = pretrainer.evaluate(itertools.islice(loader.batches(epoch=10_000), cfg.eval_batches),
                                     seed=cfg.train.seed)
    summary = {"recordings": len(corpus), "windows": len(windows), "evaluation": evaluation,
               "train": {**{k: v for k, v in fit.items() if isinstance(v, (int, float, str))},
                         "loss": fit["metrics"].get("loss")}}
    if is_main_process():
        run_dir = Path(cfg.train.run_dir)
        pretrainer.encoder.save_pretrained(run_dir / "encoder")
        (run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
        if cfg.push_to_hub:
            pretrainer.encoder.push_to_hub(cfg.push_to_hub)
    return pretrainer, summary


def format_evaluation(evaluation: dict) -> str:
    parts = [f"{name} {acc:.1%}" for name, acc in evaluation["accuracy"].items()]
    return f"masked-token accuracy: {', '.join(parts)} (most-frequent-code baseline {evaluation['baseline_accuracy']:.1%})"


def format_summary(cfg: PretrainRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm pretrain``: what was learnt, where the encoder is, what next."""
    train = summary["train"]
    encoder = Path(cfg.train.run_dir) / "encoder"
    loss = f", final loss {train['loss']:.4g}" if train.get("loss") is not None else ""
    lines = [f"pretrain: {train['steps']} steps in {train['seconds']:.0f} s{loss}; {summary['recordings']} "
             f"recordings, {summary['windows']} windows",
             format_evaluation(summary["evaluation"]),
             f"encoder: {encoder} (MAPEEncoder.from_pretrained)" + (f", on the Hub: {cfg.push_to_hub}"
                                                                   if cfg.push_to_hub else ""),
             f"next: eegfm finetune --pretrained={encoder} --data.sources=... --data.label=..."]
    return "\n".join(lines)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "pretrain", "masked pre-training of an encoder", __doc__, PretrainRun(),
                             run_options=True)


def run(args) -> int:
    cfg = load_config(PretrainRun(), args, section="train")
    cfg.data = dataclasses.replace(cfg.data, sources=resolve_sources(cfg.data.sources))
    overwrite = getattr(args, "overwrite", False)
    init_distributed()
    tokenizer = load_tokenizer(cfg)  # a missing tokenizer is reported before the run directory is looked at
    check_run_dir(cfg.train.run_dir, resume=cfg.train.resume, overwrite=overwrite, section="train")
    _, summary = pretrain(cfg, tokenizer, overwrite=overwrite)
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
