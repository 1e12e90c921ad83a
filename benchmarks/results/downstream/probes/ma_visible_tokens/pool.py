"""Recipe row 41: MA validation, LoRA of visible_blocks=1 / decoder_depth=1 / control encoders vs scratch.

Reads the finetune_probe JSONs beside this file (and row 25's control seeds 0-2), prints each
run and the paired differences per fine-tuning seed, writes ``pooled.json``.
"""
import json
import statistics as st
from pathlib import Path

HERE = Path(__file__).parent


def best(path: Path, variant: str) -> list[float]:
    """Best validation balanced accuracy of each fine-tuning seed."""
    return [row["best"] for row in json.loads(path.read_text())["results"][variant]["rows"]]


def ms(values) -> str:
    return f"{st.mean(values):.3f} ± {st.stdev(values):.3f}"


def rounded(values) -> list[float]:
    return [round(v, 3) for v in values]


control_run0 = best(HERE.parent / "ma_spectrum1000_rebuild_lora_3seeds.json", "lora") + best(
    HERE / "ma_control_lora_seeds34.json", "lora")
arms = {
    "control": [control_run0] + [best(HERE / f"ma_control_s{s}_lora_5seeds.json", "lora") for s in (1, 2)],
    "visible1": [best(HERE / f"ma_visible1{s}_lora_5seeds.json", "lora") for s in ("", "_s1", "_s2")],
    "decoder1": [best(HERE / f"ma_decoder1{s}_lora_5seeds.json", "lora") for s in ("", "_s1")],
}
scratch = best(HERE / "ma_scratch_5seeds.json", "scratch")
row16 = best(HERE.parent / "ma_lora_vs_scratch_5seeds.json", "scratch")
print("scratch rerun", rounded(scratch), round(st.mean(scratch), 3), "row 16", rounded(row16))
pooled = {"scratch": scratch}
for name, runs in arms.items():
    for i, run in enumerate(runs):
        print(name, "run", i, rounded(run), ms(run))
    per_seed = [st.mean(run[s] for run in runs) for s in range(5)]
    diff = [a - b for a, b in zip(per_seed, scratch)]
    pairs = [run[s] - scratch[s] for run in runs for s in range(5)]
    pooled[name] = {"runs": runs, "per_seed": per_seed, "minus_scratch_per_seed": diff, "minus_scratch_pairs": pairs}
    print(f"  {name}: run means {rounded(st.mean(run) for run in runs)}, per seed {rounded(per_seed)} = "
          f"{ms(per_seed)}; - scratch {rounded(diff)} = {ms(diff)} ({sum(d > 0 for d in diff)}/5); "
          f"pairs {ms(pairs)} ({sum(p > 0 for p in pairs)}/{len(pairs)})")
for name in ("visible1", "decoder1"):
    diff = [a - b for a, b in zip(pooled[name]["per_seed"], pooled["control"]["per_seed"])]
    pooled[f"{name}_minus_control_per_seed"] = diff
    print(f"{name} - control per seed", rounded(diff), ms(diff))
(HERE / "pooled.json").write_text(json.dumps(pooled, indent=1) + "\n")
