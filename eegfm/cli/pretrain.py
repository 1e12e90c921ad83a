"""``eegfm pretrain``: masked pre-training of a MAPEEncoder on a trained tokenizer's codes.

    eegfm pretrain --tokenizer=runs/tokenizer/model --data.sources="bids:/data/my_bids" --train.steps=50000
    torchrun --nproc_per_node 4 -m eegfm pretrain --tokenizer=... # several processes (DDP)

Writes to --train.run_dir: checkpoints/ (resume with --train.resume=true), metrics.csv,
model/ (the whole pretrainer), encoder/ (the pre-trained MAPEEncoder in Hub format: load it
with MAPEEncoder.from_pretrained and fine-tune), evaluation.json (masked-token accuracy per
strategy beside the most-frequent-code baseline). --push_to_hub=you/name uploads the encoder.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.code_cache import cache_codes
from ..training import TrainConfig, Trainer, init_distributed, is_main_process
from .overrides import add_config_parser, apply_overrides, config_to_dict
from .runs import DataConfig, PretrainModelConfig, build_loader, check_loader


@dataclass
class PretrainRun:
    tokenizer: str = "runs/tokenizer/model"  # trained tokenizer: a folder from `eegfm tokenizer` or a Hub repo id
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/pretrain"))
    eval_batches: int = 20  # batches for the final masked-accuracy report (seeded masks)
    cache_codes: bool = True  # tokenizer codes computed once (fp32) into <cache_dir>/codes and reused by every run
    push_to_hub: str | None = None  # Hub repo id to upload the pre-trained encoder to


def pretrain(cfg: PretrainRun, tokenizer=None):
    """Pre-train as configured (``tokenizer`` given or loaded from ``cfg.tokenizer``).

    Returns (pretrainer, summary dict with the evaluation).
    """
    from ..models.pretrainer import MaskedPretrainer
    from ..models.tokenizer import NeuralTokenizer

    init_distributed()
    tokenizer = tokenizer if tokenizer is not None else NeuralTokenizer.from_pretrained(cfg.tokenizer)
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
    fit = Trainer(pretrainer, cfg.train, loader.batches).fit()
    evaluation = pretrainer.evaluate(itertools.islice(loader.batches(epoch=10_000), cfg.eval_batches),
                                     seed=cfg.train.seed)
    summary = {"recordings": len(corpus), "windows": len(windows), "evaluation": evaluation,
               "train": {k: v for k, v in fit.items() if isinstance(v, (int, float, str))}}
    if is_main_process():
        run_dir = Path(cfg.train.run_dir)
        pretrainer.encoder.save_pretrained(run_dir / "encoder")
        (run_dir / "run_config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
        (run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
        if cfg.push_to_hub:
            pretrainer.encoder.push_to_hub(cfg.push_to_hub)
    return pretrainer, summary


def format_evaluation(evaluation: dict) -> str:
    parts = [f"{name} {acc:.1%}" for name, acc in evaluation["accuracy"].items()]
    return f"masked-token accuracy: {', '.join(parts)} (most-frequent-code baseline {evaluation['baseline_accuracy']:.1%})"


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "pretrain", "masked pre-training of an encoder", __doc__, PretrainRun())


def run(args) -> int:
    cfg = apply_overrides(PretrainRun(), args.overrides)
    _, summary = pretrain(cfg)
    if is_main_process():
        print(format_evaluation(summary["evaluation"]) + f" -> {Path(cfg.train.run_dir) / 'encoder'}")
    return 0
