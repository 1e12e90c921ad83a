"""Single-pass vs three-pass masked pre-training: held-out masked-token accuracy and CPU cost.

The three-pass step runs the encoder once per masking strategy (random, channel, temporal);
the single-pass step (``PretrainModelConfig.single_pass``) runs it once, each sample masked by
one strategy in turn. Compared here on real, mixed-montage EEG with one shared tokenizer:

- ``three_pass``  N steps;
- ``single_pass`` N steps (a third of the encoder passes);
- ``single_pass_3x`` 3N steps (the same encoder passes as ``three_pass``).

Masked-token accuracy is measured on held-out subjects with every strategy on every sample
(``MaskedPretrainer.evaluate``), beside the most-frequent-code baseline. Tokenizer codes
come from the code cache (computed once). Process CPU seconds of each run are reported.

    python benchmarks/pretrain_passes.py            # about 15 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from eegfm.cli.pretrain import PretrainRun, pretrain
from eegfm.cli.runs import DataConfig, PretrainModelConfig, TokenizerModelConfig, build_loader
from eegfm.cli.tokenizer import TokenizerRun, train_tokenizer
from eegfm.data import cache_codes
from eegfm.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pretrain_passes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/eegfm-pretrain-passes"))
    parser.add_argument("--tokenizer-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=300, help="N: steps of the three-pass run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-codes", type=int, default=256)
    parser.add_argument("--heldout-batches", type=int, default=30)
    args = parser.parse_args(argv)
    data = args.shared_data
    train_sources = (f"eegbci:{data}/eegbci:1-12;files:{data}/eeglab/eeglab_data.set;"
                     f"arff:{data}/uci_eeg_eye_state/*.arff:128;bids:{data}/eegmat_bids:{','.join(f'{s:02d}' for s in range(2, 26))}")
    heldout_sources = f"bids:{data}/eegmat_bids:26,27,28,29,30,31;eegbci:{data}/eegbci:15"
    train_data = DataConfig(sources=train_sources, cache_dir=str(args.work_dir / "cache"), window_seconds=4.0,
                            batch_size=args.batch_size)

    def train_config(name, steps, lr):
        return TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=max(steps // 10, 1),
                           checkpoint_every=steps, run_dir=str(args.work_dir / name), progress=False, metrics="none")

    tokenizer, tok_summary = train_tokenizer(TokenizerRun(
        model=TokenizerModelConfig(patch_size=100, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                   code_dim=16, num_codes=args.num_codes, decoder_depth=1, dead_code_steps=50),
        data=train_data, train=train_config("tokenizer", args.tokenizer_steps, 2e-3)))
    heldout_cfg = DataConfig(**{**vars(train_data), "sources": heldout_sources})
    _, heldout_windows, heldout = build_loader(heldout_cfg, 100, seed=1, progress=False)
    heldout.windows = cache_codes(heldout_windows, tokenizer, heldout_cfg.cache_dir, progress=False)
    heldout_batches = [b.to("cpu") for b in itertools.islice(heldout.batches(epoch=0), args.heldout_batches)]
    heldout_batches = [type(b)(b.x.clone(), b.positions, b.channel_mask, b.n_times, b.targets) for b in heldout_batches]

    variants = {"three_pass": (False, args.steps), "single_pass": (True, args.steps),
                "single_pass_3x": (True, 3 * args.steps)}
    results = {}
    for name, (single, steps) in variants.items():
        cpu = time.process_time()
        pretrainer, summary = pretrain(PretrainRun(
            tokenizer="", model=PretrainModelConfig(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                                    single_pass=single),
            data=train_data, train=train_config(f"pretrain_{name}", steps, 1e-3), eval_batches=5), tokenizer=tokenizer)
        cpu = time.process_time() - cpu
        heldout_eval = pretrainer.evaluate(heldout_batches, seed=0)
        results[name] = {"single_pass": single, "steps": steps, "cpu_seconds": round(cpu, 1),
                         "heldout": heldout_eval}
        acc = ", ".join(f"{k} {v:.1%}" for k, v in heldout_eval["accuracy"].items())
        print(f"{name:15s} {steps:5d} steps, {cpu:7.1f} CPU s: held-out masked accuracy {acc} "
              f"(baseline {heldout_eval['baseline_accuracy']:.1%})", flush=True)

    report = {
        "benchmark": "pretrain_passes",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_sources": train_sources, "heldout_sources": heldout_sources,
        "tokenizer": {"recordings": tok_summary["recordings"], "windows": tok_summary["windows"],
                      "codebook": tok_summary["codebook"]},
        "results": results,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pretrain_passes.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


if __name__ == "__main__":
    main()
