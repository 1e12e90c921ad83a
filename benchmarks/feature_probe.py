"""Frozen-feature probe: are a pre-trained encoder's features better than random ones?

    python benchmarks/feature_probe.py --task ma --encoders /tmp/eegfm-probe/ma/fold0/pretrain/encoder

For one task of ``benchmarks/downstream.py`` and one split (training subjects vs validation
subjects; test subjects are left out and never read), each encoder in ``--encoders`` (and a
randomly initialised encoder of the same architecture, three seeds) is run frozen on every
example, and a standardised L2 logistic regression (C chosen by group cross-validation on the
training subjects) is fit on several read-outs of its tokens:

- ``mean``: mean of all tokens (D values);
- ``cls``: the CLS token (D);
- ``channel_mean``: the mean over patches of each channel's tokens, concatenated (C*D);
- ``patch_embed``: the same per-channel mean of the patch embeddings before the Transformer.

Beside them, log band power per channel (delta..gamma, C*5) with the same classifier, the
reference a feature must beat. Prints and writes validation balanced accuracy per read-out.
Cheap (forward passes only): about a minute on 2 CPU cores for Mental Arithmetic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import downstream as ds  # noqa: E402
from eegfm import MAPEEncoder  # noqa: E402
from eegfm.finetune.metrics import classification_report  # noqa: E402

BANDS = ((1, 4), (4, 8), (8, 13), (13, 30), (30, 45))


@torch.no_grad()
def encoder_features(encoder: MAPEEncoder, data, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Read-outs of a frozen encoder, each (N, F)."""
    encoder.eval()
    out: dict[str, list] = {"mean": [], "cls": [], "channel_mean": [], "patch_embed": []}
    for start in range(0, len(data), batch_size):
        eeg, _ = data.batch(np.arange(start, min(start + batch_size, len(data))))
        res = encoder(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
        out["mean"].append(res.pooled())
        out["cls"].append(res.cls)
        out["channel_mean"].append(res.grid().mean(2).flatten(1))
        patches = encoder.patchify(eeg.x)  # (B, C, K, P)
        emb = encoder.patch_embed(patches)
        out["patch_embed"].append(emb.mean(2).flatten(1))
    return {k: torch.cat(v).float().numpy() for k, v in out.items()}


def band_power(data) -> np.ndarray:
    """log band power per channel and band, (N, C*5)."""
    from scipy.signal import welch
    X = ds.stack(data)
    freqs, psd = welch(X, fs=data.sfreq, nperseg=int(data.sfreq))
    feats = [np.log(psd[..., (freqs >= lo) & (freqs < hi)].mean(-1) + 1e-12) for lo, hi in BANDS]
    return np.stack(feats, -1).reshape(len(X), -1)


def probe(train_x, train_y, train_groups, valid_x, valid_y) -> float:
    """Validation balanced accuracy of a standardised L2 logistic regression; C by group CV on training subjects."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))

    folds = list(GroupKFold(n_splits=min(4, len(set(train_groups)))).split(train_x, train_y, train_groups))
    grid = np.logspace(-4, 1, 8)
    scores = [cross_val_score(model(c), train_x, train_y, cv=folds, scoring="balanced_accuracy").mean() for c in grid]
    clf = model(grid[int(np.argmax(scores))]).fit(train_x, train_y)
    logits = clf.decision_function(valid_x)
    return float(classification_report(valid_y, np.stack([-logits, logits], 1))["balanced_accuracy"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ds.add_split_arguments(p)
    p.add_argument("--encoders", default="", help="comma list of MAPEEncoder folders")
    p.add_argument("--random-seeds", default="0,1,2")
    args = p.parse_args(argv)
    fold, train, valid = ds.validation_split(args)
    print(f"[{args.task}] train {len(train)} ({len(fold['train'])} subjects), val {len(valid)} "
          f"(subjects {','.join(fold['val'])})")
    results: dict[str, dict[str, float]] = {}

    def run(name: str, feats_train: dict, feats_valid: dict) -> None:
        results[name] = {k: probe(feats_train[k], train.labels, train.groups.astype(str), feats_valid[k],
                                  valid.labels) for k in feats_train}
        print(f"  {name:<40} " + "  ".join(f"{k} {v:.3f}" for k, v in results[name].items()), flush=True)

    run("band_power", {"band_power": band_power(train)}, {"band_power": band_power(valid)})
    config = None
    for path in [e for e in args.encoders.split(",") if e]:
        encoder = MAPEEncoder.from_pretrained(path)
        config = encoder.get_config()
        run(f"pretrained {path}", encoder_features(encoder, train), encoder_features(encoder, valid))
    for seed in [int(s) for s in args.random_seeds.split(",") if s]:
        torch.manual_seed(seed)
        encoder = MAPEEncoder(**config) if config else MAPEEncoder(patch_size=100, embed_dim=64, depth=2,
                                                                   num_heads=4)
        run(f"random seed {seed}", encoder_features(encoder, train), encoder_features(encoder, valid))
    return ds.write_probe_report(args, {"task": args.task, "fold": fold, "validation_balanced_accuracy": results},
                                 "feature_probe.py", argv)

if __name__ == "__main__":
    main()
