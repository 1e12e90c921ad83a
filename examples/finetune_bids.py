"""Fine-tune an eegfm encoder on a BIDS dataset, cross-subject: rest vs mental arithmetic.

PhysioNet eegmat (BIDS) from ../shared/data (or EEGFM_SHARED_DATA; ``python
scripts/fetch_test_data.py`` fetches it, see DATA.md). Each window's label is its recording's
BIDS ``task``. Leave-subjects-out: the subjects are split into ``--folds`` groups (GroupKFold);
each fold fine-tunes a fresh model on the other subjects and tests on its own, so no subject
(and no window) is ever in both training and test.

    python examples/finetune_bids.py                                    # tiny encoder from scratch
    python examples/finetune_bids.py --pretrained runs/pretrain/encoder --subjects 02-31 --folds 5 --epochs 20

The default (a tiny encoder trained from scratch for 3 epochs on 2 subjects per fold) only shows
the steps: expect chance, and eegfm's warning when a fold's classifier predicts one class.

The same (one split) from the command line: ``eegfm finetune --data.sources=bids:ROOT:02,03,04,05
--data.label=task --data.test_subjects=05 --pretrained=...``.
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from eegfm import MAPEClassifier
from eegfm.data import EEGCorpus, from_bids
from eegfm.finetune import FinetuneConfig, LabeledEEG, evaluate, finetune

DATA = Path(os.environ.get("EEGFM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

parser = argparse.ArgumentParser()
parser.add_argument("--pretrained", default=None, help="pre-trained encoder: a folder or Hub repo id (default: tiny, from scratch)")
parser.add_argument("--bids-root", type=Path, default=DATA / "eegmat_bids", help="PhysioNet eegmat as BIDS")
parser.add_argument("--subjects", default="02-05", help="eegmat subjects, e.g. 02-31 (at least --folds of them)")
parser.add_argument("--folds", type=int, default=2, help="GroupKFold splits over subjects")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--cache-dir", default=None, help="keep the preprocessed cache here (default: a temporary folder)")
parser.add_argument("--run-dir", default=None, help="keep each fold's run (checkpoints, model/) in RUN_DIR/fold-K "
                    "(default: a temporary folder, removed at the end)")
args = parser.parse_args()
if not args.bids_root.is_dir():
    parser.error(f"no BIDS dataset at {args.bids_root}: get it with `python scripts/fetch_test_data.py` (DATA.md) "
                 "or pass --bids-root")
lo, _, hi = args.subjects.partition("-")
subjects = [f"{i:02d}" for i in range(int(lo), int(hi or lo) + 1)]

with tempfile.TemporaryDirectory(prefix="eegfm-") as tmp:
    # 1. Preprocess once into a cache (200 Hz, 0.1-75 Hz, µV), then label non-overlapping 5-s
    #    windows by BIDS task; each window's group is its subject.
    corpus = EEGCorpus(from_bids(args.bids_root, subjects=subjects), args.cache_dir or Path(tmp) / "cache",
                       progress=False)
    data = LabeledEEG.from_corpus(corpus, 5.0, "task", classes=["rest", "arithmetic"])
    scores = []
    for fold, (train_idx, test_idx) in enumerate(GroupKFold(args.folds).split(data.labels, groups=data.groups)):
        train, test = data.subset(train_idx), data.subset(test_idx)
        held_out = sorted(set(test.groups.tolist()))
        # 2. A fresh classifier on a pre-trained encoder (or a tiny one from scratch) per fold.
        torch.manual_seed(0)
        if args.pretrained:
            model = MAPEClassifier.from_pretrained(args.pretrained, n_outputs=2)
        else:
            model = MAPEClassifier(n_outputs=2, encoder=dict(embed_dim=64, depth=2, num_heads=4, patch_size=100))
        # 3. Full fine-tuning with layer-wise learning-rate decay; mode="linear" trains the head only.
        run_dir = Path(args.run_dir or Path(tmp) / "runs") / f"fold-{fold}"
        config = FinetuneConfig(mode="full", epochs=args.epochs, batch_size=32, lr=1e-3, layer_decay=0.65,
                                run_dir=str(run_dir), progress=False, metrics="none")
        finetune(model, train, config)
        result = evaluate(model, test)
        scores.append(result["balanced_accuracy"])
        print(f"fold {fold}: {len(train)} training windows (subjects {','.join(sorted(set(train.groups.tolist())))}), "
              f"{len(test)} test windows (subjects {','.join(held_out)}): balanced accuracy "
              f"{result['balanced_accuracy']:.3f}, AUROC {result['auroc']:.3f}")

print(f"{args.folds}-fold cross-subject balanced accuracy {np.mean(scores):.3f} ± {np.std(scores):.3f} "
      f"(chance 0.5)" + (f"; models in {args.run_dir}/fold-*/model" if args.run_dir else ""))
