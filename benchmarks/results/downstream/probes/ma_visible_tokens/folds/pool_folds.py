"""Recipe row 41 on 5 MA folds (row 27's): LoRA from per-fold encoders pre-trained with visible_blocks=1 (pre-training
seed 0) against row 27's run 0 (the same call without it: same folds, same pre-training seed), its three-run mean,
scratch and EEGNet. Test predictions of the 5 folds pooled per seed, as the harness reports them.

    python benchmarks/results/downstream/probes/ma_visible_tokens/folds/pool_folds.py   # -> pooled_folds.json
"""
import json
import statistics as st
from pathlib import Path

HERE = Path(__file__).parent
ROW27 = json.loads((HERE.parent.parent / "ma_folds_indomain_spectrum_lora" / "pooled.json").read_text())
seeds = [str(s) for s in range(5)]
report = json.loads((HERE / "downstream.json").read_text())["results"]["ma"]["eegfm_lora"]
visible = {s: report["aggregate"]["balanced_accuracy"]["per_seed"][s] for s in seeds}
others = {"row 27 run 0 (paper's step, same pre-training seed)": ROW27["pooled_lora_per_run"]["s0"],
          "row 27 mean of 3 runs": ROW27["pooled_lora_mean_over_runs"],
          "scratch": ROW27["pooled_eegfm_scratch"], "EEGNet": ROW27["pooled_eegnet"]}
pooled = {"visible_blocks_1": visible, "channel_drop": report["channel_drop"]}
print("visible_blocks=1", [round(visible[s], 3) for s in seeds], f"{st.mean(visible.values()):.3f} ± "
      f"{st.stdev(visible.values()):.3f}")
for name, other in others.items():
    diff = [visible[s] - other[s] for s in seeds]
    pooled[f"minus {name}"] = diff
    print(f"{name}: {st.mean(other[s] for s in seeds):.3f}; visible - it {[round(d, 3) for d in diff]} = "
          f"{st.mean(diff):+.3f} ± {st.stdev(diff):.3f} ({sum(d > 0 for d in diff)}/5)")
(HERE / "pooled_folds.json").write_text(json.dumps(pooled, indent=1) + "\n")
