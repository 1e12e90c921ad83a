"""``eegfm tokenizer``: train a neural tokenizer (VQ codebook predicting Fourier amplitudes).

    eegfm tokenizer --data.sources="bids:/data/my_bids;moabb:PhysionetMI:1,2" --train.steps=20000
    torchrun --nproc_per_node 4 -m eegfm tokenizer --data.sources=... # several processes (DDP)

Writes to --train.run_dir: run_config.json (first), checkpoints/ (resume with
--train.resume=true), metrics.csv, model/ (Hub format: load with
NeuralTokenizer.from_pretrained), codebook_usage.png, summary.json. A run directory that holds
an earlier run is refused unless resumed or --overwrite is given. --push_to_hub=you/name
uploads the tokenizer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..training import TrainConfig, Trainer, init_distributed, is_main_process
from .overrides import add_config_parser, config_to_dict
from .rundir import check_run_dir, load_config, start_run
from .runs import DataConfig, TokenizerModelConfig, build_loader, check_loader, resolve_sources


@dataclass
class TokenizerRun:
    model: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/tokenizer"))
    push_to_hub: str | None = None  # Hub repo id to upload the trained tokenizer to


def plot_codebook_usage(counts, path: Path, title: str) -> None:
    """Bar plot of how often each code was used (sorted), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(np.arange(len(counts)), np.maximum(counts, 0.5), width=1.0, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("tokens assigned")
    used = int((counts > 0).sum())
    ax.set_title(f"{title}: {used}/{len(counts)} codes used")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train_tokenizer(cfg: TokenizerRun, *, overwrite: bool = False):
    """Train a tokenizer as configured. Returns (tokenizer, summary dict).

    ``run_config.json`` is written to ``cfg.train.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there.
    """
    from ..models.tokenizer import NeuralTokenizer

    init_distributed()
    corpus, windows, loader = build_loader(cfg.data, cfg.model.patch_size, cfg.train.seed,
                                           progress=cfg.train.progress and is_main_process())
    check_loader(loader)
    torch.manual_seed(cfg.train.seed)  # the same --train.seed builds the same initial weights
    tokenizer = NeuralTokenizer(**config_to_dict(cfg.model), sfreq=cfg.data.sfreq,
                                preprocessing=cfg.data.preprocess_config().to_dict())
    tokenizer.quantizer.reset_stats()
    start_run(cfg.train.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    fit = Trainer(tokenizer, cfg.train, loader.batches).fit()
    stats = tokenizer.codebook_stats()
    summary = {"recordings": len(corpus), "skipped": len(corpus.skipped), "windows": len(windows),
               "padding_fraction": round(loader.batch_sampler.padding_fraction(), 4), "codebook": stats,
               "train": {**{k: v for k, v in fit.items() if isinstance(v, (int, float, str))},
                         "loss": fit["metrics"].get("loss")}}
    if is_main_process():
        run_dir = Path(cfg.train.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        plot_codebook_usage(tokenizer.quantizer.usage_counts.cpu().numpy(), run_dir / "codebook_usage.png",
                            f"tokenizer after {cfg.train.steps} steps")
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if cfg.push_to_hub:
            tokenizer.push_to_hub(cfg.push_to_hub)
    return tokenizer, summary


def format_summary(cfg: TokenizerRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm tokenizer``: what was learnt, where the model is, what next."""
    train, c = summary["train"], summary["codebook"]
    model = Path(cfg.train.run_dir) / "model"
    loss = f", final loss {train['loss']:.4g}" if train.get("loss") is not None else ""
    lines = [f"tokenizer: {train['steps']} steps in {train['seconds']:.0f} s{loss}; {summary['recordings']} "
             f"recordings, {summary['windows']} windows",
             f"codebook: {c['usage']:.1%} of {cfg.model.num_codes} codes used, perplexity {c['perplexity']:.1f}, "
             f"{c['dead']} dead, {c['restarts']} restarts",
             f"model: {model} (NeuralTokenizer.from_pretrained)" + (f", on the Hub: {cfg.push_to_hub}"
                                                                    if cfg.push_to_hub else ""),
             f"next: eegfm pretrain --tokenizer={model} --data.sources=..."]
    return "\n".join(lines)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "tokenizer", "train a neural tokenizer", __doc__, TokenizerRun(), run_options=True)


def run(args) -> int:
    cfg = load_config(TokenizerRun(), args, section="train")
    cfg.data = dataclasses.replace(cfg.data, sources=resolve_sources(cfg.data.sources))
    overwrite = getattr(args, "overwrite", False)
    init_distributed()
    check_run_dir(cfg.train.run_dir, resume=cfg.train.resume, overwrite=overwrite, section="train")
    _, summary = train_tokenizer(cfg, overwrite=overwrite)
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
