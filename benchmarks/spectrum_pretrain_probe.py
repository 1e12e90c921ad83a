"""Experiment: masked pre-training on the patches' Fourier amplitudes directly (no codebook).

    python benchmarks/spectrum_pretrain_probe.py --sources "bids:../shared/data/eegmat_bids:02,03" \
        --steps 1000 --run-dir /tmp/eegfm-spectrum

The recipe log (``benchmarks/results/downstream/RECIPE.md``) found that masked prediction of
the VQ tokenizer's codes gives an initialisation no better (800 steps) or worse (3000 steps)
than random on Mental Arithmetic. This probe swaps only the target: the masked tokens regress
the tokenizer's own target (:func:`eegfm.models.tokenizer.amplitude_target`, the per-sample
z-scored ``|rfft|`` of each patch) with a mean squared error, with the same encoder, masking
(single pass: one of random / channel / temporal per sample), optimiser and data path as
``eegfm pretrain``. It is an experiment, not a library feature: it writes a
``MAPEEncoder`` folder (``<run-dir>/encoder``) that ``benchmarks/finetune_probe.py`` and
``benchmarks/feature_probe.py`` take, and ``evaluation.json`` with the masked-token R^2 (1 -
MSE / MSE of predicting the per-sample mean, 0) on seeded masks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm.cli.runs import DataConfig, build_loader, check_loader  # noqa: E402
from eegfm.models.pretrainer import MaskedPretrainer, PretrainOutput  # noqa: E402
from eegfm.models.tokenizer import amplitude_target  # noqa: E402
from eegfm.training import TrainConfig, Trainer  # noqa: E402


class SpectrumPretrainer(MaskedPretrainer):
    """:class:`MaskedPretrainer` whose masked tokens regress their patch's z-scored Fourier amplitudes.

    The head has ``patch_size // 2 + 1`` outputs (one per rfft bin); ``targets`` are ignored.
    ``loss_sum`` / ``count``: squared error summed over masked tokens (mean over bins) / masked
    tokens. ``accuracy`` holds the masked-token R^2 (against predicting 0, the per-sample mean).
    """

    def __init__(self, patch_size: int = 100, **kwargs):
        super().__init__(patch_size=patch_size, num_codes=patch_size // 2 + 1, single_pass=True, **kwargs)

    def forward(self, x, positions, *, channel_mask=None, n_times=None, targets=None,
                generator=None) -> PretrainOutput:
        """x (B, C, T) µV, positions (B, C, 2) -> masked-token MSE (one pass)."""
        enc = self.encoder
        positions, channel_mask, n_times = enc._check_inputs(x, positions, channel_mask, n_times, None)
        patches = enc.patchify(x)  # (B, C, K, W)
        token_mask = enc.token_mask(channel_mask, n_times, patches.shape[2])  # (B, C, K)
        target = amplitude_target(patches, token_mask).flatten(1, 2)  # (B, C*K, F)
        embeddings = enc.patch_embed(patches)
        valid_patches = torch.div(n_times, enc.patch_size, rounding_mode="floor")
        loss_sum = torch.zeros((), device=x.device)
        count = torch.zeros((), device=x.device)
        r2, n_masked = {}, {}
        for name, mask, _ in self._masks(token_mask, generator):  # one pass in training, one per strategy in evaluate()
            hidden = torch.where(mask[..., None], self.mask_embedding.to(embeddings.dtype), embeddings)
            out = enc.encode(hidden, positions.to(embeddings.dtype), token_mask, valid_patches)
            chosen = mask.flatten(1)
            pred = self.head(out.tokens[chosen]).float()  # (M, F)
            truth = target[chosen]
            loss_sum = loss_sum + (pred - truth).pow(2).mean(-1).sum()
            count = count + chosen.sum()
            with torch.no_grad():
                r2[name] = 1 - (pred - truth).pow(2).sum() / truth.pow(2).sum().clamp_min(1e-12)
                n_masked[name] = chosen.sum()
        zero = torch.zeros((), device=x.device)
        return PretrainOutput(loss=loss_sum / count.clamp_min(1), loss_sum=loss_sum, count=count,
                              accuracy=r2, baseline_accuracy=zero, n_masked=n_masked)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sources", required=True, help="eegfm source spec (never the test subjects)")
    p.add_argument("--cache-dir", default="/tmp/eegfm-long/cache")
    p.add_argument("--patch-size", type=int, default=100)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--window-seconds", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, required=True)
    args = p.parse_args(argv)
    data = DataConfig(sources=args.sources, cache_dir=args.cache_dir, window_seconds=args.window_seconds,
                      batch_size=args.batch_size, num_threads=1)
    corpus, windows, loader = build_loader(data, args.patch_size, args.seed, progress=False)
    check_loader(loader)
    torch.manual_seed(args.seed)
    model = SpectrumPretrainer(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth,
                               num_heads=args.heads, sfreq=data.sfreq,
                               preprocessing=data.preprocess_config().to_dict())
    cfg = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.steps // 10, log_every=max(args.steps // 10, 1),
                      checkpoint_every=args.steps, run_dir=str(args.run_dir), progress=False, metrics="csv",
                      seed=args.seed)
    fit = Trainer(model, cfg, loader.batches).fit()
    evaluation = model.evaluate(itertools.islice(loader.batches(epoch=10_000), 10), seed=args.seed)
    model.encoder.save_pretrained(args.run_dir / "encoder")
    summary = {"command": "python benchmarks/spectrum_pretrain_probe.py " + " ".join(argv or sys.argv[1:]),
               "recordings": len(corpus), "windows": len(windows), "steps": fit["steps"],
               "seconds": fit["seconds"], "masked_r2": evaluation["accuracy"]}
    (args.run_dir / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
