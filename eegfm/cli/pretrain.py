"""``eegfm pretrain``: masked pre-training of a MAPEEncoder on tokenizer codes, Fourier amplitudes or raw samples.

    eegfm pretrain --tokenizer=runs/tokenizer/model --data.sources="bids:/data/my_bids" --train.steps=50000
    eegfm pretrain --model.target=spectrum --data.sources="bids:/data/my_bids"  # no tokenizer needed
    torchrun --nproc_per_node 4 -m eegfm pretrain --tokenizer=... # several processes (DDP)

--model.target says what the masked tokens predict: "codes" (default), the codes of
--tokenizer (the model/ folder of an `eegfm tokenizer` run or a Hub repo id; default
runs/tokenizer/model), "spectrum", each masked patch's z-scored Fourier amplitudes (the
tokenizer's own target, regressed directly: no tokenizer, no code cache), or "signal", each
masked patch's samples z-scored per patch (MAE's normalised-pixel target; no tokenizer
either). The patch length is --model.patch_size (default: the tokenizer's, or 100 samples
without one). Writes to --train.run_dir: run_config.json (first), checkpoints/ (resume with
--train.resume=true), metrics.csv, model/ (the whole pretrainer), encoder/ (the pre-trained
MAPEEncoder in Hub format: load it with MAPEEncoder.from_pretrained and fine-tune),
evaluation.json (masked-token accuracy per strategy beside the most-frequent-code baseline, or
with spectrum and signal the masked R^2 per strategy, 0 for predicting the mean). A WARNING
(log and summary) says when the encoder does not beat that baseline. The README.md of model/
and encoder/ is the run's model card (data, preprocessing, the command that reruns the run,
the masked evaluation); plots/ holds loss.png, masked.png (masked-token accuracy per strategy
vs the baseline over steps, or the masked R^2), spectra.png (spectrum target: true vs
predicted amplitudes of a few masked patches) and montage.png (each cap's channels at their
proportion coordinates). A run directory that holds an earlier run is refused unless resumed
or --overwrite is given. --push_to_hub=you/name uploads the encoder with its card.
"""


from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.code_cache import cache_codes
from ..training import TrainConfig, Trainer, init_distributed, is_main_process
from .overrides import add_config_parser
from .report import (caps_of, card_recipe, data_facts, patch_spectra, plots_line, spectra_figure, typed_command,
                     write_plots)
from .rundir import check_run_dir, load_config, start_run
from .runs import DataConfig, PretrainModelConfig, build_loader, check_loader, load_pretrained, resolve_sources

logger = logging.getLogger("eegfm.pretrain")

#: Where ``eegfm tokenizer`` saves its model, the --tokenizer of a codes run that names none.
DEFAULT_TOKENIZER = "runs/tokenizer/model"
DEFAULT_PATCH_SIZE = 100  # samples (0.5 s at 200 Hz) when neither --model.patch_size nor a tokenizer gives one

#: What to do when --tokenizer is not there.
TOKENIZER_REMEDY = ("train one with `eegfm tokenizer` first (it saves runs/tokenizer/model), or pass "
                    "--tokenizer=FOLDER (the model/ folder of a tokenizer run) or a Hub repo id, or pre-train "
                    "without a tokenizer: --model.target=spectrum")


@dataclass
class PretrainRun:
    tokenizer: str | None = None  # `eegfm tokenizer`'s model/ folder or a Hub repo id (default runs/tokenizer/model; optional with --model.target=spectrum or signal)
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/pretrain"))
    eval_batches: int = 20  # batches for the final masked accuracy / R^2 report (seeded masks)
    cache_codes: bool = True  # tokenizer codes computed once (fp32) into <cache_dir>/codes and reused (codes target)
    push_to_hub: str | None = None  # Hub repo id to upload the pre-trained encoder to


