"""Which signal separates imagined left from right fist across subjects (PhysioNet eegmmidb)? (recipe row 30)

A standardised logistic regression (C by inner cross-validation) on hand-made features of the 4-s
trials, scored by leave-one-subject-out over the 11 non-test subjects (S001-S011; the test subjects
S012 and S015 are never read), trials prepared exactly as ``benchmarks/downstream.py`` does:

- slow signal: each channel's mean over 0.5-s bins (8 per trial: what eegfm's patch embedder
  erases with its per-patch z-score), all channels or one scalp region;
- band power: log variance per channel in 8-13, 13-30 and 8-30 Hz (what CSP / FBCSP use).

    python benchmarks/results/downstream/probes/mi_slow_signal_loso.py   # -> mi_slow_signal_loso.json
"""
import json
import sys
from pathlib import Path

import mne
import numpy as np
from mne.datasets import eegbci
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "benchmarks"))
import downstream as ds  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
subjects = [ds.subject_id("mi", n) for n in range(1, 12)]
data = ds.load_mi(DATA, subjects, ds.DataConfig(cache_dir="/tmp/eegfm-probe/cache"), 4.0)
X = np.stack([np.asarray(s) for s in data.signals]).astype(np.float64)  # (N, 64, 800) µV at 200 Hz
y, groups = np.asarray(data.labels), np.asarray(data.groups)
raw = mne.io.read_raw_edf(ds.eegbci_file(DATA, "S001", 4), preload=False, verbose="error")
eegbci.standardize(raw)
names = raw.ch_names
regions = {
    "frontal and temporal edge": [i for i, n in enumerate(names)
                                  if n.startswith(("Fp", "AF", "F7", "F8", "FT7", "FT8", "T7", "T8"))],
    "central (FC, C, CP)": [i for i, n in enumerate(names) if n.startswith(("FC", "C", "CP"))],
    "parietal and occipital": [i for i, n in enumerate(names) if n.startswith(("P", "O", "I"))],
}


def loso(features: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[1e-4, 1e-3, 1e-2, 1e-1, 1], max_iter=2000))
    pred = cross_val_predict(clf, features.reshape(len(features), -1), y, groups=groups, cv=LeaveOneGroupOut())
    return round(float(balanced_accuracy_score(y, pred)), 3)


bins = X.reshape(len(X), X.shape[1], 8, -1).mean(-1)  # (N, 64, 8)
results = {"slow: 0.5-s bin means, all 64 channels": loso(bins),
           "slow: 0.5-s bin means minus the first bin": loso(bins - bins[:, :, :1]),
           "slow: whole-trial mean per channel": loso(X.mean(-1))}
for region, idx in regions.items():
    results[f"slow: 0.5-s bin means, {region} ({len(idx)} channels)"] = loso(bins[:, idx])
for lo, hi in ((8, 13), (13, 30), (8, 30)):
    band = mne.filter.filter_data(X, data.sfreq, lo, hi, verbose=False)
    results[f"band power: log variance {lo}-{hi} Hz per channel"] = loso(np.log(band.var(-1)))
for k, v in results.items():
    print(f"{k:60s} {v:.3f}")
out = {"subjects": subjects, "trials": int(len(y)), "classes": data.classes, "regions": {
    k: [names[i] for i in v] for k, v in regions.items()}, "loso_balanced_accuracy": results}
(Path(__file__).with_suffix(".json")).write_text(json.dumps(out, indent=1))
