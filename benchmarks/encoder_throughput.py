"""Training-step throughput of MAPEEncoder vs braindecode's Labram, side by side in one process.

Both models get the same input (B recordings of C channels x T samples), the same patch
size and Transformer size, a 2-class head, cross-entropy, the same AdamW (fused, as eegfm's
Trainer uses, unless ``--adamw foreach``), and (by default on GPU) bf16 autocast. On CPU the
clock is process CPU time (robust to other load on a shared machine). Rounds alternate between the two models so drift hits both alike; the
median step time of each is reported as tokens/s (B * C * T // patch_size tokens a step)
and, on CUDA, peak memory.

Issue target (GPU, base size, B=128, 64 ch x 4 s at 200 Hz, patch 200): MAPEEncoder
>= 3x Labram tokens/s and <= 4 GB peak memory.

``--task pretrain`` times eegfm's full masked pre-training step instead (frozen tokenizer
targets + one encoder pass per masking strategy, three by default) against the same Labram
forward+backward. ``--cached-codes`` takes the targets precomputed (what ``eegfm pretrain``
does with its code cache) and ``--single-pass`` uses one encoder pass per step.

``--compile`` wraps eegfm's forward + loss in ``torch.compile`` (its backward is compiled with
it; the AdamW step stays eager, fused, for both models), as ``TrainConfig(compile=True)`` does;
``--compile-labram`` does the same for Labram, so both can be compared compiled or eager.
Compilation happens in the warm-up steps, outside the timed rounds (compile time is printed).

    python benchmarks/encoder_throughput.py                      # GPU if present, else a CPU-sized run
    python benchmarks/encoder_throughput.py --device cpu --batch-size 8 --dtype fp32
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from eegfm import MAPEEncoder

SIZES = {"tiny": (64, 2, 4), "small": (128, 6, 8), "base": (200, 12, 10)}  # D, layers, heads


class EncoderClassifier(nn.Module):
    """MAPEEncoder + linear head on the CLS token (the same work Labram's forward does)."""

    def __init__(self, encoder: MAPEEncoder, n_outputs: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, n_outputs)

    def forward(self, x, positions):
        return self.head(self.encoder(x, positions).cls)


def build_pretrainer(args, dim, depth, heads):
    from eegfm.models.pretrainer import MaskedPretrainer
    from eegfm.models.tokenizer import NeuralTokenizer

    size = dict(patch_size=args.patch_size, embed_dim=dim, depth=depth, num_heads=heads, sfreq=args.sfreq)
    tokenizer = NeuralTokenizer(**size, num_codes=args.num_codes).eval()
    return MaskedPretrainer(**size, num_codes=args.num_codes, strategies=args.strategies.split(","),
                            single_pass=args.single_pass).attach_tokenizer(tokenizer)


def build_models(args, device):
    dim, depth, heads = SIZES[args.size]
    n_times = int(args.seconds * args.sfreq)
    if args.task == "pretrain":
        ours = build_pretrainer(args, dim, depth, heads).to(device)
        ours._tokenizer.to(device)
    else:
        ours = EncoderClassifier(
            MAPEEncoder(patch_size=args.patch_size, embed_dim=dim, depth=depth, num_heads=heads, sfreq=args.sfreq),
            n_outputs=2,
        ).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from braindecode.models import Labram
        from braindecode.models.labram import LABRAM_CHANNEL_ORDER

        labram = Labram(
            n_times=n_times, n_outputs=2, n_chans=args.n_chans, sfreq=args.sfreq,
            patch_size=args.patch_size, embed_dim=dim, num_layers=depth, num_heads=heads,
        ).to(device)
    ch_names = list(LABRAM_CHANNEL_ORDER[: args.n_chans])
    return ours, labram, ch_names, n_times


def make_step(model, loss_of, batch, labels, device, dtype, fused=False, optimizer=True, compile_mode=None,
              compile_backend="inductor"):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused or None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    if compile_mode is not None:  # forward + loss (and so their backward); the optimizer step stays eager
        loss_of = torch.compile(loss_of, backend=compile_backend,
                                mode=None if compile_mode == "default" else compile_mode)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_of(model, batch, labels)
        loss.backward()
        if optimizer:
            opt.step()

    return step


def time_steps(step, n, device, clock=time.perf_counter) -> list[float]:
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - start)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda | cpu | auto")
    parser.add_argument("--size", default="base", choices=sorted(SIZES))
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 on GPU, 8 on CPU")
    parser.add_argument("--n-chans", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sfreq", type=float, default=200.0)
    parser.add_argument("--patch-size", type=int, default=200)
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp32"], help="default bf16 on GPU, fp32 on CPU")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task", default="classify", choices=["classify", "pretrain"],
                        help="classify: encoder + head; pretrain: the full masked pre-training step")
    parser.add_argument("--num-codes", type=int, default=2048, help="--task pretrain: codebook size")
    parser.add_argument("--strategies", default="random,channel,temporal", help="--task pretrain: masks per step")
    parser.add_argument("--single-pass", action="store_true",
                        help="--task pretrain: one encoder pass per step, one strategy per sample")
    parser.add_argument("--cached-codes", action="store_true",
                        help="--task pretrain: targets precomputed once (as eegfm pretrain's code cache does)")
    parser.add_argument("--no-optimizer", action="store_true",
                        help="time forward + backward only (no AdamW step) for both models")
    parser.add_argument("--adamw", default="fused", choices=["fused", "foreach"],
                        help="AdamW implementation for BOTH models (eegfm's Trainer uses fused)")
    parser.add_argument("--clock", default=None, choices=["wall", "process"],
                        help="wall time, or process CPU time (default on CPU: robust to other load)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile eegfm's forward + loss (as TrainConfig(compile=True))")
    parser.add_argument("--compile-labram", action="store_true", help="torch.compile Labram's forward + loss too")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode for --compile / --compile-labram")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (inductor; aot_eager only checks that it compiles)")
    parser.add_argument("--tag", default="", help="appended to the JSON file name (e.g. run1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.batch_size = args.batch_size or (128 if device.type == "cuda" else 8)
    args.dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    ours, labram, ch_names, n_times = build_models(args, device)
    x = torch.randn(args.batch_size, args.n_chans, n_times, device=device) * 20
    positions = torch.rand(args.n_chans, 2, device=device) * 100
    labels = torch.randint(0, 2, (args.batch_size,), device=device)
    tokens = args.batch_size * args.n_chans * (n_times // args.patch_size)

    ce = nn.CrossEntropyLoss()

    targets = None
    if args.task == "pretrain" and args.cached_codes:
        with torch.no_grad():
            targets = ours._targets(x, positions.expand(len(x), -1, -1), None, None)

    def pretrain_loss(m, b, y):
        out = m(b, positions, targets=targets)
        return out.loss_sum / out.count

    ours_name = "eegfm.MaskedPretrainer step" if args.task == "pretrain" else "eegfm.MAPEEncoder"
    contenders = {
        ours_name: (ours, pretrain_loss if args.task == "pretrain" else (lambda m, b, y: ce(m(b, positions).float(), y))),
        "braindecode.Labram": (labram, lambda m, b, y: ce(m(b, ch_names=ch_names).float(), y)),
    }
    compiled = {ours_name: args.compile, "braindecode.Labram": args.compile_labram}
    steps = {name: make_step(m, call, x, labels, device, args.dtype, args.adamw == "fused",
                               optimizer=not args.no_optimizer,
                               compile_mode=args.compile_mode if compiled[name] else None,
                               compile_backend=args.compile_backend)
             for name, (m, call) in contenders.items()}
    peak, times, compile_s = {}, {name: [] for name in contenders}, {}
    for name, step in steps.items():  # warm-up (and compilation) and peak memory, one model at a time
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if compiled[name]:  # the first step compiles: timed apart, on the wall clock
            compile_s[name] = sum(time_steps(step, 1, device))
            print(f"{name}: first (compiling) step {compile_s[name]:.1f} s")
        time_steps(step, args.warmup, device)
        if device.type == "cuda":
            peak[name] = torch.cuda.max_memory_allocated() / 2**30
    args.clock = args.clock or ("wall" if device.type == "cuda" else "process")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for _ in range(args.rounds):  # alternating rounds: drift hits both alike
        for name, step in steps.items():
            times[name] += time_steps(step, args.steps, device, clock)

    results = {}
    for name, (model, _) in contenders.items():
        median = statistics.median(times[name])
        results[name] = {
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "step_s_median": round(median, 5),
            "tokens_per_s": round(tokens / median, 1),
            "peak_memory_GiB": round(peak[name], 3) if name in peak else None,
            "compiled": compiled[name],
            "first_step_s": round(compile_s[name], 1) if name in compile_s else None,
        }
    ratio = results[ours_name]["tokens_per_s"] / results["braindecode.Labram"]["tokens_per_s"]
    report = {
        "benchmark": "encoder_throughput",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "tokens_per_step": tokens,
        "results": results,
        "speedup_tokens_per_s": round(ratio, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = "pretrain_step" if args.task == "pretrain" else "encoder"
    if args.task == "pretrain":
        prefix += ("_single" if args.single_pass else "") + ("_cached" if args.cached_codes else "")
    prefix += "_fwdbwd" if args.no_optimizer else ""
    prefix += ("_compiled" if args.compile else "") + ("_labramcompiled" if args.compile_labram else "")
    tag = f"_{args.tag}" if args.tag else ""
    path = args.out / f"{prefix}_throughput_{device.type}_{args.size}_b{args.batch_size}_{args.dtype}{tag}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        mem = f", peak {r['peak_memory_GiB']:.2f} GiB" if r["peak_memory_GiB"] is not None else ""
        print(f"{name:30s} {r['tokens_per_s']:>12,.0f} tokens/s  ({r['step_s_median'] * 1e3:.1f} ms/step{mem})")
    print(f"{ours_name} / Labram tokens/s: {ratio:.2f}x   -> {path}")
    return report


if __name__ == "__main__":
    main()
