"""Experiment: masked pre-training on the patches' Fourier amplitudes directly (no codebook).

    python benchmarks/spectrum_pretrain_probe.py --sources "bids:../shared/data/eegmat_bids:02,03" \
        --steps 1000 --run-dir /tmp/eegfm-spectrum [--target signal]

The recipe log (``benchmarks/results/downstream/RECIPE.md``) found that masked prediction of
the VQ tokenizer's codes gives an initialisation no better (800 steps) or worse (3000 steps)
than random on Mental Arithmetic. This probe swaps only the target: the masked tokens regress
the tokenizer's own target (:func:`eegfm.models.tokenizer.amplitude_target`, the per-sample
z-scored ``|rfft|`` of each patch) with a mean squared error, with the same encoder, masking
(single pass: one of random / channel / temporal per sample), optimiser and data path as
``eegfm pretrain``. The target is now the library's (``MaskedPretrainer(target="spectrum")``,
``eegfm pretrain --model.target=spectrum``); this script keeps recipe rows 11-12
reproducible with their small settings and its own flags. It writes a ``MAPEEncoder`` folder
(``<run-dir>/encoder``) that ``benchmarks/finetune_probe.py`` and
``benchmarks/feature_probe.py`` take, ``metrics.csv`` (loss and masked R^2 per strategy,
``accuracy_<strategy>``) and ``evaluation.json`` with the masked-token R^2 per strategy
(1 - squared error / sum of squared targets, pooled over 10 batches on seeded masks;
predicting the per-sample mean, 0, scores 0).

``--target signal`` (recipe row 24) swaps the amplitudes for each patch's raw samples
z-scored per patch (MAE's normalised-pixel target, ``MaskedPretrainer(target="signal")``),
everything else unchanged; the default, ``spectrum``, keeps rows 11-12 reproducible.

``--strategies channel`` (recipe row 25) trains with channel masking only (a comma list of
``random``, ``channel``, ``temporal``; default all three, one per sample, as rows 11, 12 and
24). ``evaluation.json`` scores every strategy whichever were trained, on the same seeded
masks, so runs with different ``--strategies`` stay comparable.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm.cli.runs import DataConfig, build_loader, check_loader  # noqa: E402
from eegfm.models.pretrainer import SLOW_BINS, MaskedPretrainer  # noqa: E402
from eegfm.training import TrainConfig, Trainer  # noqa: E402

STRATEGIES = ("random", "channel", "temporal")  # MaskedPretrainer's default, in its order


def make_model(patch_size: int = 100, embed_dim: int = 64, depth: int = 2, num_heads: int = 4,
               sfreq: float = 200.0, preprocessing: dict | None = None, target: str = "spectrum",
               strategies=STRATEGIES, patch_mean: bool = False, attention_bias: str = "none",
               decoder_depth: int = 0, visible_blocks: int = 0) -> MaskedPretrainer:
    """The probe's model: a single-pass :class:`MaskedPretrainer` with ``target="spectrum"`` (or ``"signal"``).

    Its head has ``patch_size // 2 + 1`` outputs (one per rfft bin; ``patch_size`` with
    ``"signal"``, one per sample); ``accuracy`` is the masked-token R^2 per strategy.
    ``strategies``: the masks trained with (one per sample, in turn). ``patch_mean``: the
    encoder's patch embedder also sees each patch's signed mean (:class:`eegfm.EncoderConfig`).
    ``attention_bias``: ``"distance"`` adds the fixed scalp-distance / patch-lag attention bias.
    ``decoder_depth``: >= 1, the encoder sees only the visible tokens and a decoder of that many
    blocks predicts the masked ones; ``visible_blocks``: >= 1, the first that many encoder blocks
    see only the visible tokens (:class:`MaskedPretrainer`).
    """
    return MaskedPretrainer(patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                            sfreq=sfreq, preprocessing=preprocessing, single_pass=True, target=target,
                            strategies=strategies, patch_mean=patch_mean, attention_bias=attention_bias,
                            decoder_depth=decoder_depth, visible_blocks=visible_blocks)


def set_slow_weight(model: MaskedPretrainer, weight: float) -> None:
    """Give the slow means ``weight`` of a ``target="spectrum_slow"`` model's loss, the amplitudes the rest.

    A probe-only change of the library's fixed half-and-half split (``model.column_weight``,
    F amplitude columns then ``SLOW_BINS`` slow-mean columns, each half's columns equal).
    """
    if model.target != "spectrum_slow" or not 0.0 < weight < 1.0:
        raise ValueError(f"a slow weight needs target='spectrum_slow' and a value in (0, 1), got "
                         f"target={model.target!r}, weight={weight}")
    n_bins = model.head.out_features - SLOW_BINS
    model.column_weight = torch.cat([torch.full((n_bins,), (1 - weight) / n_bins),
                                     torch.full((SLOW_BINS,), weight / SLOW_BINS)]).to(model.column_weight)


def parse_strategies(text: str) -> tuple[str, ...]:
    """``"channel"`` -> ``("channel",)``; a comma list of ``random``, ``channel``, ``temporal``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in STRATEGIES]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a comma list of distinct {', '.join(STRATEGIES)}; got {text!r}")
    return names


def evaluate_all_strategies(model: MaskedPretrainer, batches, *, seed: int) -> dict:
    """``model.evaluate`` on every strategy (random, channel, temporal), whichever it trained with."""
    trained = model.strategies
    model.strategies = list(STRATEGIES)
    try:
        return model.evaluate(batches, seed=seed)
    finally:
        model.strategies = trained


