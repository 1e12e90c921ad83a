"""Recipe row 41 on 5 MA folds (row 27's): LoRA from per-fold encoders pre-trained with visible_blocks=1
(pre-training seeds 0 and 1: ``folds/`` and ``../folds_s1/``) against row 27's runs with the same pre-training
seeds (the same calls without it), scratch and EEGNet. Test predictions of the 5 folds pooled per seed, as the
harness reports them.

    python benchmarks/results/downstream/probes/ma_visible_tokens/folds/pool_folds.py   # -> pooled_folds.json
"""
import json
import statistics as st
from pathlib import Path

HERE = Path(__file__).parent
ROW27 = json.loads((HERE.parent.parent / "ma_folds_indomain_spectrum_lora" / "pooled.json").read_text())
SEEDS = [str(s) for s in range(5)]


def pooled_per_seed(folder: Path) -> dict:
    report = json.loads((folder / "downstream.json").read_text())["results"]["ma"]["eegfm_lora"]
    return {s: report["aggregate"]["balanced_accuracy"]["per_seed"][s] for s in SEEDS}


def line(name: str, values: dict, other: dict) -> list[float]:
    diff = [values[s] - other[s] for s in SEEDS]
    print(f"  - {name} ({st.mean(other[s] for s in SEEDS):.3f}): {[round(d, 3) for d in diff]} = "
          f"{st.mean(diff):+.3f} ± {st.stdev(diff):.3f} ({sum(d > 0 for d in diff)}/5)")
    return diff


visible = {"s0": pooled_per_seed(HERE), "s1": pooled_per_seed(HERE.parent / "folds_s1")}
paper = {run: ROW27["pooled_lora_per_run"][run] for run in visible}
scratch, eegnet = ROW27["pooled_eegfm_scratch"], ROW27["pooled_eegnet"]
pooled = {"visible_blocks_1": visible, "row27_same_seeds": paper}
for run, values in visible.items():
    print(f"visible_blocks=1, pre-training seed {run[1]}: {[round(values[s], 3) for s in SEEDS]} = "
          f"{st.mean(values.values()):.3f} ± {st.stdev(values.values()):.3f}")
    pooled[f"{run}_minus_row27_same_seed"] = line(f"row 27 run {run}, the paper's step", values, paper[run])
mean_visible = {s: st.mean(visible[run][s] for run in visible) for s in SEEDS}
mean_paper = {s: st.mean(paper[run][s] for run in paper) for s in SEEDS}
print(f"mean of the two runs per seed: {[round(mean_visible[s], 3) for s in SEEDS]} = "
      f"{st.mean(mean_visible.values()):.3f} ± {st.stdev(mean_visible.values()):.3f}")
pooled["mean_minus_row27_same_seeds"] = line("row 27's runs s0, s1", mean_visible, mean_paper)
pooled["mean_minus_scratch"] = line("scratch", mean_visible, scratch)
pooled["mean_minus_eegnet"] = line("EEGNet", mean_visible, eegnet)
(HERE / "pooled_folds.json").write_text(json.dumps(pooled, indent=1) + "\n")
