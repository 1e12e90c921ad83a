"""Recipe row 41 on MA's test subjects 26-31: LoRA from the three visible_blocks=1 encoders against row 26's
four encoders of the same recipe without visible_blocks (its three-mask run 0 and three channel-mask runs, which
row 25 found equal), scratch and EEGNet (row 26's calls).

    python benchmarks/results/downstream/probes/ma_visible_tokens/test/pool_test.py   # -> pooled_test.json
"""
import json
import statistics as st
from pathlib import Path

HERE = Path(__file__).parent
ROW26 = HERE.parent.parent / "ma_test_indomain_spectrum_lora"


def per_seed(path: Path, model: str) -> dict:
    """Test balanced accuracy per seed of ``model`` in one harness report."""
    rows = json.loads(path.read_text())["results"]["ma"][model]["rows"]
    return {row["seed"]: row["test"]["balanced_accuracy"] for row in rows}


def ms(values) -> str:
    return f"{st.mean(values):.3f} ± {st.stdev(values):.3f}"


seeds = [str(s) for s in range(5)]
visible = {run: per_seed(HERE / f"vis1-{run}" / "downstream.json", "eegfm_lora") for run in ("s0", "s1", "s2")}
control = {**per_seed(ROW26 / "out-all-s0" / "downstream.json", "eegfm_lora"),
           **per_seed(ROW26 / "out34-all-s0" / "downstream.json", "eegfm_lora")}
scratch = per_seed(ROW26 / "out0" / "downstream.json", "eegfm_scratch")
eegnet = per_seed(ROW26 / "out0" / "downstream.json", "eegnet")
row26 = json.loads((ROW26 / "pooled.json").read_text())
paper_step = {s: row26["lora_mean_over_runs_per_seed"][s] for s in seeds}  # mean of its four runs per seed
mean_visible = [st.mean(visible[run][s] for run in visible) for s in seeds]
pooled = {"visible_blocks_1": visible, "control_row26_run0": control, "scratch": scratch, "eegnet": eegnet,
          "visible_mean_per_seed": mean_visible}
for run, values in visible.items():
    print("visible_blocks=1", run, [round(values[s], 3) for s in seeds], ms(values.values()))
print("mean over runs per seed", [round(v, 3) for v in mean_visible], ms(mean_visible))
for name, other in (("paper_step (row 26, mean of its 4 runs)", paper_step),
                    ("control (row 26, three-mask run 0)", control), ("scratch", scratch), ("EEGNet", eegnet)):
    diff = [m - other[s] for m, s in zip(mean_visible, seeds)]
    pooled[f"visible_minus_{name.split()[0]}"] = diff
    print(f"{name}: {ms([other[s] for s in seeds])}; visible - it {[round(d, 3) for d in diff]} = {ms(diff)} "
          f"({sum(d > 0 for d in diff)}/5)")
(HERE / "pooled_test.json").write_text(json.dumps(pooled, indent=1) + "\n")
