"""Pool recipe row 27: MA on 5 leave-subjects-out folds over all 30 subjects, each fold pre-trained
in-domain (its own 19 training subjects) once per pre-training run; LoRA vs scratch vs EEGNet.

Reads the ``downstream.json`` that each call of ``commands.txt`` wrote into a folder here (no
work dir needed: a finished call's JSON holds the harness's own pooled-over-folds figure per seed,
its channel-drop curve per seed and every (fold, seed) row) and writes ``pooled.json``:
- the harness's primary figure per seed (the test predictions of the 5 folds pooled, every
  subject tested once), from calls that finished every fold; LoRA averaged over the pre-training
  runs; paired LoRA - scratch per seed;
- the channel-drop curve, pooled the same way, mean over seeds (LoRA: over runs x seeds);
- per fold, the mean over seeds of each model's test balanced accuracy.

A call that stopped before its last fold (``"partial": true``) is refused: its seeds have no pooled
figure, and mixing it in would bias the per-fold means towards the folds it reached.

    python benchmarks/results/downstream/probes/ma_folds_indomain_spectrum_lora/pool.py \
        --lora s0 s1 s2 --baselines b01 b2 b34
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
TASK = "ma"
DROPS = ("0.3", "0.5", "0.7")


def mean_std(values) -> dict:
    values = list(values)
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def load(folder: str) -> dict:
    """``{model: results}`` of one finished call's ``downstream.json`` (``results[TASK]``)."""
    report = json.loads((HERE / folder / "downstream.json").read_text())
    if report.get("partial"):
        raise SystemExit(f"{folder}/downstream.json is partial (the call stopped before its last fold): "
                         "finish it with --reuse, or leave it out")
    return report["results"][TASK]


def per_seed(results: dict) -> dict[str, float]:
    return results["aggregate"]["balanced_accuracy"]["per_seed"]


def by_fold(results: dict) -> dict[int, list[float]]:
    folds = defaultdict(list)
    for row in results["rows"]:
        folds[row["fold"]].append(row["test"]["balanced_accuracy"])
    return folds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lora", nargs="+", required=True, help="folders of the eegfm_lora calls, one per pre-training run")
    p.add_argument("--baselines", nargs="+", required=True, help="folders of the scratch/EEGNet calls")
    args = p.parse_args()
    runs = {folder: load(folder)["eegfm_lora"] for folder in args.lora}
    base: dict[str, dict] = {"eegfm_scratch": {}, "eegnet": {}}  # model -> seed -> (pooled, drop curve, fold rows)
    fold_rows = {m: defaultdict(list) for m in base}
    for folder in args.baselines:
        for model, results in load(folder).items():
            if model not in base:
                continue
            for seed, value in per_seed(results).items():
                if seed in base[model]:
                    raise SystemExit(f"{model} seed {seed} appears in two baseline calls")
                base[model][seed] = value
            for f, values in by_fold(results).items():
                fold_rows[model][f] += values

    seeds = sorted(base["eegfm_scratch"], key=int)
    lora_seed = {s: statistics.mean(per_seed(r)[s] for r in runs.values() if s in per_seed(r)) for s in seeds}
    paired = {s: lora_seed[s] - base["eegfm_scratch"][s] for s in seeds}
    lora_folds = {f: statistics.mean(statistics.mean(by_fold(r)[f]) for r in runs.values()) for f in range(5)}
    fold_means = {"eegfm_lora": {f: round(v, 4) for f, v in lora_folds.items()},
                  **{m: {f: round(statistics.mean(v), 4) for f, v in sorted(rows.items())} for m, rows in fold_rows.items()}}

    def drop_curve(results_list) -> dict:
        return {d: mean_std(v for r in results_list for v in r["channel_drop"][d]["per_seed"].values()) for d in DROPS}

    baseline_results = {m: [load(folder)[m] for folder in args.baselines if m in load(folder)] for m in base}
    report = {
        "metric": "test balanced accuracy; 'pooled': the predictions of the 5 folds pooled (all 30 subjects), per seed",
        "calls": {"lora": args.lora, "baselines": args.baselines},
        "pooled_lora_per_run": {r: {s: round(v, 4) for s, v in sorted(per_seed(res).items(), key=lambda x: int(x[0]))}
                                | {"mean": round(statistics.mean(per_seed(res).values()), 4)} for r, res in runs.items()},
        "pooled_lora_mean_over_runs": {s: round(v, 4) for s, v in lora_seed.items()} | mean_std(lora_seed.values()),
        **{f"pooled_{m}": {s: round(base[m][s], 4) for s in sorted(base[m], key=int)} | mean_std(base[m].values())
           for m in base},
        "paired_lora_minus_scratch_pooled": mean_std(paired.values()) | {
            "per_seed": {s: round(v, 4) for s, v in paired.items()},
            "better": f"{sum(v > 0 for v in paired.values())}/{len(paired)}",
            "runs_x_seeds_better": f"{sum(per_seed(r)[s] > base['eegfm_scratch'][s] for r in runs.values() for s in seeds if s in per_seed(r))}"
                                   f"/{sum(s in per_seed(r) for r in runs.values() for s in seeds)}"},
        "channel_drop_pooled": {"eegfm_lora": drop_curve(runs.values()),
                                **{m: drop_curve(res) for m, res in baseline_results.items()}},
        "per_fold_mean_over_seeds": fold_means,
        "per_fold_lora_minus_scratch": {f: round(lora_folds[f] - statistics.mean(fold_rows["eegfm_scratch"][f]), 4)
                                        for f in range(5)},
        "fold_mean_of_means": {m: round(statistics.mean(v.values()), 4) for m, v in fold_means.items()},
    }
    (HERE / "pooled.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
