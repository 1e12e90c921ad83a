"""Fine-tune an eegfm encoder on a BIDS dataset, cross-subject: rest vs mental arithmetic.

PhysioNet eegmat (BIDS) from ../shared/data (or EEGFM_SHARED_DATA). Each window's label is
its recording's BIDS ``task``; the last subject is held out.

    python examples/finetune_bids.py                                    # tiny encoder from scratch
    python examples/finetune_bids.py --pretrained runs/pretrain/encoder --subjects 02-31 --epochs 20

The same run from the command line: ``eegfm finetune --data.sources=bids:ROOT:02,03,04,05
--data.label=task --data.test_subjects=05 --pretrained=...``.
"""

import argparse
import os
import tempfile
from pathlib import Path

import torch

from eegfm import MAPEClassifier
from eegfm.data import EEGCorpus, from_bids
from eegfm.finetune import FinetuneConfig, LabeledEEG, evaluate, finetune

parser = argparse.ArgumentParser()
parser.add_argument("--pretrained", default=None, help="pre-trained encoder: a folder or Hub repo id (default: tiny, from scratch)")
parser.add_argument("--subjects", default="02-05", help="eegmat subjects, e.g. 02-31; the last one is the test subject")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--cache-dir", default=None)
args = parser.parse_args()

root = Path(os.environ.get("EEGFM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "eegmat_bids"
lo, _, hi = args.subjects.partition("-")
subjects = [f"{i:02d}" for i in range(int(lo), int(hi or lo) + 1)]

# 1. Preprocess once into a cache (200 Hz, 0.1-75 Hz, µV), then label 5-s windows by BIDS task.
corpus = EEGCorpus(from_bids(root, subjects=subjects), args.cache_dir or tempfile.mkdtemp(prefix="eegfm-"), progress=False)
data = LabeledEEG.from_corpus(corpus, 5.0, "task", classes=["rest", "arithmetic"])
train, test = data.split_by_group([subjects[-1]])
print(f"{len(train)} training windows (subjects {','.join(subjects[:-1])}), {len(test)} test windows (subject {subjects[-1]})")

# 2. A classifier on a pre-trained encoder (or a tiny one from scratch).
torch.manual_seed(0)
if args.pretrained:
    model = MAPEClassifier.from_pretrained(args.pretrained, n_outputs=2)
else:
    model = MAPEClassifier(n_outputs=2, encoder=dict(embed_dim=64, depth=2, num_heads=4, patch_size=100))

# 3. Full fine-tuning with layer-wise learning-rate decay; --mode=linear would train the head only.
config = FinetuneConfig(mode="full", epochs=args.epochs, batch_size=32, lr=1e-3, layer_decay=0.65,
                        run_dir=tempfile.mkdtemp(prefix="eegfm-finetune-"), progress=False, metrics="none")
finetune(model, train, config)
result = evaluate(model, test)
print(f"held-out subject {subjects[-1]}: balanced accuracy {result['balanced_accuracy']:.3f}, "
      f"AUROC {result['auroc']:.3f} (chance 0.5); model saved in {config.run_dir}/model")
