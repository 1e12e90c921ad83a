"""Training step on padded mixed-montage batches, packed vs unpacked, side by side in one process (CPU).

On the CPU the encoder drops padding tokens from its per-token work (:mod:`eegfm.modules.packing`:
the patch embedder, LayerNorms, projections and MLPs run on the real tokens; attention on the
padded layout). This times the same training step with the packing on and off
(``eegfm.modules.packing.PACK_ON_CPU``), alternating rounds, process CPU time:

- ``encoder``: the base-size encoder (D=200, 12 layers, 10 heads, patch 1 s) + a linear head on
  the CLS token, cross-entropy, AdamW: ``encoder_throughput.py``'s classification step;
- ``pretrain``: the base-size masked pre-training step (single pass, cached codes), as
  ``encoder_throughput.py --task pretrain --single-pass --cached-codes``.

Both on ``--batch-size`` recordings of 64 ch x 4 s at 200 Hz whose real channels cycle through
``--caps`` (default 19, 32, 64; zero-padded to 64), as ``encoder_throughput.py --padded`` feeds.
It reports the median step time of each arm, their ratio and the largest difference of the
loss between the two (float rounding: each token's maths is the same).

    python benchmarks/padding_packing.py --threads 1 --rounds 5
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

import eegfm.modules.packing as packing
from eegfm import MAPEEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_throughput import SIZES, build_pretrainer  # noqa: E402  (SIZES: D, layers, heads)


def batch(args) -> dict:
    """x (B, 64, T) in µV with padded channels zeroed, positions (B, 64, 2), channel_mask (B, 64), labels (B,)."""
    gen = torch.Generator().manual_seed(0)
    caps = ([int(c) for c in args.caps.split(",")] * args.batch_size)[: args.batch_size]
    n_chans, n_times = max(caps), int(args.seconds * 200)
    channel_mask = torch.arange(n_chans)[None, :] < torch.tensor(caps)[:, None]
    x = torch.randn(args.batch_size, n_chans, n_times, generator=gen) * 20 * channel_mask[:, :, None]
    positions = (torch.rand(n_chans, 2, generator=gen) * 80 + 10).expand(args.batch_size, -1, -1)
    return dict(x=x, positions=positions, channel_mask=channel_mask,
                labels=torch.randint(0, 2, (args.batch_size,), generator=gen), real_tokens=sum(caps) * (n_times // 200))


def steps(args, data) -> dict:
    """``{name: step()}``, each a forward + backward + AdamW step returning the loss."""
    dim, depth, heads = SIZES[args.size]
    torch.manual_seed(0)
    encoder = MAPEEncoder(patch_size=200, embed_dim=dim, depth=depth, num_heads=heads, sfreq=200.0)
    head = nn.Linear(dim, 2)
    pre_args = argparse.Namespace(patch_size=200, sfreq=200.0, num_codes=512, strategies="random,channel,temporal",
                                  single_pass=True)
    pretrainer = build_pretrainer(pre_args, dim, depth, heads)
    x, positions, channel_mask = data["x"], data["positions"], data["channel_mask"]
    with torch.no_grad():
        targets = pretrainer._targets(x, positions, channel_mask, None)

    def encoder_loss():
        cls = encoder(x, positions, channel_mask=channel_mask, check_finite=False).cls
        return nn.functional.cross_entropy(head(cls), data["labels"])

    def pretrain_loss():
        out = pretrainer(x, positions, channel_mask=channel_mask, targets=targets,
                         generator=torch.Generator().manual_seed(0))
        return out.loss_sum / out.count

    def train(params, loss_of):
        opt = torch.optim.AdamW(params, lr=0.0)  # lr 0: every round sees the same weights

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_of()
            loss.backward()
            opt.step()
            return loss.item()
        return step

    return {"encoder": train([*encoder.parameters(), *head.parameters()], encoder_loss),
            "pretrain": train([p for p in pretrainer.parameters() if p.requires_grad], pretrain_loss)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", default="base", choices=sorted(SIZES))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--caps", default="19,32,64", help="real channels, cycled over the batch (padded to the largest)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; one step of each arm per round")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = batch(args)
    library = packing.PACK_ON_CPU
    report = {"command": "python benchmarks/padding_packing.py " + shlex.join(argv if argv is not None
                                                                               else sys.argv[1:]),
              "threads": args.threads, "torch": torch.__version__, "batch_size": args.batch_size, "caps": args.caps,
              "real_token_share": round(data["channel_mask"].float().mean().item(), 3), "steps": {}}
    try:
        for name, step in steps(args, data).items():
            times, losses = {"packed": [], "unpacked": []}, {}
            for arm in times:  # warm-up, one step each
                packing.PACK_ON_CPU = arm == "packed"
                step()
            for _ in range(args.rounds):
                for arm in times:
                    packing.PACK_ON_CPU = arm == "packed"
                    start = time.process_time()
                    losses[arm] = step()
                    times[arm].append(time.process_time() - start)
            median = {arm: statistics.median(t) * 1e3 for arm, t in times.items()}
            report["steps"][name] = {"median_ms": median, "ratio_unpacked_over_packed": median["unpacked"] /
                                     median["packed"], "loss_difference": abs(losses["packed"] - losses["unpacked"]),
                                     "step_ms": times}
    finally:
        packing.PACK_ON_CPU = library
    shown = {**report, "steps": {name: {k: v for k, v in figures.items() if k != "step_ms"}
                                 for name, figures in report["steps"].items()}}
    print(json.dumps(shown, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
