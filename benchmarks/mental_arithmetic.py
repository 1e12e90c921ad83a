"""Mental Arithmetic (PhysioNet eegmat, rest vs arithmetic), cross-subject, with the paper's ablations.

    python benchmarks/mental_arithmetic.py                       # everything, CPU (~30-40 min, 2 cores)
    python benchmarks/mental_arithmetic.py --ablations none --seeds 0   # main table only, one seed
    python benchmarks/mental_arithmetic.py --subjects 02-20 --test-subjects 18,19,20

1. Pre-training (tokenizer + masked pre-training): PhysioNet MI subject 1 (MOABB, 64 ch), the
   EEGLAB sample (30 ch) and the TRAINING subjects' eegmat recordings (19 ch) without labels.
2. Fine-tuning on 5-s windows of the training subjects (label = BIDS task), evaluation on the
   held-out subjects (default: the highest-numbered 20% of the subjects present):
   balanced accuracy and AUROC, mean +- std over seeds, for pre-trained eegfm, the same eegfm
   from scratch, braindecode EEGNet and ShallowFBCSPNet (same windows, same split).
3. Ablations (paper Tables 1-3): masking ratio 25/50/75 %; MAPE vs the 1-D sin/cos position
   embedding when pre-training on mixed montages; channel-impaired test (30 % / 50 % of the
   channels dropped at test time) for pre-trained vs scratch eegfm.

Writes ``mental_arithmetic.json`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm import MAPEClassifier, MAPEEncoder, NeuralTokenizer  # noqa: E402
from eegfm.cli.pretrain import PretrainRun, pretrain  # noqa: E402
from eegfm.cli.runs import DataConfig, PretrainModelConfig, TokenizerModelConfig  # noqa: E402
from eegfm.cli.tokenizer import TokenizerRun, train_tokenizer  # noqa: E402
from eegfm.data import EEGCorpus  # noqa: E402
from eegfm.data.specs import sources_from_spec  # noqa: E402
from eegfm.finetune import FinetuneConfig, LabeledEEG, evaluate, finetune  # noqa: E402
from eegfm.finetune.metrics import classification_report  # noqa: E402
from eegfm.training import TrainConfig  # noqa: E402

CLASSES = ["rest", "arithmetic"]


def parse_subjects(text: str, present: list[str]) -> list[str]:
    """'02,05,07' or '02-20' (inclusive) -> zero-padded ids that exist in the dataset."""
    chosen = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-"))
            chosen += [f"{i:02d}" for i in range(lo, hi + 1)]
        elif part:
            chosen.append(f"{int(part):02d}")
    missing = sorted(set(chosen) - set(present))
    if missing:
        raise SystemExit(f"subjects {missing} are not in the dataset (present: {','.join(present)})")
    return chosen


def summarize(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "values": [float(v) for v in arr]}


def braindecode_baseline(name: str, train: LabeledEEG, test: LabeledEEG, seed: int, epochs: int, lr: float,
                         batch_size: int) -> dict:
    """EEGNet / ShallowFBCSPNet in braindecode's EEGClassifier on the same windows (µV)."""
    from braindecode import EEGClassifier
    from braindecode.models import EEGNet, ShallowFBCSPNet
    from skorch.callbacks import LRScheduler

    torch.manual_seed(seed)
    np.random.seed(seed)
    X_train = np.stack([np.asarray(s, dtype=np.float32) for s in train.signals])
    X_test = np.stack([np.asarray(s, dtype=np.float32) for s in test.signals])
    n_chans, n_times = X_train.shape[1:]
    cls = {"eegnet": EEGNet, "shallow": ShallowFBCSPNet}[name]
    kwargs = {"final_conv_length": "auto"} if name == "shallow" else {}
    module = cls(n_chans=n_chans, n_outputs=2, n_times=n_times, **kwargs)
    counts = np.bincount(train.labels, minlength=2)
    weight = torch.tensor(len(train.labels) / (2 * counts), dtype=torch.float32)
    clf = EEGClassifier(module, criterion=torch.nn.CrossEntropyLoss, criterion__weight=weight,
                        optimizer=torch.optim.AdamW, optimizer__lr=lr, optimizer__weight_decay=0.0,
                        batch_size=batch_size, max_epochs=epochs, train_split=None, verbose=0,
                        callbacks=[("lr_scheduler", LRScheduler("CosineAnnealingLR", T_max=max(epochs - 1, 1)))],
                        iterator_train__shuffle=True, device="cpu")
    clf.fit(X_train, train.labels)
    logits = clf.forward(X_test).detach().cpu().numpy()
    return classification_report(test.labels, logits)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mental_arithmetic")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/eegfm-mental-arithmetic"))
    parser.add_argument("--subjects", default="", help="eegmat subjects to use, e.g. 02-31 or 02,03,10 (default: all present)")
    parser.add_argument("--test-subjects", default="",
                        help="held-out subjects (default: the highest-numbered 20%% of --subjects)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--window-seconds", type=float, default=5.0)
    parser.add_argument("--tokenizer-steps", type=int, default=400)
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--pretrain-batch-size", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-codes", type=int, default=256)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--layer-decay", type=float, default=0.65)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--baseline-lr", type=float, default=1e-3)
    parser.add_argument("--baselines", default="eegnet,shallow", help="braindecode baselines ('' for none)")
    parser.add_argument("--ablations", default="mask_ratio,position_embedding,channel_drop",
                        help="comma list of mask_ratio, position_embedding, channel_drop, or 'none'")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a tokenizer / pre-trained encoders already in --work-dir (after an interrupted run)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MNE_DATASETS_EEGBCI_PATH", str(args.shared_data / "eegbci"))
    os.environ.setdefault("MOABB_DOWNLOAD_PROVIDER", "upstream")
    start = time.perf_counter()
    bids = args.shared_data / "eegmat_bids"
    present = sorted(p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir())
    subjects = parse_subjects(args.subjects, present) if args.subjects else present
    if args.test_subjects:
        test_subjects = parse_subjects(args.test_subjects, present)
        if not set(test_subjects) <= set(subjects):
            raise SystemExit(f"--test-subjects {test_subjects} must be among --subjects {subjects}")
    else:
        test_subjects = subjects[-max(1, round(0.2 * len(subjects))):]
    train_subjects = [s for s in subjects if s not in test_subjects]
    if not train_subjects:
        raise SystemExit("no training subjects left: hold out fewer --test-subjects")
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    ablations = set() if args.ablations in ("", "none") else set(args.ablations.split(","))
    unknown = ablations - {"mask_ratio", "position_embedding", "channel_drop"}
    if unknown:
        raise SystemExit(f"unknown --ablations {sorted(unknown)}")
    print(f"train subjects {','.join(train_subjects)}; test subjects {','.join(test_subjects)}; seeds {seeds}")

    # ---------------------------------------------------------------- labelled windows
    data_cfg = DataConfig(cache_dir=str(args.work_dir / "cache"))
    corpus = EEGCorpus(sources_from_spec(f"bids:{bids}:{','.join(subjects)}"), data_cfg.cache_dir,
                       data_cfg.preprocess_config(), progress=args.progress)
    labeled = LabeledEEG.from_corpus(corpus, args.window_seconds, "task", classes=CLASSES)
    train_set, test_set = labeled.split_by_group(test_subjects)
    counts = {name: {"train": int((s.labels == i).sum()) for s in [train_set]} | {"test": int((test_set.labels == i).sum())}
              for i, name in enumerate(CLASSES)}
    print(f"windows: train {len(train_set)}, test {len(test_set)}; per class {counts}")

    # ---------------------------------------------------------------- pre-training
    pre_sources = (f"moabb:PhysionetMI:1;files:{args.shared_data}/eeglab/eeglab_data.set;"
                   f"bids:{bids}:{','.join(train_subjects)}")
    pre_data = DataConfig(sources=pre_sources, cache_dir=data_cfg.cache_dir, window_seconds=4.0,
                          batch_size=args.pretrain_batch_size)

    def train_config(name, steps, lr):
        return TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=max(steps // 20, 1),
                           checkpoint_every=steps, run_dir=str(args.work_dir / name), progress=args.progress,
                           metrics="none")

    tok_dir = args.work_dir / "tokenizer"
    if args.reuse and (tok_dir / "model").is_dir() and (tok_dir / "summary.json").is_file():
        tokenizer = NeuralTokenizer.from_pretrained(tok_dir / "model")
        tok_summary = json.loads((tok_dir / "summary.json").read_text())
        print(f"reusing the tokenizer in {tok_dir}")
    else:
        tokenizer, tok_summary = train_tokenizer(TokenizerRun(
            model=TokenizerModelConfig(patch_size=100, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                       code_dim=16, num_codes=args.num_codes, decoder_depth=1, dead_code_steps=50),
            data=pre_data, train=train_config("tokenizer", args.tokenizer_steps, 2e-3)))
    variants = {"mape_mask50": dict(position_embedding="mape", ratio=0.5)}
    if "mask_ratio" in ablations:
        variants["mape_mask25"] = dict(position_embedding="mape", ratio=0.25)
        variants["mape_mask75"] = dict(position_embedding="mape", ratio=0.75)
    if "position_embedding" in ablations:
        variants["sincos1d_mask50"] = dict(position_embedding="sincos1d", ratio=0.5)
    encoders, pretrain_eval = {}, {}

    def pretrained_encoder(name: str) -> MAPEEncoder:
        """Pre-train variant ``name`` once (or reuse it from --work-dir with --reuse)."""
        if name in encoders:
            return encoders[name]
        v = variants[name]
        run_dir = args.work_dir / f"pretrain_{name}"
        if args.reuse and (run_dir / "encoder").is_dir() and (run_dir / "evaluation.json").is_file():
            encoders[name] = MAPEEncoder.from_pretrained(run_dir / "encoder")
            pretrain_eval[name] = json.loads((run_dir / "evaluation.json").read_text())["evaluation"]
            print(f"reusing the pre-trained encoder in {run_dir}")
            return encoders[name]
        model_cfg = PretrainModelConfig(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                        position_embedding=v["position_embedding"], random_ratio=v["ratio"],
                                        channel_ratio=v["ratio"], temporal_ratio=v["ratio"])
        pretrainer, summary = pretrain(PretrainRun(tokenizer="", model=model_cfg, data=pre_data,
                                                   train=train_config(f"pretrain_{name}", args.pretrain_steps, 1e-3),
                                                   eval_batches=10), tokenizer=tokenizer)
        encoders[name] = pretrainer.encoder
        pretrain_eval[name] = summary["evaluation"]
        return encoders[name]

    # ---------------------------------------------------------------- fine-tuning
    def run_eegfm(name: str, seed: int, encoder=None, position_embedding="mape") -> tuple[dict, MAPEClassifier]:
        torch.manual_seed(seed)
        if encoder is not None:
            model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
        else:
            model = MAPEClassifier(n_outputs=2, encoder=dict(patch_size=100, embed_dim=args.embed_dim, depth=args.depth,
                                                             num_heads=args.heads, position_embedding=position_embedding))
        cfg = FinetuneConfig(epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.finetune_lr,
                             layer_decay=args.layer_decay, seed=seed, run_dir=str(args.work_dir / f"ft_{name}_{seed}"),
                             progress=args.progress, metrics="none", checkpoint_every_epochs=args.finetune_epochs)
        t0 = time.perf_counter()
        finetune(model, train_set, cfg)
        result = evaluate(model, test_set)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"  {name} seed {seed}: balanced acc {result['balanced_accuracy']:.3f}, AUROC {result['auroc']:.3f}")
        return result, model

    runs: dict[str, list[dict]] = {}
    channel_drop: dict[str, dict[str, list[float]]] = {}

    def write_report(partial: bool) -> dict:
        table = {name: {"balanced_accuracy": summarize([r["balanced_accuracy"] for r in rs]),
                        "auroc": summarize([r["auroc"] for r in rs])} for name, rs in runs.items()}
        drop_table = {name: {k: summarize(v) for k, v in d.items()} for name, d in channel_drop.items()}
        args.out.mkdir(parents=True, exist_ok=True)
        report = {
            "benchmark": "mental_arithmetic",
            "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
            "partial": partial,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__,
            "minutes": round((time.perf_counter() - start) / 60, 1),
            "split": {"train_subjects": train_subjects, "test_subjects": test_subjects, "window_seconds": args.window_seconds,
                      "windows": {"train": len(train_set), "test": len(test_set)}, "per_class": counts},
            "pretraining": {"sources": pre_sources, "recordings": tok_summary["recordings"],
                            "windows_4s": tok_summary["windows"], "codebook": tok_summary["codebook"],
                            "masked_accuracy": pretrain_eval},
            "results": table,
            "channel_drop": drop_table,
            "runs": runs,
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
        (args.out / "mental_arithmetic.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
        plot(report, args.out)
        print(format_table(report))
        return report

    # phase 1, the main table: pre-trained vs scratch eegfm (+ channel-impaired test), baselines
    for seed in seeds:
        for name in ("eegfm_pretrained", "eegfm_scratch"):
            encoder = pretrained_encoder("mape_mask50") if name == "eegfm_pretrained" else None
            result, model = run_eegfm(name, seed, encoder)
            runs.setdefault(name, []).append(result)
            if "channel_drop" in ablations:
                for frac in (0.0, 0.3, 0.5):
                    impaired = test_set.drop_channels(frac, seed=seed) if frac else test_set
                    bal = evaluate(model, impaired)["balanced_accuracy"]
                    channel_drop.setdefault(name, {}).setdefault(f"{int(frac * 100)}%", []).append(bal)
        for name in [b for b in args.baselines.split(",") if b]:
            t0 = time.perf_counter()
            result = braindecode_baseline(name, train_set, test_set, seed, args.baseline_epochs, args.baseline_lr, 64)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"  braindecode {name} seed {seed}: balanced acc {result['balanced_accuracy']:.3f}, "
                  f"AUROC {result['auroc']:.3f}")
            runs.setdefault(f"braindecode_{name}", []).append(result)
        write_report(partial=True)
    # phase 2, the pre-training ablations: masking ratio, 1-D sin/cos position embedding
    for name in [n for n in variants if n != "mape_mask50"]:
        encoder = pretrained_encoder(name)
        for seed in seeds:
            result, _ = run_eegfm(f"eegfm_pretrained_{name}", seed, encoder)
            runs.setdefault(f"eegfm_pretrained_{name}", []).append(result)
        write_report(partial=True)
    if "position_embedding" in ablations:
        for seed in seeds:
            result, _ = run_eegfm("eegfm_scratch_sincos1d", seed, None, position_embedding="sincos1d")
            runs.setdefault("eegfm_scratch_sincos1d", []).append(result)
    return write_report(partial=False)


def format_table(report: dict) -> str:
    lines = [f"{'model':<36} {'balanced accuracy':>20} {'AUROC':>16}"]
    for name, r in report["results"].items():
        b, a = r["balanced_accuracy"], r["auroc"]
        lines.append(f"{name:<36} {b['mean']:>12.3f} ± {b['std']:.3f} {a['mean']:>8.3f} ± {a['std']:.3f}")
    for name, d in report["channel_drop"].items():
        parts = ", ".join(f"{k} dropped {v['mean']:.3f} ± {v['std']:.3f}" for k, v in d.items())
        lines.append(f"channel-impaired {name}: {parts}")
    return "\n".join(lines)


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["results"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.8), sharey=True)
    for ax, metric in zip(axes, ("balanced_accuracy", "auroc")):
        means = [report["results"][n][metric]["mean"] for n in names]
        stds = [report["results"][n][metric]["std"] for n in names]
        ax.barh(names, means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.axvline(0.5, color="grey", ls="--", lw=1, label="chance")
        ax.set_xlim(0.3, 1.0)
        ax.set_xlabel(metric.replace("_", " ") + " (mean ± std over seeds)")
        ax.invert_yaxis()
    axes[0].legend(loc="lower right")
    fig.suptitle(f"Mental Arithmetic, cross-subject (test subjects {','.join(report['split']['test_subjects'])})")
    fig.tight_layout()
    fig.savefig(out / "mental_arithmetic.png", dpi=110)
    plt.close(fig)
    if report["channel_drop"]:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for name, d in report["channel_drop"].items():
            xs = [int(k.rstrip("%")) for k in d]
            ax.errorbar(xs, [v["mean"] for v in d.values()], yerr=[v["std"] for v in d.values()], marker="o",
                        capsize=3, label=name)
        ax.axhline(0.5, color="grey", ls="--", lw=1)
        ax.set_xlabel("channels dropped at test time (%)")
        ax.set_ylabel("balanced accuracy")
        ax.set_title("Channel-impaired test (Table 3)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "channel_drop.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
