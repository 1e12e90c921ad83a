"""A training step on the CPU in bf16 autocast vs float32, side by side in one process.

CPUs with AMX (Intel Sapphire Rapids and later) multiply bf16 matrices several times faster than
float32 ones, but PyTorch's CPU attention kernel is slower in bf16 than in float32. eegfm therefore
attends in float32 under CPU autocast (``eegfm.modules.transformer.CPU_HALF_ATTENTION_IN_FP32``).
This times ``encoder_throughput.py``'s steps (base size by default, B recordings of 64 ch x 4 s,
patch 1 s, AdamW) in four arms, alternating rounds, process CPU time:

- eegfm under bf16 autocast, attention in float32 (the library's behaviour);
- eegfm under bf16 autocast, attention in bf16 (``CPU_HALF_ATTENTION_IN_FP32 = False``);
- eegfm in float32;
- braindecode's Labram under bf16 autocast (the same step as ``encoder_throughput.py``'s).

``--task pretrain`` times the pre-training step (single pass, cached codes) and Labram's LaBraM-style
masked step instead of the classification steps. Training in bf16 on the CPU is a choice
(``TrainConfig(amp="bf16")``, ``--train.amp=bf16``); ``amp="auto"`` keeps float32 on CPUs.

    python benchmarks/cpu_bf16_step.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import eegfm.modules.transformer as transformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import encoder_throughput as et  # noqa: E402  (the same models, inputs and steps)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", choices=sorted(et.SIZES))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-chans", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--patch-size", type=int, default=200)
    parser.add_argument("--task", default="classify", choices=["classify", "pretrain"])
    parser.add_argument("--num-codes", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    options = ["--device", "cpu", "--size", args.size, "--batch-size", str(args.batch_size), "--n-chans",
               str(args.n_chans), "--seconds", str(args.seconds), "--patch-size", str(args.patch_size), "--task",
               args.task, "--num-codes", str(args.num_codes), "--dtype", "bf16"]
    if args.task == "pretrain":
        options += ["--single-pass", "--cached-codes"]
    setup = et.parse_args(options)
    torch.manual_seed(0)
    inputs = et.make_inputs(setup, device)
    ours, labram = et.build_models(setup, len(inputs.ch_names), inputs.n_times, device)
    contenders = et.contenders(setup, ours, labram, inputs)
    ours_name = next(iter(contenders))
    arms = {  # name: (attention in float32?, step)
        "eegfm bf16, attention fp32": (True, et.make_step(*contenders[ours_name], device, "bf16", fused=True)),
        "eegfm bf16, attention bf16": (False, et.make_step(*contenders[ours_name], device, "bf16", fused=True)),
        "eegfm fp32": (True, et.make_step(*contenders[ours_name], device, "fp32", fused=True)),
        "Labram bf16": (True, et.make_step(*contenders[et.LABRAM], device, "bf16", fused=True)),
    }
    before = transformer.CPU_HALF_ATTENTION_IN_FP32
    times = {name: [] for name in arms}
    try:
        for name, (fp32_attention, step) in arms.items():
            transformer.CPU_HALF_ATTENTION_IN_FP32 = fp32_attention
            et.time_steps(step, args.warmup, device)
        for _ in range(args.rounds):  # alternating rounds: drift hits every arm alike
            for name, (fp32_attention, step) in arms.items():
                transformer.CPU_HALF_ATTENTION_IN_FP32 = fp32_attention
                times[name] += et.time_steps(step, args.steps, device, time.process_time)
    finally:
        transformer.CPU_HALF_ATTENTION_IN_FP32 = before
    step_s = {name: statistics.median(t) for name, t in times.items()}
    default = step_s["eegfm bf16, attention fp32"]
    report = {
        "benchmark": "cpu_bf16_step",
        "command": "python " + shlex.join([sys.argv[0] if argv is None else "benchmarks/cpu_bf16_step.py", *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                  f"{torch.backends.cpu.get_cpu_capability()})",
        "torch": torch.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "tokens_per_step": inputs.tokens,
        "step_ms": {name: round(s * 1e3, 1) for name, s in step_s.items()},
        "tokens_per_s": {name: round(inputs.tokens / s, 1) for name, s in step_s.items()},
        "time_over_eegfm_bf16_attention_fp32": {name: round(s / default, 3) for name, s in step_s.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu_bf16_step_{args.task}_{args.size}_b{args.batch_size}_t{torch.get_num_threads()}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for name in arms:
        print(f"{name:28s} {report['step_ms'][name]:9.1f} ms  {report['tokens_per_s'][name]:9.0f} tokens/s  "
              f"{report['time_over_eegfm_bf16_attention_fp32'][name]:.2f}x the time of eegfm bf16 + fp32 attention")
    print(f"-> {path}")
    return report


if __name__ == "__main__":
    main()