def check_model_config(cfg: PretrainRun) -> None:
    """Raise a one-line ValueError, before any data is read, for a ``--model.target`` that is not one of
    the targets or a ``--model.visible_blocks`` / ``--model.decoder_depth`` the model cannot take."""
    from ..models.pretrainer import PRETRAIN_TARGETS

    if cfg.model.target not in PRETRAIN_TARGETS:
        raise ValueError(f"--model.target={cfg.model.target!r} is not one of {', '.join(PRETRAIN_TARGETS)}")
    model = cfg.model
    if not 0 <= model.visible_blocks <= model.depth:
        raise ValueError(f"--model.visible_blocks={model.visible_blocks} must be from 0 to --model.depth={model.depth}")
    if model.decoder_depth < 0:
        raise ValueError(f"--model.decoder_depth={model.decoder_depth} must be >= 0 (0: no decoder, the paper's step)")
    if model.visible_blocks and model.decoder_depth:
        raise ValueError(f"--model.visible_blocks={model.visible_blocks} and "
                         f"--model.decoder_depth={model.decoder_depth}: choose one (with a decoder every encoder "
                         "block already sees only the visible tokens)")


def check_tokenizer(cfg: PretrainRun, tokenizer) -> None:
    """Check ``tokenizer`` against the data's preprocessing and ``--model.patch_size`` (one-line errors).

    An unset ``--model.patch_size`` takes the tokenizer's.
    """
    tokenizer.check_preprocessing(cfg.data.preprocess_config())
    tok_patch = tokenizer.encoder.patch_size
    if cfg.model.patch_size is None:
        cfg.model.patch_size = tok_patch
    elif tok_patch != cfg.model.patch_size:
        named = f" ({cfg.tokenizer})" if cfg.tokenizer else ""
        raise ValueError(f"--model.patch_size={cfg.model.patch_size} differs from the tokenizer's patch_size="
                         f"{tok_patch}{named}; set --model.patch_size={tok_patch}")


def load_tokenizer(cfg: PretrainRun):
    """The tokenizer ``cfg.tokenizer`` names (default :data:`DEFAULT_TOKENIZER`), checked by :func:`check_tokenizer`.

    None with ``--model.target=spectrum`` (or ``signal``) and no ``--tokenizer``.
    """
    from ..models.tokenizer import NeuralTokenizer

    if cfg.model.target != "codes" and not cfg.tokenizer:
        return None
    source = DEFAULT_TOKENIZER if cfg.tokenizer is None else cfg.tokenizer
    tokenizer = load_pretrained(NeuralTokenizer, source, key="tokenizer", remedy=TOKENIZER_REMEDY)
    check_tokenizer(cfg, tokenizer)
    return tokenizer


