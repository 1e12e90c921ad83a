"""Where a training step's time goes: a kernel profile of eegfm's encoder step and braindecode's Labram.

``benchmarks/encoder_throughput.py`` says how fast each step is; this says why. For each model it
builds the same step as that benchmark (same sizes, batch, autocast, fused AdamW), warms it up,
and reports:

- the step time (median of ``--steps``), with ``torch.backends.cudnn.benchmark`` off and on
  (side by side, alternating rounds): cuDNN's default algorithm for the patch convolutions' tiny
  channel counts may not be its fastest;
- the share of the step spent in eegfm's patch embedder (its forward + backward alone on the
  same patches, timed the same way), with its convolutions run either way the library offers
  (``conv_impl`` ``"conv"``: ``nn.Conv1d``; ``"matmul"``: one matrix product per convolution over
  unfolded windows; their largest difference is reported), and with ``--compile-embedder`` under
  ``torch.compile``;
- eegfm's step as the library runs it on the device, and with each embedder (``conv``, ``matmul``),
  with and without its intermediates recomputed in the backward (``checkpoint_convs``), and with the
  ``matmul`` blocks written out op by op (``patch_embed.LEAN_CONV_BLOCKS = False``, the default before
  :class:`~eegfm.modules.conv_norm_gelu.ConvNormGELU`);
- peak memory of each arm's warm-up (CUDA);
- the top ``--top`` operators by self device time over ``--profile-steps`` profiled steps
  (``torch.profiler``), as a text table per model.

``--unet`` adds the same table for one fp16 denoising step of the inflated video UNet and of the
2-D UNet it is built from (SD-1.5 architecture, random weights, ``benchmarks/video_unet_step.py``'s
sizes), to show what the inflation adds.

    python benchmarks/gpu_profile.py                           # CUDA, base size, B=128, bf16
    python benchmarks/gpu_profile.py --unet --compile-embedder
    python benchmarks/gpu_profile.py --device cpu --size tiny --batch-size 2 --steps 1   # smoke run

Writes ``gpu_profile_<device>_<size>_b<B>.json`` (timings + tables) under ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import encoder_throughput as et  # noqa: E402  (the same models, inputs and step)

from eegfm.modules import patch_embed  # noqa: E402


def time_median(step, n: int, device: torch.device) -> float:
    """Median seconds of ``n`` calls of ``step`` (synchronised on CUDA)."""
    return statistics.median(et.time_steps(step, n, device))


def kernel_table(step, n: int, device: torch.device, top: int) -> str:
    """The top ``top`` operators of ``n`` calls of ``step`` by self device time (self CPU time on CPU)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=70)


