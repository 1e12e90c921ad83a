"""Write the model card of an ``eegfm pretrain --config eegfm-small`` build with its downstream table.

    eegfm pretrain --config eegfm-small          # writes runs/eegfm-small (run from the repository root)
    python benchmarks/eegfm_small_card.py --run-dir runs/eegfm-small \
        --probe "Mental Arithmetic=benchmarks/results/downstream/probes/ma_eegfm_small_lora_5seeds.json" \
        --probe "Mental Arithmetic=benchmarks/results/downstream/probes/ma_lora_vs_scratch_5seeds.json:scratch"

The pre-training run already wrote a card (data, preprocessing contract, recipe, masked R^2).
This adds what only fine-tuning can tell: one downstream row per variant of each
``benchmarks/finetune_probe.py`` report given (mean ± std of the validation balanced accuracy
over its seeds; the validation subjects are named, the test subjects were never read), and the
limitations the recipe log (``benchmarks/results/downstream/RECIPE.md``) found. It rewrites
``<run-dir>/encoder/README.md`` only; the weights are not touched.
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
    "Pre-trained on about 2.6 hours of EEG (19 Mental Arithmetic subjects, 9 PhysioNet MI subjects) on a 2-core "
    "CPU: far below the scale (thousands of hours) where masked modelling is known to pay.",
    "The downstream figures are on validation subjects of the training split (they chose the recipe); the test "
    "subjects (MA 26-31, PhysioNet S012 and S015) were excluded from pre-training and not yet evaluated.",
    "On Mental Arithmetic, LoRA fine-tuning of this encoder does not beat training from scratch (validation "
    "0.766 vs 0.776). With a larger corpus (+ every PhysioNet run), one pre-training run did (+0.019, 5/5 "
    "fine-tuning seeds), but two more seeds of the same recipe did not (-0.024, -0.041): the spread between "
    "pre-training runs (std 0.031) exceeds the gain sought (RECIPE.md rows 16, 19).",
    "On PhysioNet left/right motor imagery, eegfm learns only with a constant-lr, batch-8 schedule of >= 10 epochs "
    "(from scratch 0.666 +- 0.098 on validation, 5 seeds; EEGNet about 0.70 on test folds), and this encoder "
    "does not help it (0.608 +- 0.103); its frozen features hold no linear MI information under "
    "leave-one-subject-out (0.541; RECIPE.md rows 14, 20, 21).",
]


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
    p.add_argument("--typed", default="eegfm pretrain --config eegfm-small")
    args = p.parse_args(argv)
    values = json.loads((args.run_dir / "run_config.json").read_text())
    cfg = apply_mapping(PretrainRun(), values, origin=str(args.run_dir / "run_config.json"))
    corpus, windows, _ = build_loader(cfg.data, cfg.model.patch_size, cfg.train.seed, progress=False)
    summary = json.loads((args.run_dir / "evaluation.json").read_text())
    facts = card_facts(cfg, corpus, windows, summary, typed=args.typed)
    downstream = []
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