def pretrain(cfg: PretrainRun, tokenizer=None, *, overwrite: bool = False, log_warnings: bool = True,
             typed: str | None = None):
    """Pre-train as configured (``tokenizer`` given or loaded from ``cfg.tokenizer``).

    With ``cfg.model.target`` ``"spectrum"`` or ``"signal"`` no tokenizer is needed (one that
    is given is only checked against the data and ``cfg.model.patch_size``) and no code cache
    is built.
    ``run_config.json`` is written to ``cfg.train.run_dir`` before training; ``overwrite``
    first deletes the outputs of an earlier run there.

    Returns (pretrainer, summary dict): ``summary["evaluation"]`` holds ``accuracy``,
    ``baseline_accuracy`` and ``masked_tokens`` (codes) or ``masked_r2`` and
    ``masked_tokens`` (spectrum); ``summary["warnings"]`` holds :func:`health_warning`'s
    message when the encoder does not beat the baseline (else empty), also logged as a
    WARNING (logger ``eegfm.pretrain``) unless ``log_warnings=False`` (the caller shows it).

    The README.md of ``model/`` and ``encoder/`` is the run's model card (:func:`card_facts`;
    ``typed``: the command line as typed, shown in it), ``plots/`` holds its figures
    (:func:`save_plots`); ``summary["plots"]`` lists them.
    """
    from ..model_card import update_model_card
    from ..models.pretrainer import MaskedPretrainer

    init_distributed()
    check_model_config(cfg)
    if tokenizer is None:
        tokenizer = load_tokenizer(cfg)
    else:
        check_tokenizer(cfg, tokenizer)
    codes = cfg.model.target == "codes"
    if cfg.model.patch_size is None:  # no tokenizer gave one
        cfg.model.patch_size = DEFAULT_PATCH_SIZE
    corpus, windows, loader = build_loader(cfg.data, cfg.model.patch_size, cfg.train.seed,
                                           progress=cfg.train.progress and is_main_process())
    check_loader(loader)
    if codes and cfg.cache_codes:  # the frozen tokenizer runs once per window, not once per step
        loader.windows = cache_codes(windows, tokenizer, cfg.data.cache_dir,
                                     progress=cfg.train.progress and is_main_process())
    torch.manual_seed(cfg.train.seed)  # the same --train.seed builds the same initial weights
    head = {"num_codes": tokenizer.quantizer.num_codes} if codes else {}  # else patch_size // 2 + 1 bins or patch_size
    pretrainer = MaskedPretrainer(encoder=cfg.model.encoder_config(cfg.data.preprocess_config()), **head,
                                  **cfg.model.model_arguments())
    if codes:
        pretrainer.attach_tokenizer(tokenizer)
    start_run(cfg.train.run_dir, cfg, overwrite=overwrite)  # a killed run keeps its settings
    fit = Trainer(pretrainer, cfg.train, loader.batches).fit()
    evaluation = pretrainer.evaluate(itertools.islice(loader.batches(epoch=10_000), cfg.eval_batches),
                                     seed=cfg.train.seed)
    if not codes:  # an R^2, not an accuracy: say so in evaluation.json
        evaluation = {"masked_r2": evaluation["accuracy"], "masked_tokens": evaluation["masked_tokens"]}
    warning = health_warning(evaluation)
    summary = {"target": cfg.model.target, "recordings": len(corpus), "windows": len(windows),
               "evaluation": evaluation, "warnings": [warning] if warning else [],
               "train": {**{k: v for k, v in fit.items() if isinstance(v, (int, float, str))},
                         "loss": fit["metrics"].get("loss")}}
    if is_main_process():
        for message in summary["warnings"] if log_warnings else ():
            logger.warning(message)
        run_dir = Path(cfg.train.run_dir)
        facts = card_facts(cfg, corpus, windows, summary, typed=typed)
        pretrainer.card_facts = dataclasses.replace(facts, summary=None)
        if (run_dir / "model" / "config.json").is_file():
            update_model_card(run_dir / "model", pretrainer.card_facts)
        pretrainer.encoder.card_facts = facts  # also for push_to_hub
        pretrainer.encoder.save_pretrained(run_dir / "encoder")
        (run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
        summary["plots"] = [str(p) for p in save_plots(cfg, pretrainer, corpus, windows, summary["evaluation"])]
        if cfg.push_to_hub:
            pretrainer.encoder.push_to_hub(cfg.push_to_hub)
    return pretrainer, summary


def card_facts(cfg: PretrainRun, corpus, windows, summary: dict, *, typed: str | None = None):
    """The :class:`~eegfm.model_card.ModelCardFacts` of a pre-training run (data, recipe, masked evaluation).

    Its ``summary`` describes the encoder (the card of ``encoder/``).
    """
    from ..model_card import ModelCardFacts

    train, codes = summary["train"], cfg.model.target == "codes"
    what = {"codes": "the codes of a frozen neural tokenizer",
            "spectrum": "the z-scored Fourier amplitudes of each patch",
            "signal": "the samples of each patch, z-scored per patch",
            "spectrum_slow": "the z-scored Fourier amplitudes and slow signed sub-window means of each patch",
            }[cfg.model.target]
    strategies = ", ".join(f"{name} ({getattr(cfg.model, f'{name}_ratio'):g})" for name in cfg.model.strategies)
    training = {"steps": train.get("steps"), "seed": cfg.train.seed, "target": f"{cfg.model.target}: {what}",
                "tokenizer (targets)": (cfg.tokenizer or "passed in Python, no folder recorded") if codes else None,
                "masks (ratio)": strategies, "batch size": cfg.data.batch_size, "peak learning rate": cfg.train.lr,
                "windows": f"{len(windows)} windows of {cfg.data.window_seconds:g} s",
                "final training loss": round(train["loss"], 4) if train.get("loss") is not None else None,
                "masked evaluation": format_evaluation(summary["evaluation"]),
                "masked evaluation on": f"{cfg.eval_batches} batches of training windows, masks seeded with "
                                        f"--train.seed={cfg.train.seed}"}
    limitations = list(summary.get("warnings", []))
    limitations.append("The masked evaluation uses training windows (with fresh masks), not held-out recordings; "
                       "judge the encoder by fine-tuning it.")
    summary_text = (f"A MAPEEncoder pre-trained with `eegfm pretrain` by masked prediction of {what} "
                    f"({train.get('steps')} steps). Fine-tune it with `eegfm finetune --pretrained=<this folder>` "
                    "or `MAPEClassifier.from_pretrained(<this folder>, n_outputs=...)`.")
    return ModelCardFacts(summary=summary_text, data=data_facts(corpus.entries, cfg.data.sources),
                          recipe=card_recipe("pretrain", cfg, PretrainRun(), cfg.train.run_dir, typed=typed,
                                             skip=("train.resume",)),
                          base_model=f"random initialisation (--train.seed={cfg.train.seed})",
                          training={k: v for k, v in training.items() if v is not None}, limitations=limitations)


def pretrain_spectra(pretrainer, windows, entries, n: int = 4, *, seed: int = 0) -> dict | None:
    """Predicted vs true amplitudes of ``n`` masked patches of a ``"spectrum"`` or ``"spectrum_slow"`` pretrainer.

    Each window is masked with the pretrainer's first strategy (seeded by ``seed``); a masked
    patch of each is shown (:func:`~eegfm.cli.report.patch_spectra`).
    """
    from ..models.tokenizer import amplitude_target
    from ..modules.masking import make_mask

    enc = pretrainer.encoder
    device = pretrainer.mask_embedding.device
    strategy = pretrainer.strategies[0]

    def predict(batch):
        batch = batch.to(device)
        was_training = pretrainer.training
        pretrainer.eval()
        try:
            with torch.no_grad():
                inputs = enc.prepare_inputs(batch.x, batch.positions, channel_mask=batch.channel_mask,
                                            n_times=batch.n_times)
                mask = make_mask(strategy, inputs.token_mask, pretrainer.ratios[strategy],
                                 torch.Generator().manual_seed(seed))
                tokens = pretrainer.masked_output(inputs, mask)  # (B, C*K, D): what the head reads
                target = amplitude_target(inputs.patches, inputs.token_mask).flatten(1, 2)  # (B, C*K, F)
                # spectrum_slow: the head's first F outputs are the amplitudes, the slow means follow
                predicted = pretrainer.head(tokens).float()[..., :target.shape[-1]]
        finally:
            pretrainer.train(was_training)
        return target, predicted, mask.flatten(1)

    return patch_spectra(windows, entries, predict, patch_size=enc.patch_size, n=n)


def save_plots(cfg: PretrainRun, pretrainer, corpus, windows, evaluation: dict) -> list[Path]:
    """plots/ of a pre-training run: loss, masked (accuracy vs baseline or R^2), spectra (spectrum target), montage."""
    from .. import plots

    run_dir = Path(cfg.train.run_dir)
    rows = plots.read_metrics(run_dir / "metrics.csv")
    spectrum = cfg.model.target in ("spectrum", "spectrum_slow")
    figures = {
        "loss": lambda: plots.loss_curve(rows, title=f"masked pre-training loss ({cfg.model.target} target)")
        if any("loss" in r for r in rows) else None,
        "masked": lambda: plots.masked_accuracy_curves(rows, target=cfg.model.target, evaluation=evaluation)
        if any(k.startswith("accuracy_") for r in rows for k in r) else None,
    }
    if spectrum:
        figures["spectra"] = lambda: spectra_figure(
            pretrain_spectra(pretrainer, windows, corpus.entries, seed=cfg.train.seed),
            "masked patches: true vs predicted Fourier amplitudes (training windows)")
    figures["montage"] = lambda: plots.montage_topography(caps_of(corpus.entries), title="caps of the training data")
    return write_plots(run_dir, figures)


def _pooled(per_strategy: dict, masked_tokens: dict) -> float:
    """The mean of ``per_strategy`` weighted by each strategy's masked tokens."""
    total = sum(masked_tokens.get(name, 0) for name in per_strategy)
    return sum(value * masked_tokens.get(name, 0) for name, value in per_strategy.items()) / max(total, 1)


def health_warning(evaluation: dict) -> str | None:
    """What is wrong when the encoder does not beat the baseline on the evaluation masks, else None.

    Codes: the masked-token accuracy (pooled over strategies, weighted by masked tokens) is
    not above the most-frequent-code baseline. Spectrum: the masked R^2 (pooled the same
    way) is not above 0, the R^2 of predicting the mean. A NaN counts as not above.
    """
    if "masked_r2" in evaluation:
        r2 = _pooled(evaluation["masked_r2"], evaluation["masked_tokens"])
        if not r2 > 0:
            return (f"masked R^2 {r2:.3f} <= 0: no better than predicting the mean amplitude; train longer or "
                    "check --train.lr and the data")
        return None
    accuracy = _pooled(evaluation["accuracy"], evaluation["masked_tokens"])
    baseline = evaluation["baseline_accuracy"]
    if not accuracy > baseline:
        return (f"masked-token accuracy {accuracy:.1%} does not beat the most-frequent-code baseline {baseline:.1%}; "
                "train longer or check --train.lr and the data")
    return None


def format_evaluation(evaluation: dict) -> str:
    """One line: masked-token accuracy per strategy and its baseline (codes), or masked R^2 (spectrum)."""
    if "masked_r2" in evaluation:
        parts = [f"{name} {r2:.3f}" for name, r2 in evaluation["masked_r2"].items()]
        return f"masked R^2: {', '.join(parts)} (predicting the mean: 0)"
    parts = [f"{name} {acc:.1%}" for name, acc in evaluation["accuracy"].items()]
    baseline = evaluation["baseline_accuracy"]
    return f"masked-token accuracy: {', '.join(parts)} (most-frequent-code baseline {baseline:.1%})"


def format_summary(cfg: PretrainRun, summary: dict) -> str:
    """A few lines for the end of ``eegfm pretrain``: what was learnt, where the encoder is, what next."""
    train = summary["train"]
    encoder = Path(cfg.train.run_dir) / "encoder"
    loss = f", final loss {train['loss']:.4g}" if train.get("loss") is not None else ""
    lines = [f"pretrain: {train['steps']} steps in {train['seconds']:.0f} s{loss}; {summary['recordings']} "
             f"recordings, {summary['windows']} windows",
             format_evaluation(summary["evaluation"]),
             f"encoder: {encoder} (MAPEEncoder.from_pretrained; model card README.md)"
             + (f", on the Hub: {cfg.push_to_hub}" if cfg.push_to_hub else ""),
             plots_line(cfg.train.run_dir, [Path(p) for p in summary.get("plots", [])]),
             f"next: eegfm finetune --pretrained={encoder} --data.sources=... --data.label=..."]
    lines += [f"WARNING: {w}" for w in summary.get("warnings", [])]
    return "\n".join(line for line in lines if line)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(sub, "pretrain", "masked pre-training of an encoder", __doc__, PretrainRun(),
                             run_options=True)


def run(args) -> int:
    cfg = load_config(PretrainRun(), args, section="train")
    cfg.data = dataclasses.replace(cfg.data, sources=resolve_sources(cfg.data.sources))
    overwrite = getattr(args, "overwrite", False)
    init_distributed()
    check_model_config(cfg)
    if cfg.tokenizer is None and cfg.model.target == "codes":
        cfg.tokenizer = DEFAULT_TOKENIZER  # recorded in run_config.json
    tokenizer = load_tokenizer(cfg)  # a missing tokenizer is reported before the run directory is looked at
    check_run_dir(cfg.train.run_dir, resume=cfg.train.resume, overwrite=overwrite, section="train")
    _, summary = pretrain(cfg, tokenizer, overwrite=overwrite, typed=typed_command("pretrain", args))
    if is_main_process():
        print(format_summary(cfg, summary))
    return 0
