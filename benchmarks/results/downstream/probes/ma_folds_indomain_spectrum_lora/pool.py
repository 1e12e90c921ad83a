"""Pool recipe row 27: MA on 5 leave-subjects-out folds over all 30 subjects, each fold pre-trained
in-domain (its own 19 training subjects) once per pre-training run; LoRA vs scratch vs EEGNet.

Reads the finished result rows (labels and logits per fold and seed) from the harness work dirs of
the calls in ``commands.txt`` (some calls were stopped before their last fold, so their
``downstream.json`` has no pooled figure) and writes ``pooled.json``:
- the harness's primary figure, for every seed finished on all 5 folds: the balanced accuracy of
  the test predictions pooled over the folds (every subject tested once); LoRA averaged over the
  pre-training runs finished for that seed; paired LoRA - scratch per seed;
- per fold, the mean over the seeds finished there of each model (all rows, finished or not).

    python benchmarks/results/downstream/probes/ma_folds_indomain_spectrum_lora/pool.py \
        --lora /tmp/fw-s0 /tmp/fw-s1 --baselines /tmp/fw-b012 /tmp/fw-b34
"""

import argparse
import importlib.util
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FOLDS = 5


def _harness():
    """benchmarks/downstream.py, for its own pooled-over-folds figure (``aggregate``)."""
    spec = importlib.util.spec_from_file_location("downstream", HERE.parents[3] / "downstream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AGGREGATE = _harness().aggregate


def mean_std(values):
    values = list(values)
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def read_rows(work_dir: Path, models: set[str]) -> dict:
    """``{model: {seed: {fold: (labels, logits, test balanced accuracy)}}}`` of one work dir."""
    out = defaultdict(lambda: defaultdict(dict))
    for path in sorted(work_dir.glob("ma/fold*/rows/*.json")):
        model = path.stem.rsplit("_seed", 1)[0]
        if model not in models:
            continue
        saved = json.loads(path.read_text())
        row = saved["row"]
        out[model][str(row["seed"])][row["fold"]] = (np.array(saved["labels"]), np.array(saved["logits"]),
                                                     row["test"]["balanced_accuracy"])
    return out


def pooled_bacc(by_fold: dict) -> float | None:
    """The harness's figure (its ``aggregate``) for one seed's rows; None unless every fold finished."""
    if len(by_fold) != FOLDS:
        return None
    rows = [{"fold": f, "seed": 0, "test": {"balanced_accuracy": bacc, "auroc": 0.0}, "seconds": 0.0}
            for f, (_, _, bacc) in by_fold.items()]
    preds = {(f, "0"): (labels, logits) for f, (labels, logits, _) in by_fold.items()}
    return AGGREGATE(rows, preds, FOLDS)["balanced_accuracy"]["per_seed"]["0"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lora", nargs="+", type=Path, required=True, help="work dirs of the eegfm_lora calls")
    p.add_argument("--baselines", nargs="+", type=Path, required=True, help="work dirs of the scratch/EEGNet calls")
    args = p.parse_args()
    runs = {d.name: read_rows(d, {"eegfm_lora"})["eegfm_lora"] for d in args.lora}
    base = defaultdict(dict)
    for d in args.baselines:
        for model, by_seed in read_rows(d, {"eegfm_scratch", "eegnet"}).items():
            base[model].update(by_seed)

    pooled = {run: {s: pooled_bacc(f) for s, f in by_seed.items()} for run, by_seed in runs.items()}
    pooled_base = {m: {s: pooled_bacc(f) for s, f in by_seed.items()} for m, by_seed in base.items()}
    seeds = sorted((s for s, v in pooled_base["eegfm_scratch"].items() if v is not None), key=int)
    lora_seed = {s: statistics.mean(v for v in (pooled[r].get(s) for r in runs) if v is not None) for s in seeds}
    paired = [lora_seed[s] - pooled_base["eegfm_scratch"][s] for s in seeds]

    def fold_means(by_seed):
        folds = defaultdict(list)
        for by_fold in by_seed.values():
            for f, (_, _, bacc) in by_fold.items():
                folds[f].append(bacc)
        return {f: {**mean_std(v)} for f, v in sorted(folds.items())}

    report = {
        "metric": "test balanced accuracy; 'pooled': predictions of the 5 folds pooled (all 30 subjects), per seed",
        "seeds_finished_on_every_fold": {"eegfm_scratch": seeds,
                                         **{f"eegfm_lora {r}": sorted((s for s, v in pooled[r].items() if v is not None), key=int)
                                            for r in runs},
                                         "eegnet": sorted((s for s, v in pooled_base.get("eegnet", {}).items() if v is not None), key=int)},
        "pooled_lora_per_run": {r: {s: round(v, 4) for s, v in sorted(by.items(), key=lambda x: int(x[0])) if v is not None}
                                for r, by in pooled.items()},
        "pooled_lora_mean_over_runs": {**{s: round(v, 4) for s, v in lora_seed.items()}, **mean_std(lora_seed.values())},
        **{f"pooled_{m}": {**{s: round(v, 4) for s, v in sorted(by.items(), key=lambda x: int(x[0])) if v is not None},
                           **mean_std(v for v in by.values() if v is not None)} for m, by in sorted(pooled_base.items())},
        "paired_lora_minus_scratch_pooled": {**mean_std(paired), "per_seed": dict(zip(seeds, (round(x, 4) for x in paired)))},
        "per_fold_mean_over_seeds": {**{f"eegfm_lora {r}": fold_means(by) for r, by in runs.items()},
                                     **{m: fold_means(by) for m, by in sorted(base.items())}},
    }
    lora_folds = {f: statistics.mean(report["per_fold_mean_over_seeds"][f"eegfm_lora {r}"][f]["mean"] for r in runs
                                     if f in report["per_fold_mean_over_seeds"][f"eegfm_lora {r}"])
                  for f in range(FOLDS)}
    scratch_folds = {f: v["mean"] for f, v in report["per_fold_mean_over_seeds"]["eegfm_scratch"].items()}
    report["per_fold_lora_minus_scratch"] = {f: round(lora_folds[f] - scratch_folds[f], 4) for f in scratch_folds}
    report["fold_mean_of_means"] = {"eegfm_lora": round(statistics.mean(lora_folds.values()), 4),
                                    **{m: round(statistics.mean(v["mean"] for v in fm.values()), 4)
                                       for m, fm in ((m, report["per_fold_mean_over_seeds"][m]) for m in sorted(base))}}
    (HERE / "pooled.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
