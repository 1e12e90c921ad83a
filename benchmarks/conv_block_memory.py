"""What the patch embedder keeps for its backward pass, and what its forward + backward costs, for each way
its convolution stack can run, side by side in one process.

Arms (:class:`eegfm.modules.patch_embed.NeuralPatchEmbedder`, base layout: patches of 200 samples,
convolutions 8/8/16 channels):

- ``conv``: the ``nn.Conv1d`` modules (the CPU's default);
- ``matmul``: each block as one :class:`~eegfm.modules.conv_norm_gelu.ConvNormGELU` (the GPU's default);
- ``matmul written out``: the same blocks op by op (``patch_embed.LEAN_CONV_BLOCKS = False``, the GPU's
  default before ``ConvNormGELU``);
- ``conv checkpointed`` and ``matmul checkpointed``: ``checkpoint_convs=True``.

For each it reports the bytes of the tensors autograd keeps between forward and backward (parameters
excluded; the same on every device, since it counts what the operations save), the median milliseconds
of forward + backward (alternating rounds; process CPU time on the CPU, synchronised wall clock on CUDA),
on CUDA the peak memory allocated, and the difference from the ``matmul written out`` arm: the largest
of the output, and the largest over parameters of ``||grad - grad_ref|| / ||grad_ref||``.

    python benchmarks/conv_block_memory.py --batch-size 128 --time-batch-size 8 --threads 1   # CPU
    python benchmarks/conv_block_memory.py --device cuda                                      # B=128, bf16
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

import eegfm.modules.patch_embed as patch_embed
from eegfm.modules.patch_embed import NeuralPatchEmbedder

#: name -> (conv_impl, checkpoint_convs, LEAN_CONV_BLOCKS)
ARMS = {
    "conv": ("conv", False, True),
    "conv checkpointed": ("conv", True, True),
    "matmul": ("matmul", False, True),
    "matmul written out": ("matmul", False, False),
    "matmul checkpointed": ("matmul", True, True),
}


def run_arm(embedder, batch, arm, autocast, hook=None):
    """Forward + backward of ``embedder`` on ``batch`` (patches, weights) as ``arm`` runs it; returns the output
    (detached). The loss is the output projected on the fixed random ``weights`` (a mean square of a
    LayerNorm's output would be constant, its gradients rounding noise)."""
    patches, weights = batch
    embedder.conv_impl, embedder.checkpoint_convs, patch_embed.LEAN_CONV_BLOCKS = ARMS[arm]
    try:
        with autocast, (hook if hook is not None else torch.autograd.graph.saved_tensors_hooks(lambda t: t,
                                                                                               lambda t: t)):
            out = embedder(patches)
        (out.float() * weights).sum().backward()
    finally:
        embedder.conv_impl, embedder.checkpoint_convs, patch_embed.LEAN_CONV_BLOCKS = None, False, True
    return out.detach()


def saved_bytes(embedder, batch, arm, autocast) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of ``arm`` (parameters excluded)."""
    kept: dict[int, int] = {}

    def pack(tensor):
        if not isinstance(tensor, nn.Parameter):
            kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    run_arm(embedder, batch, arm, autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
    embedder.zero_grad()
    return sum(kept.values())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128, help="windows of 64 ch x 4 s for the memory figures")
    p.add_argument("--time-batch-size", type=int, default=None, help="windows for the timing (default: --batch-size)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="autocast dtype (fp32: none)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; one forward + backward of each arm")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    embedder = NeuralPatchEmbedder(patch_size=200, embed_dim=200).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def patches(batch):  # (patches, loss weights), both drawn here, outside the timing
        return torch.randn(batch, 64, 4, 200, device=device) * 20, torch.randn(batch, 64, 4, 200, device=device)

    report = {"command": "python benchmarks/conv_block_memory.py " + shlex.join(argv if argv is not None
                                                                                 else sys.argv[1:]),
              "device": str(device), "dtype": args.dtype, "torch": torch.__version__,
              "threads": torch.get_num_threads(),
              "batch_size": args.batch_size, "patches": args.batch_size * 64 * 4, "arms": {}}
    big = patches(args.batch_size)
    for arm in ARMS:
        figures = {"saved_GiB": round(saved_bytes(embedder, big, arm, autocast) / 2**30, 4)}
        if device.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            run_arm(embedder, big, arm, autocast)
            torch.cuda.synchronize()
            figures["peak_GiB_above_inputs"] = round((torch.cuda.max_memory_allocated() - base) / 2**30, 4)
            embedder.zero_grad()
        report["arms"][arm] = figures
    del big

    small = patches(args.time_batch_size or args.batch_size)
    outputs, grads = {}, {}
    for arm in ARMS:  # outputs and gradients of each arm, and a warm-up
        embedder.zero_grad()
        outputs[arm] = run_arm(embedder, small, arm, autocast).float()
        grads[arm] = {name: param.grad.clone() for name, param in embedder.named_parameters()}
    reference = "matmul written out"
    for arm in ARMS:
        report["arms"][arm]["max_abs_difference"] = {
            "output": (outputs[arm] - outputs[reference]).abs().max().item(),
            "gradients_relative": max(((grads[arm][n] - g).norm() / g.norm().clamp_min(1e-12)).item()
                                      for n, g in grads[reference].items()),
        }
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(args.rounds):
        for arm in ARMS:
            embedder.zero_grad()
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            run_arm(embedder, small, arm, autocast)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[arm].append(clock() - start)
    for arm in ARMS:
        report["arms"][arm]["median_ms"] = round(statistics.median(times[arm]) * 1e3, 3)
        report["arms"][arm]["ms_over_matmul_written_out"] = round(
            statistics.median(times[arm]) / statistics.median(times[reference]), 3)
    report["time_batch_size"] = len(small[0])
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
