"""MI: frozen-feature pooling variants (mean, CLS, spatial moments), nested leave-one-subject-out over the 11 non-test subjects.

Run: python mi_frozen_pooling_loso.py --task mi --test-subjects 12,15 --encoders "small=runs/eegfm-small/encoder,spec2000=/tmp/eegfm-spectrum2000/encoder" --out mi_frozen_pooling_loso.json
"""
import sys, time, json, argparse
from pathlib import Path
ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import numpy as np, torch
import downstream as ds
from eegfm import MAPEEncoder
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
from sklearn.metrics import balanced_accuracy_score

p = argparse.ArgumentParser(); ds.add_split_arguments(p)
p.add_argument("--encoders", default="")
args = p.parse_args()
torch.set_num_threads(1)
fold, train, valid = ds.validation_split(args)
X_parts = [train, valid]

@torch.no_grad()
def feats(enc, data):
    enc.eval(); outs = {"mean": [], "moments": [], "cls": []}
    for eeg, _ in data.batches(64):
        o = enc(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
        g = o.grid().mean(2)  # B C D
        pos = (eeg.positions.to(g.dtype) - 50) / 50  # B C 2 in [-1, 1], x left->right, y front->back
        mask = eeg.channel_mask.to(g.dtype)[..., None] if eeg.channel_mask is not None else torch.ones_like(g[..., :1])
        n = mask.sum(1)
        m0 = (g * mask).sum(1) / n
        mx = (g * pos[..., :1] * mask).sum(1) / n
        my = (g * pos[..., 1:] * mask).sum(1) / n
        outs["mean"].append(o.pooled()); outs["cls"].append(o.cls)
        outs["moments"].append(torch.cat([m0, mx, my], -1))
    return {k: torch.cat(v).double().numpy() for k, v in outs.items()}

def nested(X, y, g):
    preds = np.zeros_like(y)
    for tr, te in LeaveOneGroupOut().split(X, y, g):
        best = None
        for C in [1e-3, 1e-2, 1e-1, 1]:
            sc = []
            for a, b in GroupKFold(5).split(X[tr], y[tr], g[tr]):
                m = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
                m.fit(X[tr][a], y[tr][a]); sc.append(balanced_accuracy_score(y[tr][b], m.predict(X[tr][b])))
            if best is None or np.mean(sc) > best[0]: best = (np.mean(sc), C)
        m = make_pipeline(StandardScaler(), LogisticRegression(C=best[1], class_weight="balanced", max_iter=2000)).fit(X[tr], y[tr])
        preds[te] = m.predict(X[te])
    per_subject = [balanced_accuracy_score(y[g == s], preds[g == s]) for s in np.unique(g)]
    return round(balanced_accuracy_score(y, preds), 4), round(float(np.std(per_subject)), 3)

y = np.concatenate([d.labels for d in X_parts]); g = np.concatenate([d.groups for d in X_parts])
print(len(y), np.unique(g), flush=True)
res = {}
encs = {}
for spec in args.encoders.split(","):
    name, path = spec.split("=")
    encs[name] = MAPEEncoder.from_pretrained(path)
cfg = next(iter(encs.values())).get_config()
for s in range(2):
    torch.manual_seed(s)
    encs[f"random{s}"] = MAPEEncoder(**{k: cfg[k] for k in ("patch_size", "embed_dim", "depth", "num_heads")})
for name, enc in encs.items():
    t0 = time.time(); F = [feats(enc, d) for d in X_parts]
    for k in F[0]:
        X = np.concatenate([f[k] for f in F])
        res[f"{name}/{k}"] = nested(X, y, g)
        print(name, k, res[f"{name}/{k}"], round(time.time() - t0), flush=True)
json.dump(res, open(args.out or "/tmp/mi_exp/moments.json", "w"), indent=1)
