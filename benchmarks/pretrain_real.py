"""Tokenizer + masked pre-training on real, mixed-montage EEG, evaluated on held-out subjects.

Training data (three caps in the same batches): PhysioNet EEG Motor Movement/Imagery subject 1
(MOABB PhysionetMI, 64 ch, 6 runs), the EEGLAB sample (30 EEG ch), and PhysioNet Mental
Arithmetic subjects 02-27 (BIDS, 19 ch). Held out: Mental Arithmetic subjects 28-31.

Reports, in ``--out`` (JSON + PNG, no weights):
- codebook usage and perplexity of the tokenizer on the training data and on held-out data;
- masked-token accuracy per masking strategy (random, channel, temporal; one model trained
  with all three) on held-out data, beside the accuracy of always predicting the most
  frequent code in training.

Models and checkpoints go to ``--work-dir`` (outside the repository).

    python benchmarks/pretrain_real.py                         # CPU: about 15 minutes
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from eegfm.cli.pretrain import PretrainRun, pretrain
from eegfm.cli.runs import DataConfig, PretrainModelConfig, TokenizerModelConfig, build_loader
from eegfm.cli.tokenizer import TokenizerRun, plot_codebook_usage, train_tokenizer
from eegfm.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def codebook_usage(tokenizer, batches) -> tuple[dict, torch.Tensor]:
    """Usage and perplexity of the codes the tokenizer gives ``batches``, and how much the codes
    depend on the signal: the share of codes unchanged when each window's signal is replaced by
    another window's at the same channel positions (about 1/perplexity if codes describe
    content; near 1 if they only encode position)."""
    counts = torch.zeros(tokenizer.quantizer.num_codes, dtype=torch.long)
    same = total = 0
    for batch in batches:
        codes, mask = tokenizer.tokenize(**batch.encoder_inputs())
        counts += torch.bincount(codes[codes >= 0], minlength=len(counts))
        swapped, _ = tokenizer.tokenize(batch.x.roll(1, dims=0), batch.positions, channel_mask=batch.channel_mask,
                                        n_times=batch.n_times)
        same += int((codes[mask] == swapped[mask]).sum())
        total += int(mask.sum())
    probs = counts.double() / counts.sum()
    perplexity = float(torch.exp(-(probs[probs > 0] * probs[probs > 0].log()).sum()))
    return {"usage": float((counts > 0).double().mean()), "perplexity": perplexity, "tokens": int(counts.sum()),
            "codes_unchanged_when_signal_swapped": same / max(total, 1)}, counts


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pretrain_real")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/eegfm-pretrain-real"))
    parser.add_argument("--tokenizer-steps", type=int, default=400)
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-codes", type=int, default=256)
    parser.add_argument("--heldout-batches", type=int, default=40)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("MNE_DATASETS_EEGBCI_PATH", str(args.shared_data / "eegbci"))
    os.environ.setdefault("MOABB_DOWNLOAD_PROVIDER", "upstream")
    start = time.perf_counter()

    train_subjects = ",".join(f"{s:02d}" for s in range(2, 28))
    heldout_subjects = "28,29,30,31"
    train_data = DataConfig(
        sources=(f"moabb:PhysionetMI:1;files:{args.shared_data}/eeglab/eeglab_data.set;"
                 f"bids:{args.shared_data}/eegmat_bids:{train_subjects}"),
        cache_dir=str(args.work_dir / "cache"), window_seconds=4.0, batch_size=args.batch_size)
    heldout_data = DataConfig(**{**vars(train_data), "sources": f"bids:{args.shared_data}/eegmat_bids:{heldout_subjects}"})

    def train_config(name, steps, lr):
        return TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=max(steps // 20, 1),
                           checkpoint_every=steps, run_dir=str(args.work_dir / name), progress=args.progress)

    tokenizer, tok_summary = train_tokenizer(TokenizerRun(
        model=TokenizerModelConfig(patch_size=100, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                   code_dim=16, num_codes=args.num_codes, decoder_depth=1, dead_code_steps=50),
        data=train_data, train=train_config("tokenizer", args.tokenizer_steps, 2e-3)))
    _, _, heldout = build_loader(heldout_data, 100, seed=1, progress=False)
    heldout_batches = list(itertools.islice(heldout.batches(epoch=0), args.heldout_batches))
    heldout_batches = [type(b)(b.x.clone(), b.positions, b.channel_mask, b.n_times) for b in heldout_batches]
    heldout_codes, heldout_counts = codebook_usage(tokenizer, heldout_batches)

    pretrainer, pre_summary = pretrain(PretrainRun(
        tokenizer="", model=PretrainModelConfig(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads),
        data=train_data, train=train_config("pretrain", args.pretrain_steps, 1e-3), eval_batches=10), tokenizer=tokenizer)
    heldout_eval = pretrainer.evaluate(heldout_batches, seed=0)

    args.out.mkdir(parents=True, exist_ok=True)
    plot_codebook_usage(tokenizer.quantizer.usage_counts.cpu().numpy(), args.out / "codebook_usage_train.png",
                        f"training data, {args.tokenizer_steps} steps")
    plot_codebook_usage(heldout_counts.numpy(), args.out / "codebook_usage_heldout.png",
                        f"held-out subjects {heldout_subjects}")
    report = {
        "benchmark": "pretrain_real",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "minutes": round((time.perf_counter() - start) / 60, 1),
        "train_data": {"recordings": tok_summary["recordings"], "windows_4s": tok_summary["windows"],
                       "padding_fraction": tok_summary["padding_fraction"], "sources": train_data.sources},
        "heldout_data": {"sources": heldout_data.sources, "batches": len(heldout_batches)},
        "tokenizer": {"codebook_train": tok_summary["codebook"], "codebook_heldout": heldout_codes,
                      "final_train_metrics": tok_summary["train"].get("metrics", {})},
        "pretrain": {"heldout": heldout_eval, "train": pre_summary["evaluation"]},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    (args.out / "pretrain_real.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    acc = ", ".join(f"{k} {v:.1%}" for k, v in heldout_eval["accuracy"].items())
    print(f"codebook: train usage {tok_summary['codebook']['usage']:.1%} perplexity {tok_summary['codebook']['perplexity']:.1f}; "
          f"held-out usage {heldout_codes['usage']:.1%} perplexity {heldout_codes['perplexity']:.1f}; "
          f"codes unchanged when the signal is swapped: {heldout_codes['codes_unchanged_when_signal_swapped']:.1%}")
    print(f"held-out masked-token accuracy: {acc}; most-frequent-code baseline {heldout_eval['baseline_accuracy']:.1%}")
    return report


if __name__ == "__main__":
    main()
