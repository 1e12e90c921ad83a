"""Extract fixed features from an eegfm encoder and fit a scikit-learn classifier on them.

Rest vs mental arithmetic on PhysioNet eegmat (BIDS, 19 channels) from ../shared/data (or
EEGFM_SHARED_DATA; ``python scripts/fetch_test_data.py`` fetches it, see DATA.md). Features are
the mean of the encoder's tokens over non-overlapping 5-s windows
(``MAPEClassifier.forward_features``; the CLS token with ``pooling="cls"``); the encoder is
frozen, nothing is fine-tuned. The score is cross-subject: GroupKFold by subject, so no subject
(and no window) is in both the training and the test folds of a split.

    python examples/extract_features.py                                   # tiny random encoder
    python examples/extract_features.py --pretrained runs/pretrain/encoder --subjects 02-31

Without ``--pretrained`` the encoder is random (no pre-training): its score is a floor to
compare a pre-trained encoder with, not a result.
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from eegfm import MAPEClassifier
from eegfm.data import EEGCorpus, from_bids
from eegfm.finetune import LabeledEEG

DATA = Path(os.environ.get("EEGFM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

parser = argparse.ArgumentParser()
parser.add_argument("--pretrained", default=None, help="pre-trained encoder: a folder or Hub repo id (default: tiny, random)")
parser.add_argument("--bids-root", type=Path, default=DATA / "eegmat_bids", help="PhysioNet eegmat as BIDS")
parser.add_argument("--subjects", default="02-09", help="eegmat subjects, e.g. 02-31 (at least --folds of them)")
parser.add_argument("--folds", type=int, default=4, help="GroupKFold splits over subjects")
parser.add_argument("--cache-dir", default=None, help="keep the preprocessed cache here (default: a temporary folder)")
args = parser.parse_args()
if not args.bids_root.is_dir():
    parser.error(f"no BIDS dataset at {args.bids_root}: get it with `python scripts/fetch_test_data.py` (DATA.md) "
                 "or pass --bids-root")
lo, _, hi = args.subjects.partition("-")
subjects = [f"{i:02d}" for i in range(int(lo), int(hi or lo) + 1)]

with tempfile.TemporaryDirectory(prefix="eegfm-cache-") as tmp:
    corpus = EEGCorpus(from_bids(args.bids_root, subjects=subjects), args.cache_dir or tmp, progress=False)
    # non-overlapping windows (the stride defaults to the window); groups = BIDS subject
    data = LabeledEEG.from_corpus(corpus, 5.0, "task", classes=["rest", "arithmetic"])

    torch.manual_seed(0)
    if args.pretrained:
        model = MAPEClassifier.from_pretrained(args.pretrained, n_outputs=1).eval()
    else:
        model = MAPEClassifier(n_outputs=1, encoder=dict(embed_dim=64, depth=2, num_heads=4, patch_size=100)).eval()
    with torch.no_grad():
        features = torch.cat([model.forward_features(eeg.x, eeg.positions, channel_mask=eeg.channel_mask,
                                                     n_times=eeg.n_times)
                              for eeg, _ in data.batches(32)]).numpy()

print(f"features: {features.shape} from {len(data)} windows of {data[0]['x'].shape[0]} channels, "
      f"{len(set(data.groups))} subjects ({np.bincount(data.labels).tolist()} rest/arithmetic windows)")
classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
scores = cross_val_score(classifier, features, data.labels, groups=data.groups, cv=GroupKFold(args.folds),
                         scoring="balanced_accuracy")
encoder = args.pretrained or "a random, untrained encoder (a floor, not a result)"
print(f"logistic regression on frozen features of {encoder}: {args.folds}-fold cross-subject (GroupKFold) "
      f"balanced accuracy {scores.mean():.2f} ± {scores.std():.2f} (chance 0.50); per fold "
      f"{', '.join(f'{s:.2f}' for s in scores)}")
