"""Fine-tuning recipe probe on validation subjects (never the test subjects).

    python benchmarks/finetune_probe.py --task ma --encoder /tmp/eegfm-long/ma/fold0/pretrain/encoder \
        --variants "scratch:init=scratch,layer_decay=1;pre:init=pretrained" --seeds 0,1,2

One split of ``benchmarks/downstream.py`` (``--test-subjects`` are left out and never read;
validation subjects are drawn from the rest exactly as the harness does). Each variant
fine-tunes an eegfm classifier on the training subjects with validation-based early stopping
and best-epoch selection (as the harness does), for every seed, and reports the validation
balanced accuracy of the selected epoch and of the last epoch run. Variant keys:

- ``init``: ``pretrained`` (the ``--encoder`` folder) or ``scratch`` (same architecture);
- ``lp_epochs``: linear-probe epochs (frozen encoder, head only) before full fine-tuning;
- ``pooling``, ``head_dropout``: the classifier's;
- ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``dropout``, ``patch_mean``, ``attention_bias``: the encoder's
  (``init=scratch`` only);
- any :class:`eegfm.finetune.FinetuneConfig` field (``lr``, ``layer_decay``, ``epochs``,
  ``patience``, ``weight_decay``, ``label_smoothing``, ``warmup_epochs``, ``batch_size``...),
  ``mode`` among them: ``full``, ``linear``, ``lora`` (with ``lora_rank``, ``lora_alpha``,
  ``lora_dropout``, ``lora_targets``) or ``frozen`` (a cross-validated logistic regression on the
  frozen features: no epochs, its "best" and "last" are the one fit's).

Compare the fine-tuning strategies on one task (validation subjects only)::

    python benchmarks/finetune_probe.py --task ma --encoder /tmp/eegfm-spectrum2000/encoder --threads 1 \
        --variants "full:mode=full,lr=3e-4,layer_decay=1,channel_dropout=0.3,time_shift_seconds=0.5,amplitude_scale=0.2;\
    linear:mode=linear,lr=3e-4;lora:mode=lora,lr=3e-4,channel_dropout=0.3,time_shift_seconds=0.5,amplitude_scale=0.2;\
    frozen:mode=frozen" --out benchmarks/results/downstream/probes/ma_strategies.json

The figures are what the recipe log (``benchmarks/results/downstream/RECIPE.md``) quotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import downstream as ds  # noqa: E402
from eegfm import MAPEClassifier, MAPEEncoder  # noqa: E402
from eegfm.finetune import FinetuneConfig, finetune  # noqa: E402

FIELDS = {f.name: f.type for f in dataclasses.fields(FinetuneConfig)}
ARCH_KEYS = ("patch_size", "embed_dim", "depth", "num_heads", "dropout", "patch_mean", "attention_bias")
DEFAULTS = dict(epochs=15, patience=5, lr=1e-3, layer_decay=0.65, batch_size=32)


def parse_variants(text: str) -> dict[str, dict]:
    """``"name:key=value,key=value;name2:..."`` -> {name: {key: value}} (values parsed as JSON when they parse)."""
    variants = {}
    for part in [p for p in text.split(";") if p.strip()]:
        name, _, body = part.partition(":")
        options = {}
        for item in [i for i in body.split(",") if i.strip()]:
            key, _, value = item.partition("=")
            try:
                options[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                options[key.strip()] = value.strip()
        variants[name.strip()] = options
    return variants


def run_variant(options: dict, seed: int, encoder: MAPEEncoder | None, encoder_config: dict, train, valid) -> dict:
    options = dict(options)
    init = options.pop("init", "pretrained")
    lp_epochs = int(options.pop("lp_epochs", 0))
    head = {k: options.pop(k) for k in ("pooling", "head_dropout") if k in options}
    arch = {k: options.pop(k) for k in ARCH_KEYS if k in options}
    if arch and init != "scratch":
        raise SystemExit(f"architecture keys {sorted(arch)} apply to init=scratch only")
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise SystemExit(f"unknown variant keys {unknown}")
    torch.manual_seed(seed)
    if init == "scratch":
        model = MAPEClassifier(n_outputs=2, encoder={**encoder_config, **arch}, **head)
    else:
        model = MAPEClassifier.from_encoder(encoder, n_outputs=2, **head)
    run_dir = Path(tempfile.mkdtemp(prefix="eegfm-ftprobe-"))
    common = dict(seed=seed, select_best=True, monitor="balanced_accuracy", metrics="none", progress=False)
    try:
        if lp_epochs:
            finetune(model, train, FinetuneConfig(mode="linear", epochs=lp_epochs, lr=5e-3, patience=None,
                                                  batch_size=options.get("batch_size", 32),
                                                  run_dir=str(run_dir / "lp"), checkpoint_every_epochs=lp_epochs,
                                                  **common), valid=valid)
        cfg = FinetuneConfig(**{**DEFAULTS, **options, **common, "run_dir": str(run_dir / "ft")})
        cfg.checkpoint_every_epochs = cfg.epochs
        fit = finetune(model, train, cfg, valid=valid)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    history = fit.get("history") or []
    best = fit["valid"]["balanced_accuracy"]
    row = {"best": best, "last": history[-1]["balanced_accuracy"] if history else best,  # frozen: the one fit
           "best_epoch": fit.get("best_epoch"), "epochs_run": len(history),
           "curve": [round(h["balanced_accuracy"], 4) for h in history], "auroc": fit["valid"].get("auroc")}
    if "frozen" in fit:
        row["frozen"] = {k: fit["frozen"][k] for k in ("param", "value", "cv")}
    if "lora" in fit:
        row["lora"] = {k: fit["lora"][k] for k in ("trainable_parameters", "parameters", "rank", "alpha")}
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_split_arguments(p)
    p.add_argument("--encoder", default="", help="pre-trained MAPEEncoder folder (for init=pretrained)")
    p.add_argument("--variants", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = parse_variants(args.variants)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    fold, train, valid = ds.validation_split(args)
    encoder = MAPEEncoder.from_pretrained(args.encoder) if args.encoder else None
    encoder_config = encoder.get_config() if encoder else dict(patch_size=100, embed_dim=64, depth=2, num_heads=4)
    print(f"[{args.task}] train {len(train)}, val {len(valid)} (subjects {','.join(fold['val'])}); "
          f"encoder {args.encoder or '(none)'}", flush=True)
    results = {}
    for name, options in variants.items():
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            row = run_variant(options, seed, encoder, encoder_config, train, valid)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            chosen = (f"{row['frozen']['param']}={row['frozen']['value']:.3g}" if "frozen" in row
                      else f"epoch {row['best_epoch']}")
            print(f"  {name:<24} seed {seed}: best {row['best']:.3f} ({chosen}), "
                  f"last {row['last']:.3f}, {row['seconds']} s", flush=True)
        best = np.array([r["best"] for r in rows])
        auroc = np.array([r["auroc"] if r.get("auroc") is not None else np.nan for r in rows], dtype=float)
        results[name] = {"options": options, "rows": rows, "best_mean": float(best.mean()),
                         "best_std": float(best.std(ddof=1)) if len(best) > 1 else 0.0,
                         "auroc_mean": float(np.mean(auroc)),
                         "auroc_std": float(np.std(auroc, ddof=1)) if len(auroc) > 1 else 0.0,
                         "seconds_mean": float(np.mean([r["seconds"] for r in rows]))}
        print(f"  {name:<24} mean {best.mean():.3f} +- {results[name]['best_std']:.3f} "
              f"(AUROC {results[name]['auroc_mean']:.3f} +- {results[name]['auroc_std']:.3f})", flush=True)
    return ds.write_probe_report(args, {"task": args.task, "fold": fold, "encoder": args.encoder, "seeds": seeds,
                                        "results": results}, "finetune_probe.py", argv)


if __name__ == "__main__":
    main()
