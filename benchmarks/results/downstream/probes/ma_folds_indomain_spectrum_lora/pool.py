"""Pool recipe row 27: MA on 5 leave-subjects-out folds over all 30 subjects, each fold pre-trained
in-domain (its own training subjects) per pre-training run, LoRA vs scratch vs EEGNet.

Reads the ``downstream.json`` files in the sub-folders beside this script (one per
``benchmarks/downstream.py`` call, see ``commands.txt``; the pre-training run is the call's first
seed) and writes ``pooled.json``. The harness's primary figure is kept: per fine-tuning seed, the
balanced accuracy of the predictions pooled over the 5 folds (every subject tested once). Here,
per fine-tuning seed, LoRA is averaged over the pre-training runs, then compared with scratch
(paired by seed); the same per fold (mean over seeds), and the channel-drop curve.

    python benchmarks/results/downstream/probes/ma_folds_indomain_spectrum_lora/pool.py
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent


def mean_std(values):
    values = list(values)
    return {"mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def main():
    lora = {}  # pre-training run -> fine-tuning seed -> pooled balanced accuracy
    lora_fold = defaultdict(lambda: defaultdict(list))  # fold -> seed -> values over runs
    others = defaultdict(dict)  # model -> seed -> value (a model's seeds may come from several calls)
    others_fold = defaultdict(lambda: defaultdict(list))  # model -> fold -> values over seeds
    drop = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # model -> share -> seed -> values over runs
    pretrain_r2 = {}
    for path in sorted(HERE.glob("*/downstream.json")):
        report = json.loads(path.read_text())
        if report.get("partial"):
            print(f"skipping {path}: the run has not finished every fold")
            continue
        run = f"pretrain seed {report['seeds'][0]}"
        if report["pretraining"]["ma"]["folds"]:  # the calls without eegfm_lora pre-train nothing
            pretrain_r2[run] = {f: round(v["masked_r2"]["masked_r2"]["random"], 4)
                                for f, v in report["pretraining"]["ma"]["folds"].items()}
        for model, result in report["results"]["ma"].items():
            per_seed = result["aggregate"]["balanced_accuracy"]["per_seed"]
            if model == "eegfm_lora":
                lora[run] = per_seed
                for row in result["rows"]:
                    lora_fold[row["fold"]][str(row["seed"])].append(row["test"]["balanced_accuracy"])
            else:
                others[model].update(per_seed)
                for row in result["rows"]:
                    others_fold[model][row["fold"]].append(row["test"]["balanced_accuracy"])
            for share, agg in result.get("channel_drop", {}).items():
                for seed, value in agg["per_seed"].items():
                    drop[model][share][seed].append(value)
    seeds = sorted(others["eegfm_scratch"], key=int)
    lora_per_seed = {s: statistics.mean(lora[run][s] for run in lora) for s in seeds}
    paired = [lora_per_seed[s] - others["eegfm_scratch"][s] for s in seeds]
    folds = sorted(lora_fold)
    lora_fold_mean = {f: statistics.mean(statistics.mean(v) for v in lora_fold[f].values()) for f in folds}
    pooled = {
        "metric": "balanced accuracy of the predictions pooled over the 5 test folds (all 30 subjects), per fine-tuning seed",
        "pretrain_runs": sorted(lora),
        "masked_r2_random_mask_per_fold": pretrain_r2,
        "lora_per_run": {run: {**{s: round(by_seed[s], 4) for s in seeds}, **mean_std(by_seed[s] for s in seeds)}
                         for run, by_seed in sorted(lora.items())},
        "lora_mean_over_runs_per_seed": {s: round(v, 4) for s, v in lora_per_seed.items()},
        "lora": mean_std(lora_per_seed.values()),
        **{model: {**{s: round(by_seed[s], 4) for s in seeds}, **mean_std(by_seed[s] for s in seeds)}
           for model, by_seed in sorted(others.items())},
        "paired_lora_minus_scratch": {**mean_std(paired), "per_seed": [round(p, 4) for p in paired],
                                      "better": f"{sum(p > 0 for p in paired)}/{len(paired)}",
                                      "runs_x_seeds_better": f"{sum(lora[r][s] > others['eegfm_scratch'][s] for r in lora for s in seeds)}"
                                                             f"/{len(lora) * len(seeds)}"},
        "per_fold_mean_over_seeds": {
            "eegfm_lora": {f: round(v, 4) for f, v in lora_fold_mean.items()},
            **{model: {f: round(statistics.mean(v), 4) for f, v in sorted(by_fold.items())}
               for model, by_fold in sorted(others_fold.items())},
            "lora_minus_scratch": {f: round(lora_fold_mean[f] - statistics.mean(others_fold["eegfm_scratch"][f]), 4)
                                   for f in folds},
        },
        "channel_drop": {model: {share: mean_std(statistics.mean(v) for v in by_seed.values())
                                 for share, by_seed in sorted(shares.items())} for model, shares in drop.items()},
    }
    (HERE / "pooled.json").write_text(json.dumps(pooled, indent=2) + "\n")
    print(json.dumps(pooled, indent=2))


if __name__ == "__main__":
    main()
