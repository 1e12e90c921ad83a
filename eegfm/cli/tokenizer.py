"""``eegfm tokenizer``: train a neural tokenizer (VQ codebook predicting Fourier amplitudes).

    eegfm tokenizer --data.sources="bids:/data/my_bids;moabb:PhysionetMI:1,2" --train.steps=20000
    torchrun --nproc_per_node 4 -m eegfm tokenizer --data.sources=... # several processes (DDP)

Writes to --train.run_dir: run_config.json (first), checkpoints/ (resume with
--train.resume=true), metrics.csv, model/ (Hub format: load with
NeuralTokenizer.from_pretrained; its README.md is the model card: data, preprocessing, the
command that reruns the run, the final codebook's health), codebook_usage.png,
evaluation.json, summary.json, and plots/: loss.png, codebook.png (usage and perplexity over
steps), spectra.png (true vs predicted Fourier amplitudes of a few patches), montage.png
(each cap's channels at their proportion coordinates). A run directory that holds an earlier
run is refused unless resumed or --overwrite is given. --push_to_hub=you/name uploads the
tokenizer with its card.

Codebook health. After training, a fixed sample of windows (--eval_windows, default 512,
evenly spaced over all windows, so every recording in proportion; all of them when there are
fewer) is encoded with the final codebook. The share of codes these tokens use and the
perplexity of their code distribution (1: every patch gets the same code; K: all K codes
equally often) go to evaluation.json and summary.json (``codebook``), the end summary and the
plot codebook_usage.png. The command trains on every window, so these windows were seen in
training: they measure the final codebook, not generalisation. A WARNING says the codebook
collapsed when it uses under 5 % of its codes or its perplexity is under 2. The figures
counted over all training steps, the k-means start included (which spreads the first batch
over every code), are kept apart as ``codebook_training``; metrics.csv's codebook_usage and
codebook_perplexity are those of each logged batch.
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

from ..modules.quantizer import code_usage, collapse_warning
from ..training import TrainConfig, Trainer, init_distributed, is_main_process
from .overrides import ConfigError, add_config_parser
from .report import (caps_of, card_recipe, data_facts, patch_spectra, plots_line, spectra_figure, typed_command,
                     write_plots)
from .rundir import check_run_dir, load_config, start_run
from .runs import DataConfig, TokenizerModelConfig, build_loader, check_loader, resolve_sources


@dataclass
class TokenizerRun:
    model: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/tokenizer"))
    eval_windows: int = 512  # windows encoded after training to measure the final codebook's usage and perplexity (evenly spaced; 0: skip)
    push_to_hub: str | None = None  # Hub repo id to upload the trained tokenizer to


logger = logging.getLogger("eegfm.tokenizer")


def evaluation_windows(n_windows: int, n: int) -> np.ndarray:
    """The fixed sample of windows the final codebook is measured on.

    ``min(n, n_windows)`` indices evenly spaced over ``0..n_windows-1`` (first and last
    included), so every recording contributes in proportion to its length; int64, shape (m,).
    """
    m = max(0, min(int(n), int(n_windows)))
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    return np.linspace(0, n_windows - 1, m).round().astype(np.int64)  # distinct: spacing >= 1


def final_codebook_usage(tokenizer, windows, n: int, batch_size: int) -> tuple[dict, torch.Tensor]:
    """Usage and perplexity of ``tokenizer``'s current codebook on :func:`evaluation_windows`.

    Parameters
    ----------
    tokenizer : NeuralTokenizer
    windows : WindowDataset
        The windows to draw the sample from.
    n : int
        Windows to encode (at most ``len(windows)``).
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    (dict, torch.Tensor)
        :func:`eegfm.modules.quantizer.code_usage` plus ``windows`` (how many were encoded),
        and the counts per code, int64 of shape (num_codes,).
    """
    indices = evaluation_windows(len(windows), n)
    batches = (windows.read_batch(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size))
    counts = tokenizer.code_counts(batches)
    return {**code_usage(counts), "windows": int(len(indices))}, counts


def plot_codebook_usage(counts, path: Path, title: str) -> None:
    """Bar plot of how often each code was used (sorted), saved as a PNG (:func:`eegfm.plots.codebook_counts`).

    The title is ``title`` followed by ``: U/K codes used, perplexity P`` of ``counts``
    (array-like of int, shape (K,)); say in ``title`` what was counted.
    """
    from ..plots import codebook_counts, save_figure

    save_figure(codebook_counts(counts, title=title), path, dpi=120)


def tokenizer_spectra(tokenizer, windows, entries, n: int = 4) -> dict | None:
    """The tokenizer's decoded vs true Fourier amplitudes of ``n`` patches (:func:`~eegfm.cli.report.patch_spectra`)."""
    device = next(tokenizer.parameters()).device

    def predict(batch):
        was_training = tokenizer.training
        tokenizer.eval()  # eval: the codebook is left as it is
        try:
            with torch.no_grad():
                out = tokenizer(**batch.to(device).encoder_inputs())
        finally:
            tokenizer.train(was_training)
        return out.target, out.amplitude, out.token_mask

    return patch_spectra(windows, entries, predict, patch_size=tokenizer.encoder.patch_size, n=n)