def add_pretrain_arguments(p: argparse.ArgumentParser, *, batch_size: int = 32) -> None:
    """The flags every pre-training probe shares (data, size, steps, seed, run folder)."""
    p.add_argument("--sources", required=True, help="eegfm source spec (never the test subjects)")
    p.add_argument("--cache-dir", default="/tmp/eegfm-long/cache")
    p.add_argument("--patch-size", type=int, default=100)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--window-seconds", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, required=True)


def load_corpus(args) -> tuple[DataConfig, object, object, object]:
    """``(data config, corpus, windows, loader)`` of the probe's flags, the loader checked.

    Writes ``<run-dir>/run_config.json`` first (``{"data": <the data config>, "command": ...}``),
    as ``eegfm pretrain`` does, so ``benchmarks/downstream.py --encoder <run-dir>`` can check the
    corpus for test subjects.
    """
    data = DataConfig(sources=args.sources, cache_dir=args.cache_dir, window_seconds=args.window_seconds,
                      batch_size=args.batch_size, num_threads=1)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    run_config = {"data": dataclasses.asdict(data), "command": " ".join(sys.argv)}
    (args.run_dir / "run_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    corpus, windows, loader = build_loader(data, args.patch_size, args.seed, progress=False)
    check_loader(loader)
    return data, corpus, windows, loader


def fit(model, args, loader) -> dict:
    """Train ``model`` (a ``training_step`` module) for ``--steps`` with the probes' schedule
    (AdamW at ``--lr``, 10 % warm-up, cosine); metrics in ``<run-dir>/metrics.csv``."""
    cfg = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.steps // 10, log_every=max(args.steps // 10, 1),
                      checkpoint_every=args.steps, run_dir=str(args.run_dir), progress=False, metrics="csv",
                      seed=args.seed)
    return Trainer(model, cfg, loader.batches).fit()


def write_summary(script: str, argv, args, corpus, windows, fitted: dict, **figures) -> dict:
    """Write ``<run-dir>/evaluation.json`` (command, corpus size, steps, seconds, ``figures``) and print it."""
    summary = {"command": f"python benchmarks/{script} " + " ".join(argv or sys.argv[1:]),
               "recordings": len(corpus), "windows": len(windows), "steps": fitted["steps"],
               "seconds": fitted["seconds"], **figures}
    (args.run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return summary


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pretrain_arguments(p)
    p.add_argument("--target", choices=("spectrum", "signal", "spectrum_slow"), default="spectrum",
                   help="what masked tokens regress: z-scored Fourier amplitudes, samples z-scored per patch, or "
                        "the amplitudes beside each patch's slow signed sub-window means (spectrum_slow)")
    p.add_argument("--strategies", type=parse_strategies, default=STRATEGIES,
                   help="masks trained with, a comma list (default random,channel,temporal: one per sample)")
    p.add_argument("--patch-mean", action="store_true",
                   help="the patch embedder also sees each patch's signed mean (EncoderConfig.patch_mean)")
    p.add_argument("--attention-bias", choices=("none", "distance"), default="none",
                   help="distance: a fixed per-head scalp-distance / patch-lag penalty in attention "
                        "(EncoderConfig.attention_bias)")
    p.add_argument("--decoder-depth", type=int, default=0,
                   help="0: the encoder sees every token (the paper's masked modelling); >= 1: only the visible "
                        "ones, and a decoder of this many blocks predicts the masked ones (MaskedPretrainer)")
    p.add_argument("--visible-blocks", type=int, default=0,
                   help=">= 1: the first this many encoder blocks see only the visible tokens, the masked ones join "
                        "before the next block (MaskedPretrainer(visible_blocks=...))")
    p.add_argument("--slow-weight", type=float, default=None,
                   help="target=spectrum_slow only: the share of the loss on the slow means (the library's 0.5 "
                        "when not given; the amplitudes get the rest)")
    args = p.parse_args(argv)
    if args.slow_weight is not None and (args.target != "spectrum_slow" or not 0.0 < args.slow_weight < 1.0):
        p.error(f"--slow-weight {args.slow_weight} needs --target spectrum_slow and a value in (0, 1)")
    data, corpus, windows, loader = load_corpus(args)
    torch.manual_seed(args.seed)
    model = make_model(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                       sfreq=data.sfreq, preprocessing=data.preprocess_config().to_dict(), target=args.target,
                       strategies=args.strategies, patch_mean=args.patch_mean, attention_bias=args.attention_bias,
                       decoder_depth=args.decoder_depth, visible_blocks=args.visible_blocks)
    if args.slow_weight is not None:
        set_slow_weight(model, args.slow_weight)
    fitted = fit(model, args, loader)
    evaluation = evaluate_all_strategies(model, itertools.islice(loader.batches(epoch=10_000), 10), seed=args.seed)
    model.encoder.save_pretrained(args.run_dir / "encoder")
    return write_summary("spectrum_pretrain_probe.py", argv, args, corpus, windows, fitted,
                         target=args.target, strategies=list(args.strategies), masked_r2=evaluation["accuracy"],
                         **({"decoder_depth": args.decoder_depth} if args.decoder_depth else {}),
                         **({"visible_blocks": args.visible_blocks} if args.visible_blocks else {}),
                         **({} if args.slow_weight is None else {"slow_weight": args.slow_weight}))


if __name__ == "__main__":
    main()
