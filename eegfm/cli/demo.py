"""``eegfm demo``: the whole pre-training path on the real EEG sample shipped with eegfm (CPU).

1. preprocesses three real recordings made with two caps (64 channels at 160 Hz; 19 channels
   at 500 Hz with legacy 10-20 names) into a cache, each channel placed by its proportion
   coordinates, and batches 4-s windows of both caps together;
2. trains a small neural tokenizer and reports the usage and perplexity of its final codebook
   on the sample's windows encoded after training (a WARNING when the codebook collapsed);
3. pre-trains a small MAPEEncoder by masked code prediction (random, channel and temporal
   masks) and reports masked-token accuracy beside the most-frequent-code baseline;
4. saves the encoder in Hugging Face Hub format (with its model card), reloads it and checks
   identical outputs; each run's figures are in <out>/tokenizer/plots and <out>/pretrain/plots.

It ends with its own timing, ``demo: N s wall, M CPU-s`` (from the start of the demo, after the
imports; CPU time of all its threads). It needs only eegfm's core dependencies
(``bash scripts/setup.sh --demo`` installs just those).

The sample is about a minute of EEG, so the figures show that the path works, not what a
model pre-trained on thousands of hours learns.

    eegfm demo [--out=demo_output] [--tokenizer_steps=150] [--pretrain_steps=150] [--threads=1]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..training import TrainConfig
from .overrides import add_config_parser, apply_overrides
from .pretrain import PretrainRun, format_evaluation, pretrain
from .runs import DataConfig, PretrainModelConfig, TokenizerModelConfig
from .tokenizer import TokenizerRun, format_codebook, train_tokenizer


@dataclass
class DemoRun:
    out: str = "demo_output"  # tokenizer/, pretrain/ (encoder/ inside), cache/ go here
    tokenizer_steps: int = 150  # training steps of the small tokenizer
    pretrain_steps: int = 150  # masked pre-training steps of the small encoder
    batch_size: int = 16  # windows per batch
    seed: int = 0  # the same seed gives the same run
    threads: int = 1  # torch CPU threads (0: torch's default); 1 keeps these small models fast when other processes share the cores
    progress: bool = True  # progress bars


def _train(cfg: DemoRun, name: str, steps: int, lr: float) -> TrainConfig:
    return TrainConfig(steps=steps, lr=lr, warmup_steps=max(steps // 10, 1), log_every=max(steps // 5, 1),
                       checkpoint_every=steps, seed=cfg.seed, run_dir=str(Path(cfg.out) / name),
                       progress=cfg.progress, metrics="csv")


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def format_timing(wall: float, cpu: float) -> str:
    """The demo's last line: ``demo: 95 s wall, 160 CPU-s``."""
    return f"demo: {wall:.0f} s wall, {cpu:.0f} CPU-s"


def run_demo(cfg: DemoRun) -> dict:
    """Run the demo; returns the tokenizer and pretraining summaries, the checks and ``timing``
    (``wall_s``, ``cpu_s``: seconds since the demo started, printed as its last line)."""
    from ..models.encoder import MAPEEncoder

    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_demo(cfg, MAPEEncoder)
    finally:
        torch.set_num_threads(threads)


def _run_demo(cfg: DemoRun, MAPEEncoder) -> dict:
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    torch.manual_seed(cfg.seed)
    # 0.5 Hz high-pass: the sample's excerpts (16-30 s) are too short for a 0.1 Hz filter
    data = DataConfig(sources="sample", cache_dir=str(Path(cfg.out) / "cache"), window_seconds=4.0,
                      stride_seconds=1.0, batch_size=cfg.batch_size, num_threads=2, l_freq=0.5)
    tokenizer_model = TokenizerModelConfig(patch_size=100, embed_dim=64, depth=2, num_heads=4, code_dim=16,
                                           num_codes=128, decoder_depth=1, dead_code_steps=20)
    print(f"[1/3] tokenizer: {tokenizer_model.num_codes} codes, D={tokenizer_model.embed_dim}, "
          f"{cfg.tokenizer_steps} steps on the bundled sample")
    tokenizer, tok = train_tokenizer(TokenizerRun(model=tokenizer_model, data=data,
                                                  train=_train(cfg, "tokenizer", cfg.tokenizer_steps, 2e-3)),
                                     log_warnings=False)  # printed below, in place
    print(f"      {tok['recordings']} recordings, {tok['windows']} windows of 4 s, "
          f"{tok['padding_fraction']:.0%} padding in mixed-cap batches")
    print(f"      {format_codebook(tok)}")  # the final codebook, not counts over the run
    for warning in tok["warnings"]:
        print(f"      WARNING: {warning}")

    print(f"[2/3] masked pre-training: random + channel + temporal masks (ratio 0.5), {cfg.pretrain_steps} steps")
    pretrainer, pre = pretrain(PretrainRun(tokenizer=str(Path(cfg.out) / "tokenizer" / "model"),
                                           model=PretrainModelConfig(embed_dim=64, depth=2, num_heads=4),
                                           data=data, train=_train(cfg, "pretrain", cfg.pretrain_steps, 1e-3),
                                           eval_batches=8), tokenizer=tokenizer,
                        log_warnings=False)  # printed below, in place
    print("      " + format_evaluation(pre["evaluation"]))
    for warning in pre["warnings"]:  # masked accuracy not above the most-frequent-code baseline
        print(f"      WARNING: {warning}")

    encoder_dir = Path(cfg.out) / "pretrain" / "encoder"
    reloaded = MAPEEncoder.from_pretrained(encoder_dir)
    x, positions = torch.randn(2, 19, 800) * 20, torch.rand(19, 2) * 100
    pretrainer.encoder.eval()
    with torch.no_grad():
        same = torch.equal(reloaded(x, positions).cls, pretrainer.encoder(x, positions).cls)
    files = ", ".join(sorted(p.name for p in encoder_dir.iterdir()))
    print(f"[3/3] pre-trained encoder saved in Hub format: {encoder_dir} ({files}); reloaded outputs identical: {same}")
    for name, summary in (("tokenizer", tok), ("pretrain", pre)):
        if summary.get("plots"):
            print(f"      plots of the {name} run: {Path(cfg.out) / name / 'plots'}/ "
                  f"({', '.join(Path(p).stem for p in summary['plots'])})")
    print(f"      load it with MAPEEncoder.from_pretrained({str(encoder_dir)!r})")
    timing = {"wall_s": time.perf_counter() - start, "cpu_s": _cpu_seconds() - cpu_start}
    print(format_timing(timing["wall_s"], timing["cpu_s"]), flush=True)
    return {"tokenizer": tok, "pretrain": pre, "reload_identical": same, "timing": timing}


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "demo", "tokenizer + masked pre-training on the bundled real EEG sample", __doc__, DemoRun())


def run(args) -> int:
    result = run_demo(apply_overrides(DemoRun(), args.overrides))
    return 0 if result["reload_identical"] else 1
