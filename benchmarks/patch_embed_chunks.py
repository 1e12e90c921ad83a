"""Inference time of the patch embedder in CPU chunks vs in one call, side by side in one process.

Without gradients, :class:`eegfm.modules.patch_embed.NeuralPatchEmbedder` runs its convolutions
over at most ``CPU_CHUNK_PATCHES`` patches at a time on the CPU (their intermediates are 4-8
times the input; in one call a large batch pays for fresh memory and cache misses in every
layer). This times two forwards under ``torch.no_grad``, each with the library's chunks and with
one call (``CPU_CHUNK_PATCHES`` set above the batch), alternating rounds, process CPU time:

- ``mi``: the motor-imagery classifier of RECIPE.md rows 34-39 (64 ch x 4 s at 200 Hz, patch
  0.5 s, D=64, 2 layers, 4 heads, ``patch_mean``, moment pooling, no attention bias) on a batch of
  ``--batch-size`` windows: what ``eegfm.finetune.predict`` does at its default batch of 128;
- ``base``: the base-size encoder (D=200, 12 layers, patch 1 s) on ``--base-batch-size`` windows
  of 64 ch x 4 s.

It prints (and with ``--out`` writes) the median time per window of each, their ratio and the
largest difference between the two outputs (0: the chunks give the same numbers bit for bit).

    python benchmarks/patch_embed_chunks.py --threads 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

import eegfm.modules.patch_embed as patch_embed
from eegfm import MAPEEncoder
from eegfm.models.classifier import MAPEClassifier


def models(args) -> dict:
    """``{name: (model, x, positions)}``: each model in eval mode with its batch."""
    torch.manual_seed(0)
    mi = MAPEClassifier(n_outputs=2, pooling="moments", encoder=dict(
        patch_size=100, embed_dim=64, depth=2, num_heads=4, patch_mean=True, sfreq=200.0)).eval()
    base = MAPEEncoder(patch_size=200, embed_dim=200, depth=12, num_heads=10, sfreq=200.0).eval()
    return {
        "mi": (mi, torch.randn(args.batch_size, 64, 800) * 20, torch.rand(64, 2) * 100),
        "base": (lambda x, p: base(x, p).cls, torch.randn(args.base_batch_size, 64, 800) * 20,
                 torch.rand(64, 2) * 100),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128, help="mi: windows per forward")
    p.add_argument("--base-batch-size", type=int, default=32, help="base: windows per forward")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; one forward of each arm per round")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    library_chunk = patch_embed.CPU_CHUNK_PATCHES
    arms = {"chunked": library_chunk, "one_call": sys.maxsize}
    report = {"command": "python benchmarks/patch_embed_chunks.py " + shlex.join(argv if argv is not None
                                                                                   else sys.argv[1:]),
              "cpu_chunk_patches": library_chunk, "threads": args.threads, "torch": torch.__version__, "models": {}}
    try:
        for name, (model, x, positions) in models(args).items():
            times: dict[str, list[float]] = {arm: [] for arm in arms}
            outputs = {}
            with torch.no_grad():
                for _ in range(args.rounds):
                    for arm, chunk in arms.items():
                        patch_embed.CPU_CHUNK_PATCHES = chunk
                        start = time.process_time()
                        outputs[arm] = model(x, positions)
                        times[arm].append(time.process_time() - start)
            median = {arm: sorted(t)[len(t) // 2] * 1e3 / len(x) for arm, t in times.items()}
            report["models"][name] = {
                "windows": len(x), "patches": x.shape[1] * (x.shape[2] // (100 if name == "mi" else 200)) * len(x),
                "median_ms_per_window": median, "ratio_one_call_over_chunked": median["one_call"] / median["chunked"],
                "max_abs_difference": (outputs["chunked"] - outputs["one_call"]).abs().max().item(),
            }
    finally:
        patch_embed.CPU_CHUNK_PATCHES = library_chunk
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