def card_facts(cfg: TokenizerRun, corpus, windows, summary: dict, *, typed: str | None = None):
    """The :class:`~eegfm.model_card.ModelCardFacts` of a tokenizer run (data, recipe, codebook health)."""
    from ..model_card import ModelCardFacts

    train, codebook = summary["train"], summary.get("codebook")
    training = {"steps": train.get("steps"), "seed": cfg.train.seed,
                "batch size": cfg.data.batch_size, "peak learning rate": cfg.train.lr,
                "windows": f"{len(windows)} windows of {cfg.data.window_seconds:g} s",
                "final training loss": round(train["loss"], 4) if train.get("loss") is not None else None,
                "codebook": format_codebook(summary).removeprefix("codebook: ")}
    if codebook is not None:
        training["codebook measured on"] = codebook["measured_on"]
    limitations = list(summary.get("warnings", []))
    limitations.append("The codebook figures are measured on training windows (the tokenizer trains on every "
                       "window), not on held-out data.")
    return ModelCardFacts(data=data_facts(corpus.entries, cfg.data.sources),
                          recipe=card_recipe("tokenizer", cfg, TokenizerRun(), cfg.train.run_dir, typed=typed,
                                             skip=("train.resume",)),
                          base_model=f"random initialisation (--train.seed={cfg.train.seed})",
                          training={k: v for k, v in training.items() if v is not None}, limitations=limitations)


def save_plots(cfg: TokenizerRun, tokenizer, corpus, windows, codebook: dict | None) -> list[Path]:
    """plots/ of a tokenizer run: loss, codebook (over steps), spectra, montage. Returns the files written."""
    from .. import plots

    run_dir = Path(cfg.train.run_dir)
    rows = plots.read_metrics(run_dir / "metrics.csv")
    figures = {
        "loss": lambda: plots.loss_curve(rows, title=f"tokenizer training loss ({cfg.train.steps} steps)")
        if any("loss" in r for r in rows) else None,
        "codebook": lambda: plots.codebook_curves(rows, final=codebook, num_codes=cfg.model.num_codes)
        if any("codebook_usage" in r for r in rows) else None,
        "spectra": lambda: spectra_figure(tokenizer_spectra(tokenizer, windows, corpus.entries),
                                           "tokenizer: true vs decoded Fourier amplitudes (training windows)"),
        "montage": lambda: plots.montage_topography(caps_of(corpus.entries), title="caps of the training data"),
    }
    return write_plots(run_dir, figures)


