"""Write the model card of an ``eegfm pretrain --config eegfm-small`` build with its downstream table.

    eegfm pretrain --config eegfm-small          # writes runs/eegfm-small (run from the repository root)
    python benchmarks/downstream.py --tasks ma --test-subjects 'ma:26-31' --encoder runs/eegfm-small \
        --models eegfm_lora,eegfm_scratch,eegnet ... --out /tmp/card   # RECIPE.md row 26's command
    python benchmarks/eegfm_small_card.py --run-dir runs/eegfm-small \
        --harness "Mental Arithmetic=/tmp/card/downstream.json"

The pre-training run already wrote a card (data, preprocessing contract, recipe, masked R^2).
This adds what only fine-tuning can tell: one downstream row per model of each
``benchmarks/downstream.py`` report given (``--harness``: mean ± std over seeds of the test
balanced accuracy, the held-out subjects named), or per variant of each
``benchmarks/finetune_probe.py`` report (``--probe``: validation balanced accuracy; the test
subjects were never read), and the limitations the recipe log
(``benchmarks/results/downstream/RECIPE.md``) found. It rewrites ``<run-dir>/encoder/README.md``
only; the weights are not touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm.cli.overrides import apply_mapping  # noqa: E402
from eegfm.cli.pretrain import PretrainRun, card_facts  # noqa: E402
from eegfm.cli.runs import build_loader  # noqa: E402
from eegfm.model_card import DownstreamResult, update_model_card  # noqa: E402

LIMITATIONS = [
    "Pre-trained on about 1.3 hours of EEG: the 19 Mental Arithmetic training subjects (in-domain; their "
    "validation subjects 08, 09, 13, 15, 19 and test subjects 26-31 excluded), on a 2-core CPU: far below the "
    "scale (thousands of hours) where masked modelling is known to pay. It is an encoder for Mental Arithmetic-like "
    "data with the 10-20 cap; other tasks have not been shown to gain from it.",
    "The gain is measured on Mental Arithmetic only. Re-run per fold on 5 leave-subjects-out folds over all 30 "
    "subjects (each fold pre-trained on its own training subjects, three pre-training runs x 5 seeds; RECIPE.md "
    "row 27) the recipe's LoRA read-out reaches 0.639 +- 0.009 balanced accuracy on the pooled test predictions, "
    "the same model from scratch 0.567 +- 0.027 and EEGNet 0.566 +- 0.013; most of the gain comes from two of the "
    "five folds, and on two others every model is near chance.",
    "On PhysioNet left/right motor imagery no eegfm pre-training has helped so far: eegfm learns the task only "
    "with a constant-lr, batch-8 schedule of >= 10 epochs (RECIPE.md rows 14, 20, 21).",
]


def harness_rows(task: str, report: dict, models: list[str] | None = None) -> list[DownstreamResult]:
    """One :class:`DownstreamResult` per model of a ``benchmarks/downstream.py`` report (or of ``models``).

    Its figure: per seed, the balanced accuracy of the test predictions (pooled over folds), mean ± std
    over seeds. The task's held-out subjects are named; ``eegfm_scratch`` and ``eegnet`` are labelled
    as baselines, every other eegfm model as this encoder.
    """
    (key, results), = report["results"].items()
    folds = report["folds"][key]
    if len(folds) == 1:
        where = (f"{task}, test subjects {','.join(folds[0]['test'])} (early stopping on validation subjects "
                 f"{','.join(folds[0]['val'])})")
    else:
        where = f"{task}, {len(folds)} leave-subjects-out folds (test predictions pooled over folds)"
    labels = {"eegfm_scratch": "from scratch (same architecture, full fine-tuning)", "eegnet": "EEGNet (braindecode)",
              "eegfm_lora": "eegfm-small, LoRA", "eegfm_pretrained": "eegfm-small, full fine-tuning",
              "eegfm_linear": "eegfm-small, linear probe"}
    rows = []
    for model, result in results.items():
        if models and model not in models:
            continue
        scores = {int(seed): value for seed, value in result["aggregate"]["balanced_accuracy"]["per_seed"].items()}
        rows.append(DownstreamResult.from_scores(where, "balanced accuracy", scores, model=labels.get(model, model)))
    return rows


def probe_rows(task: str, report: dict, variants: list[str] | None = None) -> list[DownstreamResult]:
    """One :class:`DownstreamResult` per variant of a ``finetune_probe.py`` report (or of ``variants``)."""
    split = report["fold"]
    where = f"{task}, validation subjects {','.join(split['val'])} (test subjects {','.join(split['test'])} never read)"
    rows = []
    for name, result in report["results"].items():
        if variants and name not in variants:
            continue
        options = result.get("options", {})
        init = "from scratch" if options.get("init") == "scratch" else "eegfm-small"
        what = ", ".join(f"{k}={v}" for k, v in options.items() if k != "init")
        scores = {seed: row["best"] for seed, row in zip(report["seeds"], result["rows"])}
        model = f"{init} ({what})" if what else init
        rows.append(DownstreamResult.from_scores(where, "balanced accuracy", scores, model=model))
    return rows


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("runs/eegfm-small"))
    p.add_argument("--probe", action="append", default=[],
                   help="TASK=finetune_probe.json[:variant,variant] (repeatable; the variants of another encoder's "
                        "report must be left out: every init=pretrained row is labelled eegfm-small)")
    p.add_argument("--harness", action="append", default=[],
                   help="TASK=downstream.json[:model,model] (repeatable): a benchmarks/downstream.py report of this "
                        "encoder (its --encoder); one row per model, or per model named")
    p.add_argument("--typed", default="eegfm pretrain --config eegfm-small")
    args = p.parse_args(argv)
    values = json.loads((args.run_dir / "run_config.json").read_text())
    cfg = apply_mapping(PretrainRun(), values, origin=str(args.run_dir / "run_config.json"))
    corpus, windows, _ = build_loader(cfg.data, cfg.model.patch_size, cfg.train.seed, progress=False)
    summary = json.loads((args.run_dir / "evaluation.json").read_text())
    facts = card_facts(cfg, corpus, windows, summary, typed=args.typed)
    downstream = []
    for item in args.harness:
        task, _, path = item.partition("=")
        path, _, only = path.partition(":")
        downstream += harness_rows(task, json.loads(Path(path).read_text()), [m for m in only.split(",") if m])
    for item in args.probe:
        task, _, path = item.partition("=")
        path, _, only = path.partition(":")
        downstream += probe_rows(task, json.loads(Path(path).read_text()), [v for v in only.split(",") if v])
    facts = dataclasses.replace(facts, name="eegfm-small", downstream=downstream,
                                limitations=facts.limitations + LIMITATIONS)
    card = update_model_card(args.run_dir / "encoder", facts)
    print(f"model card: {card}")
    return card


if __name__ == "__main__":
    main()