def patch_embed_step(model, inputs, args, device, conv_impl: str):
    """eegfm's patch embedder alone (a copy), its convolutions run as ``conv_impl``: forward + backward on the
    step's patches, under the same autocast."""
    embedder = copy.deepcopy(model.encoder.patch_embed)
    embedder.conv_impl = conv_impl
    patches = inputs.x.reshape(*inputs.x.shape[:2], inputs.n_patches, args.patch_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def step():
        with autocast:
            out = embedder(patches)
        out.float().square().mean().backward()

    return step


def with_embedder(step, model, conv_impl: str | None = None, checkpoint: bool = False, lean: bool = True):
    """``step`` with eegfm's patch embedder set to ``conv_impl`` / ``checkpoint_convs`` while it runs; ``lean=False``
    writes the ``matmul`` blocks out op by op instead of :class:`~eegfm.modules.conv_norm_gelu.ConvNormGELU`."""
    embedder = model.encoder.patch_embed

    def wrapped():
        embedder.conv_impl, embedder.checkpoint_convs, patch_embed.LEAN_CONV_BLOCKS = conv_impl, checkpoint, lean
        try:
            step()
        finally:
            embedder.conv_impl, embedder.checkpoint_convs, patch_embed.LEAN_CONV_BLOCKS = None, False, True

    return wrapped


def embedder_max_difference(model, inputs, args) -> float:
    """Largest difference between the embedder's ``conv`` and ``matmul`` outputs on the step's first 4,096
    patches (fp32)."""
    embedder = model.encoder.patch_embed
    patches = inputs.x.reshape(-1, args.patch_size)[:4096]
    with torch.no_grad():
        embedder.conv_impl = "conv"
        conv = embedder(patches)
        embedder.conv_impl = "matmul"
        matmul = embedder(patches)
        embedder.conv_impl = None
    return (conv - matmul).abs().max().item()


def encoder_report(args, device) -> dict:
    torch.manual_seed(0)
    inputs = et.make_inputs(args, device)
    ours, labram = et.build_models(args, inputs.x.shape[1], inputs.n_times, device)
    arms = {name: et.make_step(model, loss_of, device, args.dtype, fused=device.type == "cuda")
            for name, (model, loss_of) in et.contenders(args, ours, labram, inputs).items()}
    ours_step = arms[next(iter(arms))]  # the library's defaults (conv_impl: DEFAULT_CONV_IMPL of the device)
    for impl in ("conv", "matmul"):
        arms[f"eegfm step, {impl} embedder"] = with_embedder(ours_step, ours, impl)
        arms[f"eegfm step, {impl} embedder checkpointed"] = with_embedder(ours_step, ours, impl, checkpoint=True)
    arms["eegfm step, matmul embedder written out"] = with_embedder(ours_step, ours, "matmul", lean=False)
    for impl in ("conv", "matmul"):
        arms[f"patch embedder, {impl} (fwd+bwd)"] = patch_embed_step(ours, inputs, args, device, impl)
    arms["patch embedder, matmul written out (fwd+bwd)"] = with_embedder(
        patch_embed_step(ours, inputs, args, device, "matmul"), ours, lean=False)
    if args.compile_embedder:
        for impl in ("conv", "matmul"):
            arms[f"patch embedder, {impl}, compiled (fwd+bwd)"] = torch.compile(
                patch_embed_step(ours, inputs, args, device, impl))
    max_diff = embedder_max_difference(ours, inputs, args)
    peak = {}
    for name, step in arms.items():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        et.time_steps(step, args.warmup, device)
        if device.type == "cuda":
            peak[name] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    times = {(name, bench): [] for name in arms for bench in (False, True)}
    for _ in range(args.rounds):  # alternate models and the cuDNN setting so drift hits all alike
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            for name, step in arms.items():
                if bench:
                    et.time_steps(step, 1, device)  # the autotuning call is not timed
                times[name, bench].append(time_median(step, args.steps, device))
    torch.backends.cudnn.benchmark = False
    step_ms = {name: {f"cudnn_benchmark_{'on' if bench else 'off'}": round(statistics.median(times[name, bench]) * 1e3,
                                                                          3)
                      for bench in (False, True)} for name in arms}
    tables = {name: kernel_table(step, args.profile_steps, device, args.top) for name, step in arms.items()}
    return {"tokens_per_step": inputs.tokens, "step_ms": step_ms, "peak_memory_GiB": peak,
            "embedder_conv_vs_matmul_max_abs_difference": max_diff, "tables": tables}


def unet_report(args, device) -> dict:
    """Kernel tables of one fp16 denoising step: the inflated UNet vs the 2-D UNet on the same frames."""
    from diffusers import UNet2DConditionModel

    import video_unet_step as vu
    from eegfm_video.models.inflated_unet import InflatedUNet

    size = "sd15" if device.type == "cuda" else "tiny"
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    frames, height, width = (6, 36, 64) if device.type == "cuda" else (2, 8, 8)
    with torch.device(device):
        unet2d = UNet2DConditionModel(**vu.SIZES[size]).eval()
    torch.nn.Module.to(unet2d, dtype)
    inflated = InflatedUNet.from_unet2d(unet2d).eval()
    config = unet2d.config
    latents = torch.randn(2, config.in_channels, frames, height, width, device=device, dtype=dtype)
    text = torch.randn(2, 77, config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)
    images = latents.transpose(1, 2).reshape(2 * frames, config.in_channels, height, width)
    steps = {"unet2d": lambda: unet2d(images, t, text.repeat_interleave(frames, dim=0)).sample,
             "inflated": lambda: inflated(latents, t, text).sample}
    with torch.inference_mode():
        for step in steps.values():
            et.time_steps(step, args.warmup, device)
        step_ms = {name: round(time_median(step, args.steps, device) * 1e3, 3) for name, step in steps.items()}
        tables = {name: kernel_table(step, args.profile_steps, device, args.top) for name, step in steps.items()}
    return {"size": size, "frames": frames, "latent_hw": [height, width], "step_ms": step_ms, "tables": tables}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="base", choices=sorted(et.SIZES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-chans", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sfreq", type=float, default=200.0)
    parser.add_argument("--patch-size", type=int, default=200)
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=30, help="operators per table")
    parser.add_argument("--unet", action="store_true", help="also profile the inflated video UNet step")
    parser.add_argument("--compile-embedder", action="store_true",
                        help="also time the embedder's convolution stack under torch.compile (compiled in the warm-up)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    # the rest of encoder_throughput's options, at its defaults (a classification step, unpadded)
    args.padded, args.caps, args.task, args.labram_step, args.num_codes = False, "19,32,64", "classify", "masked", 2048
    args.embedder, args.checkpoint_embedder = None, False
    device = torch.device(args.device)

    report = {
        "benchmark": "gpu_profile",
        "command": "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "encoder": encoder_report(args, device),
    }
    if args.unet:
        report["unet"] = unet_report(args, device)
    for part in ("encoder", "unet"):
        if part in report:
            print(f"== {part} step ms: {json.dumps(report[part]['step_ms'])}")
            for name, table in report[part]["tables"].items():
                print(f"== {part}: {name}\n{table}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_profile_{device.type}_{args.size}_b{args.batch_size}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {path}")
    return report


if __name__ == "__main__":
    main()