def train_tokenizer(cfg: TokenizerRun, *, overwrite: bool = False, log_warnings: bool = True,
                    typed: str | None = None):
    """Train a tokenizer as configured. Returns (tokenizer, summary dict).

    ``run_config.json`` is written to ``cfg.train.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there. After training, ``model/README.md`` is
    the run's model card (:func:`card_facts`; ``typed``: the command line as typed, shown in
    it) and ``plots/`` holds its figures (:func:`save_plots`); ``summary["plots"]`` lists them.

    The summary holds ``codebook``: the final codebook's ``usage``, ``perplexity``,
    ``codes_used``, ``num_codes``, ``tokens`` on ``windows`` windows encoded after training
    (:func:`final_codebook_usage`; None with ``cfg.eval_windows=0``), with ``dead``,
    ``restarts`` and ``collapsed``; ``codebook_training``: usage and perplexity of all the
    training assignments (k-means start included); ``warnings``: a collapse warning, also
    logged (logger ``eegfm.tokenizer``) unless ``log_warnings=False`` (the caller shows it).
    """
    from ..model_card import update_model_card
    from ..models.tokenizer import NeuralTokenizer

    if cfg.eval_windows < 0:
        raise ValueError(f"eval_windows must be >= 0, got {cfg.eval_windows}")
    init_distributed()
    corpus, windows, loader = build_loader(cfg.data, cfg.model.patch_size, cfg.train.seed,
                                           progress=cfg.train.progress and is_main_process())
    check_loader(loader)
    torch.manual_seed(cfg.train.seed)  # the same --train.seed builds the same initial weights
    tokenizer = NeuralTokenizer(encoder=cfg.model.encoder_config(cfg.data.preprocess_config()),
                                **cfg.model.model_arguments())
    tokenizer.quantizer.reset_stats()
    start_run(cfg.train.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    fit = Trainer(tokenizer, cfg.train, loader.batches).fit()
    stats = tokenizer.codebook_stats()  # summed over the whole run, k-means start included
    training = {"usage": stats["usage"], "perplexity": stats["perplexity"],
                "measured_on": "every training assignment since step 1, the k-means-initialised first batch "
                               "included (overstates a codebook that collapsed later)"}
    codebook, warnings, counts = None, [], None
    if cfg.eval_windows > 0:  # every process does it (deterministic, no collective): the same summary on each
        usage, counts = final_codebook_usage(tokenizer, windows, cfg.eval_windows, cfg.data.batch_size)
        seen = f"{usage['windows']} of the {len(windows)} windows"
        codebook = {**usage, "dead": stats["dead"], "restarts": stats["restarts"],
                    "measured_on": f"the final codebook: {seen} (evenly spaced) encoded after training; the "
                                   "tokenizer trains on every window, so they are not held out"}
        message = collapse_warning(usage, where=f"{seen} encoded after training")
        codebook["collapsed"] = message is not None
        if message is not None:
            warnings.append(message)
            if is_main_process() and log_warnings:
                logger.warning(message)
    summary = {"recordings": len(corpus), "skipped": len(corpus.skipped), "windows": len(windows),
               "padding_fraction": round(loader.batch_sampler.padding_fraction(), 4), "codebook": codebook,
               "codebook_training": {**training, "dead": stats["dead"], "restarts": stats["restarts"]},
               "warnings": warnings,
               "train": {**{k: v for k, v in fit.items() if isinstance(v, (int, float, str))},
                         "loss": fit["metrics"].get("loss")}}
    if is_main_process():
        run_dir = Path(cfg.train.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if counts is not None:
            plot_codebook_usage(counts.numpy(), run_dir / "codebook_usage.png",
                                f"final codebook ({cfg.train.steps} steps) on {codebook['windows']} windows")
        else:
            plot_codebook_usage(tokenizer.quantizer.usage_counts.cpu().numpy(), run_dir / "codebook_usage.png",
                                f"all training assignments of {cfg.train.steps} steps, k-means start included")
        tokenizer.card_facts = card_facts(cfg, corpus, windows, summary, typed=typed)  # also for push_to_hub
        if (run_dir / "model" / "config.json").is_file():
            update_model_card(run_dir / "model", tokenizer.card_facts)
        evaluation = {k: summary[k] for k in ("codebook", "codebook_training", "warnings")}
        (run_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        summary["plots"] = [str(p) for p in save_plots(cfg, tokenizer, corpus, windows, codebook)]
        if cfg.push_to_hub:
            tokenizer.push_to_hub(cfg.push_to_hub)
    return tokenizer, summary


def format_codebook(summary: dict) -> str:
    """One line on the final codebook (``summary["codebook"]``), or on the training counts when it was not measured."""
    c, t = summary.get("codebook"), summary["codebook_training"]
    if c is None:
        return (f"codebook: final codebook not measured (--eval_windows=0); over all training steps (k-means start "
                f"included) {t['usage']:.1%} of codes used, perplexity {t['perplexity']:.1f}")
    return (f"codebook: final codebook on {c['windows']} windows encoded after training uses {c['codes_used']} of "
            f"{c['num_codes']} codes ({c['usage']:.1%}), perplexity {c['perplexity']:.1f}; {c['dead']} dead, "
            f"{c['restarts']} restarts" + (", COLLAPSED" if c.get("collapsed") else ""))


def format_summary(cfg: TokenizerRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm tokenizer``: what was learnt, the final codebook's health, warnings,
    where the model is, what next."""
    train = summary["train"]
    model = Path(cfg.train.run_dir) / "model"
    loss = f", final loss {train['loss']:.4g}" if train.get("loss") is not None else ""
    lines = [f"tokenizer: {train['steps']} steps in {train['seconds']:.0f} s{loss}; {summary['recordings']} "
             f"recordings, {summary['windows']} windows",
             format_codebook(summary),
             *(f"WARNING: {w}" for w in summary.get("warnings", [])),
             f"model: {model} (NeuralTokenizer.from_pretrained; model card README.md)"
             + (f", on the Hub: {cfg.push_to_hub}" if cfg.push_to_hub else ""),
             plots_line(cfg.train.run_dir, [Path(p) for p in summary.get("plots", [])]),
             f"next: eegfm pretrain --tokenizer={model} --data.sources=..."]
    return "\n".join(line for line in lines if line)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "tokenizer", "train a neural tokenizer", __doc__, TokenizerRun(), run_options=True)


def run(args) -> int:
    cfg = load_config(TokenizerRun(), args, section="train")
    cfg.data = dataclasses.replace(cfg.data, sources=resolve_sources(cfg.data.sources))
    if cfg.eval_windows < 0:
        raise ConfigError(f"--eval_windows must be >= 0 (0: skip the final codebook check), got {cfg.eval_windows}")
    overwrite = getattr(args, "overwrite", False)
    init_distributed()
    check_run_dir(cfg.train.run_dir, resume=cfg.train.resume, overwrite=overwrite, section="train")
    _, summary = train_tokenizer(cfg, overwrite=overwrite, typed=typed_command("tokenizer", args))
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
