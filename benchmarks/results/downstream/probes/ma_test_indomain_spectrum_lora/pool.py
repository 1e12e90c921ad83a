"""Pool recipe row 26: MA test subjects 26-31, LoRA from four in-domain spectrum encoders vs scratch and EEGNet.

Reads the ``downstream.json`` files beside this script (one per ``benchmarks/downstream.py`` call,
see ``commands.txt``) and writes ``pooled.json``: per model and seed the test balanced accuracy
(and the channel-drop curve), the LoRA mean over the pre-training runs, and the paired difference
LoRA - scratch per fine-tuning seed.

    python benchmarks/results/downstream/probes/ma_test_indomain_spectrum_lora/pool.py
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent


def mean_std(values):
    values = list(values)
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "n": len(values)}


def main():
    lora = defaultdict(dict)  # encoder run -> seed -> balanced accuracy
    drop = defaultdict(lambda: defaultdict(list))  # model -> share -> values
    others = defaultdict(dict)  # model -> seed -> balanced accuracy
    for path in sorted(HERE.glob("*/downstream.json")):
        report = json.loads(path.read_text())
        run = Path(report["encoder"]["path"]).parent.name
        for model, result in report["results"]["ma"].items():
            for row in result["rows"]:
                value = row["test"]["balanced_accuracy"]
                (lora[run] if model == "eegfm_lora" else others[model])[row["seed"]] = value
            for share, agg in result.get("channel_drop", {}).items():
                drop[model][share].extend(agg["per_seed"].values())
    seeds = sorted(others["eegfm_scratch"])
    per_seed_lora = {s: statistics.mean(lora[run][s] for run in lora) for s in seeds}
    paired = [per_seed_lora[s] - others["eegfm_scratch"][s] for s in seeds]
    pooled = {
        "lora_per_run": {run: {**{s: round(v, 4) for s, v in sorted(by_seed.items())}, "mean": round(statistics.mean(by_seed.values()), 4)}
                         for run, by_seed in sorted(lora.items())},
        "lora_mean_over_runs_per_seed": {s: round(v, 4) for s, v in per_seed_lora.items()},
        "lora_run_means": mean_std(statistics.mean(v.values()) for v in lora.values()),
        "lora": mean_std(per_seed_lora.values()),
        **{model: {**{s: round(v, 4) for s, v in sorted(by_seed.items())}, **mean_std(by_seed.values())}
           for model, by_seed in sorted(others.items())},
        "paired_lora_minus_scratch": {**mean_std(paired), "per_seed": [round(p, 4) for p in paired],
                                      "better": f"{sum(p > 0 for p in paired)}/{len(paired)}",
                                      "runs_x_seeds_better": f"{sum(lora[r][s] > others['eegfm_scratch'][s] for r in lora for s in seeds)}"
                                                             f"/{len(lora) * len(seeds)}"},
        "channel_drop": {model: {share: mean_std(v) for share, v in sorted(shares.items())} for model, shares in drop.items()},
    }
    (HERE / "pooled.json").write_text(json.dumps(pooled, indent=2) + "\n")
    print(json.dumps(pooled, indent=2))


if __name__ == "__main__":
    main()
