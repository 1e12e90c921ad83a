"""Extract fixed features from an eegfm encoder and fit a scikit-learn classifier on them.

Works on any montage: here the bundled real sample (rest vs mental arithmetic, 19 channels).
Features are the mean of the encoder's tokens (``MAPEClassifier.forward_features``; the CLS
token with ``pooling="cls"``); the encoder is frozen, nothing is fine-tuned.

    python examples/extract_features.py [--pretrained runs/pretrain/encoder]
"""

import argparse
import tempfile

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from eegfm import MAPEClassifier
from eegfm.data import EEGCorpus
from eegfm.data.specs import sources_from_spec
from eegfm.finetune import LabeledEEG

parser = argparse.ArgumentParser()
parser.add_argument("--pretrained", default=None, help="pre-trained encoder: a folder or Hub repo id (default: tiny, random)")
args = parser.parse_args()

corpus = EEGCorpus(sources_from_spec("sample"), tempfile.mkdtemp(prefix="eegfm-"), progress=False)
data = LabeledEEG.from_corpus(corpus, 2.0, "task", stride_seconds=1.0)
keep = np.isin(np.array(data.classes)[data.labels], ["rest", "arithmetic"])
data = data.subset(np.flatnonzero(keep))

torch.manual_seed(0)
if args.pretrained:
    model = MAPEClassifier.from_pretrained(args.pretrained, n_outputs=1).eval()
else:
    model = MAPEClassifier(n_outputs=1, encoder=dict(embed_dim=64, depth=2, num_heads=4, patch_size=100)).eval()

with torch.no_grad():
    features = torch.cat([model.forward_features(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
                          for eeg, _ in data.batches(32)]).numpy()
print(f"features: {features.shape} from {len(data)} windows of {data[0]['x'].shape[0]} channels")
scores = cross_val_score(LogisticRegression(max_iter=2000), features, data.labels, cv=4)
print(f"logistic regression on frozen features, 4-fold accuracy {scores.mean():.2f} ± {scores.std():.2f}")
