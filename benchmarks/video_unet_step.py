"""Denoising-step time of the inflated video UNet vs the plain 2-D UNet on the same frames.

Stable Diffusion 1.5's UNet architecture (its config written out below; random weights, so
nothing downloads), by default fp16 on CUDA. One step of the video sampler with classifier-free
guidance runs the UNet on 2 clips (conditional + unconditional) of 6 frames (2 s at 3 fps) of
4 x 36 x 64 latents (288 x 512 video), i.e. on 12 frames:

- ``unet2d``: the plain ``UNet2DConditionModel`` on the 12 frames as a batch of images;
- ``inflated``: :class:`eegfm_video.models.InflatedUNet` (sparse-causal self-attention + a
  temporal attention per transformer block) on ``(2, 4, 6, 36, 64)``, same 2-D weights.

Rounds alternate between the two models inside one process after a warm-up; the median step
time of each is reported, with their ratio (issue target: inflated <= 1.25 x the 2-D step,
which measured 37 ms on the reference GPU). Seconds per generated 2-s clip at 50 steps are
reported as 50 x the median inflated step (the UNet's share), and as a measured 50-step DDIM
loop (UNet + guidance + scheduler; no VAE decode).

    python benchmarks/video_unet_step.py                       # cuda + fp16 if present
    python benchmarks/video_unet_step.py --device cpu --size tiny --steps 2   # smoke run, seconds
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

import diffusers
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from eegfm_video.models.inflated_unet import InflatedUNet

#: Stable Diffusion 1.5's ``unet/config.json`` (arguments that differ from diffusers' defaults included).
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, center_input_sample=False, downsample_padding=1,
    flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1,
)
#: A few-channel UNet of the same layout, for smoke runs.
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
)
SIZES = {"sd15": SD15_UNET, "tiny": TINY_UNET}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def time_steps(step, n: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of ``n`` calls of ``step``, each synchronised on CUDA."""
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def ddim_loop(model: InflatedUNet, latents, text, uncond, steps: int, guidance: float = 7.5):
    """A DDIM sampling loop of `steps` steps with classifier-free guidance; latents (1, c, f, h, w)."""
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    scheduler.set_timesteps(steps, device=latents.device)
    context = torch.cat((uncond, text))  # (2, 77, d)
    for t in scheduler.timesteps:
        noise = model(torch.cat((latents, latents)), t, context).sample  # (2, c, f, h, w)
        uncond_noise, cond_noise = noise.chunk(2)
        latents = scheduler.step(uncond_noise + guidance * (cond_noise - uncond_noise), t, latents).prev_sample
    return latents


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda | cpu | auto (cuda if available)")
    parser.add_argument("--size", default="sd15", choices=sorted(SIZES), help="UNet architecture (random weights)")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default fp16 on cuda, fp32 on cpu")
    parser.add_argument("--frames", type=int, default=6, help="frames per clip (2 s at 3 fps)")
    parser.add_argument("--height", type=int, default=36, help="latent height (288 px / 8)")
    parser.add_argument("--width", type=int, default=64, help="latent width (512 px / 8)")
    parser.add_argument("--text-tokens", type=int, default=77)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inference-steps", type=int, default=50, help="steps of the measured DDIM loop")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.dtype = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    dtype = DTYPES[args.dtype]
    torch.manual_seed(0)

    with torch.device(device):
        unet2d = UNet2DConditionModel(**SIZES[args.size]).eval()
    torch.nn.Module.to(unet2d, dtype)  # (ModelMixin.to logs a float32-modules note on every dtype cast)
    inflated = InflatedUNet.from_unet2d(unet2d).eval()
    config = unet2d.config
    clips, frames = 2, args.frames  # classifier-free guidance: conditional + unconditional clip
    latents = torch.randn(clips, config.in_channels, frames, args.height, args.width, device=device, dtype=dtype)
    text = torch.randn(clips, args.text_tokens, config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)
    images = latents.transpose(1, 2).reshape(clips * frames, config.in_channels, args.height, args.width)
    text_per_frame = text.repeat_interleave(frames, dim=0)

    steps = {
        "unet2d": lambda: unet2d(images, t, text_per_frame).sample,
        "inflated": lambda: inflated(latents, t, text).sample,
    }
    times = {name: [] for name in steps}
    peak = {}
    with torch.inference_mode():
        for name, step in steps.items():  # warm-up and peak memory, one model at a time
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            time_steps(step, args.warmup, device)
            if device.type == "cuda":
                peak[name] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name] += time_steps(step, args.steps, device)
        loop = time_steps(lambda: ddim_loop(inflated, latents[:1], text[:1], text[1:], args.inference_steps),
                          1, device)[0]

    results = {}
    for name, model in (("unet2d", unet2d), ("inflated", inflated)):
        results[name] = {
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "step_ms_median": round(statistics.median(times[name]) * 1e3, 3),
            "step_ms": [round(s * 1e3, 3) for s in times[name]],
            "peak_memory_GiB": peak.get(name),
        }
    ratio = results["inflated"]["step_ms_median"] / results["unet2d"]["step_ms_median"]
    report = {
        "benchmark": "video_unet_step",
        "command": "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "frames": frames,
        "cfg_batch": clips,
        "latent_hw": [args.height, args.width],
        "results": results,
        "ratio_inflated_vs_2d": round(ratio, 3),
        "target_ratio": 1.25,
        "clip_s_at_50_steps": round(50 * results["inflated"]["step_ms_median"] / 1000, 3),
        "measured_loop": {"inference_steps": args.inference_steps, "seconds": round(loop, 3),
                          "includes": "inflated UNet with CFG (batch 2) + DDIM scheduler; no VAE decode"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"video_unet_step_{device.type}_{args.size}_{args.dtype}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        memory = f", peak {r['peak_memory_GiB']} GiB" if r["peak_memory_GiB"] is not None else ""
        print(f"{name:9s} {r['step_ms_median']:9.2f} ms/step  ({r['params_M']} M params{memory})")
    print(f"inflated / 2-D: {ratio:.3f}x (target <= 1.25x); 2-s clip at 50 steps: {report['clip_s_at_50_steps']:.2f} s "
          f"(measured {args.inference_steps}-step DDIM loop: {loop:.2f} s)  -> {path}")
    return report


if __name__ == "__main__":
    main()
