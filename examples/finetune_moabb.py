"""Fine-tune an eegfm encoder on a MOABB motor-imagery dataset with braindecode's EEGClassifier.

PhysioNet MI subject 1 (imagined left vs right fist), read offline from ../shared/data (or
EEGFM_SHARED_DATA). The encoder is a braindecode model (``EEGMirror``), so skorch trains it
and it drops into any scikit-learn / MOABB pipeline.

    python examples/finetune_moabb.py                                   # tiny encoder from scratch
    python examples/finetune_moabb.py --pretrained runs/pretrain/encoder --epochs 30
"""

import argparse
import os
from pathlib import Path

import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--pretrained", default=None, help="pre-trained encoder: a folder or Hub repo id (default: tiny, from scratch)")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--subject", type=int, default=1)
args = parser.parse_args()

data_root = Path(os.environ.get("EEGFM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

from braindecode import EEGClassifier  # noqa: E402
from moabb.paradigms import LeftRightImagery  # noqa: E402

from eegfm.finetune.braindecode import EEGMirror  # noqa: E402
from eegfm.finetune.moabb import offline_physionet_mi  # noqa: E402

# 1. Epochs at the encoder's contract: 200 Hz, 0.5-75 Hz band, EEG channels (MOABB gives volts).
paradigm = LeftRightImagery(fmin=0.5, fmax=75.0, resample=200.0)
dataset = offline_physionet_mi(data_root / "eegbci", subjects=[args.subject])  # local runs only, never downloads
epochs, labels, meta = paradigm.get_data(dataset, subjects=[args.subject], return_epochs=True)
X = epochs.get_data(copy=False).astype(np.float32) * 1e6  # µV
y = np.array([{"left_hand": 0, "right_hand": 1}[label] for label in labels])
print(f"{len(y)} trials, {X.shape[1]} channels x {X.shape[2]} samples at {epochs.info['sfreq']:g} Hz")

# 2. The model: positions come from the epochs' channel info.
signal = dict(n_outputs=2, chs_info=epochs.info["chs"], n_times=X.shape[2])
if args.pretrained:
    module = EEGMirror.from_encoder(args.pretrained, sfreq=epochs.info["sfreq"], **signal)
else:
    module = EEGMirror(sfreq=epochs.info["sfreq"], encoder=dict(embed_dim=64, depth=2, num_heads=4), **signal)

# 3. Train on the first 80 % of trials, test on the rest.
rng = np.random.default_rng(0)
order = rng.permutation(len(y))
train, test = order[: int(0.8 * len(y))], order[int(0.8 * len(y)):]
torch.manual_seed(0)
clf = EEGClassifier(module, optimizer=torch.optim.AdamW, lr=5e-4, batch_size=16, max_epochs=args.epochs,
                    train_split=None, verbose=0)
clf.fit(X[train], y[train])
print(f"train loss {clf.history[0]['train_loss']:.3f} -> {clf.history[-1]['train_loss']:.3f}")
print(f"test accuracy {np.mean(clf.predict(X[test]) == y[test]):.2f} on {len(test)} trials (chance 0.50; a tiny model from "
      "scratch on 36 trials stays near chance: pass --pretrained and more --epochs)")
