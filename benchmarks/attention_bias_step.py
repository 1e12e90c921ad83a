"""Training-step time of the distance attention bias: the plain construction vs ``distance_bias``.

The bias ``(B, H, 1 + C*K, 1 + C*K)`` is rebuilt on every forward. It used to be built the plain way
(scalp distances and patch lags repeated out to ``(C*K, C*K)``, then padded for the CLS token:
four full-size temporaries); :func:`eegfm.modules.attention_bias.distance_bias` now writes it once
into its output. Both give the same tensor bit for bit (``tests/test_attention_bias.py``), so
only time differs. This times a fine-tuning step of the motor-imagery classifier (64 channels x
4 s at 200 Hz, patch 0.5 s, D=64, 2 layers, 4 heads, ``patch_mean``, moment pooling: RECIPE.md
rows 34-38), alternating rounds of each construction, process CPU time, and prints the median
step of each and their ratio.

    python benchmarks/attention_bias_step.py --threads 1 --rounds 5 --steps 5
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import eegfm.models.encoder as encoder_module
from eegfm.models.classifier import MAPEClassifier
from eegfm.modules.attention_bias import head_slopes


def plain_bias(positions, token_mask, num_heads, padded=None):
    """The earlier construction: distance and lag repeated to (CK, CK), the CLS row/column padded on."""
    batch, n_chans, n_patches = token_mask.shape
    space, time_ = (s[None, :, None, None] for s in head_slopes(num_heads))
    distance = torch.cdist(positions, positions) / 10.0
    distance = distance.repeat_interleave(n_patches, 1).repeat_interleave(n_patches, 2)
    index = torch.arange(n_patches, dtype=positions.dtype)
    lag = (index[:, None] - index[None, :]).abs().repeat(n_chans, n_chans)
    bias = F.pad(-(space * distance[:, None] + time_ * lag), (1, 0, 1, 0))
    if padded is not False:
        keep = F.pad(token_mask.flatten(1), (1, 0), value=True)
        bias = bias.masked_fill(~keep[:, None, None, :], float("-inf"))
    return bias


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and construction")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MAPEClassifier(n_outputs=2, pooling="moments", encoder=dict(
        patch_size=100, embed_dim=64, depth=2, num_heads=4, patch_mean=True, attention_bias="distance", sfreq=200.0))
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: every step sees the same weights
    b = args.batch_size
    x, positions = torch.randn(b, 64, 800) * 20, torch.rand(b, 64, 2) * 100
    channel_mask, labels = torch.ones(b, 64, dtype=torch.bool), torch.randint(0, 2, (b,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x, positions, channel_mask=channel_mask), labels).backward()
        opt.step()

    library_bias = encoder_module.distance_bias
    times: dict[str, list[float]] = {"plain": [], "distance_bias": []}
    try:
        for _ in range(args.rounds):
            for name, build in (("plain", plain_bias), ("distance_bias", library_bias)):
                encoder_module.distance_bias = build
                step()  # one untimed step after switching
                for _ in range(args.steps):
                    start = time.process_time()
                    step()
                    times[name].append(time.process_time() - start)
    finally:
        encoder_module.distance_bias = library_bias
    median = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}
    report = {"median_step_ms": median, "ratio_plain_over_distance_bias": median["plain"] / median["distance_bias"],
              "threads": args.threads, "batch_size": b, "torch": torch.__version__}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
