"""MI diagnostic: can eegfm from scratch fit the training subjects? Train + validation balanced acc per epoch."""
import sys, json, time, argparse
from pathlib import Path
import numpy as np, torch
ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import downstream as ds
from eegfm import MAPEClassifier
from eegfm.finetune import FinetuneConfig, finetune, evaluate
from eegfm.finetune.data import LabeledEEG

p = argparse.ArgumentParser()
p.add_argument("--variant", required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--epochs", type=int, default=12)
a = p.parse_args()
torch.set_num_threads(1)
args = argparse.Namespace(task="mi", data_root=ROOT.parent / "shared" / "data", test_subjects="12,15", fold_seed=0,
                          val_fraction=0.2, cache_dir="/tmp/eegfm-probe/cache")
fold, train, valid = ds.validation_split(args)
import mne
def bp(d, lo, hi):
    sig = [mne.filter.filter_data(np.asarray(s, np.float64), d.sfreq, lo, hi, verbose=False).astype(np.float32) for s in d.signals]
    return LabeledEEG(sig, d.positions, d.labels, sfreq=d.sfreq, groups=d.groups, classes=d.classes)
def zs(d):
    sig = [((np.asarray(s) - np.mean(s, 1, keepdims=True)) / (np.std(s, 1, keepdims=True) + 1e-6) * 20).astype(np.float32) for s in d.signals]
    return LabeledEEG(sig, d.positions, d.labels, sfreq=d.sfreq, groups=d.groups, classes=d.classes)
V = dict(x.split("=") for x in a.variant.split(",") if "=" in x)
if "band" in V:
    lo, hi = map(float, V.pop("band").split("-")); train, valid = bp(train, lo, hi), bp(valid, lo, hi)
if V.pop("zscore", "0") == "1":
    train, valid = zs(train), zs(valid)
arch = dict(patch_size=int(V.pop("patch", 100)), embed_dim=int(V.pop("dim", 64)), depth=int(V.pop("depth", 2)),
            num_heads=int(V.pop("heads", 4)), patch_mean=V.pop("patch_mean", "0") == "1")
pooling = V.pop("pooling", "mean")
moments = pooling == "moments"
if moments:
    pooling = "mean"
init = V.pop("init", "")
lr = float(V.pop("lr", 1e-3)); bs = int(V.pop("bs", 32))
assert not V, V
torch.manual_seed(a.seed)
model = MAPEClassifier(n_outputs=2, encoder=arch, pooling=pooling)
if init:
    from eegfm import MAPEEncoder
    enc = MAPEEncoder.from_pretrained(init)
    model = MAPEClassifier.from_encoder(enc, 2, pooling=pooling)
if moments:
    import types
    model.head = torch.nn.Linear(3 * arch["embed_dim"], 2)
    def ff(self, x, positions, *, channel_mask=None, n_times=None, sfreq=None):
        o = self.encoder(x, positions, channel_mask=channel_mask, n_times=n_times, sfreq=sfreq)
        g = o.grid().mean(2)
        pos = positions if positions.dim() == 3 else positions.expand(x.shape[0], -1, -1)
        pos = (pos.to(g.dtype) - 50) / 50
        m = channel_mask.to(g.dtype)[..., None] if channel_mask is not None else torch.ones_like(g[..., :1])
        n = m.sum(1)
        return torch.cat([(g * m).sum(1) / n, (g * pos[..., :1] * m).sum(1) / n, (g * pos[..., 1:] * m).sum(1) / n], -1)
    model.forward_features = types.MethodType(ff, model)
hist = []
for ep in range(a.epochs):
    t0 = time.process_time()
    cfg = FinetuneConfig(epochs=1, lr=lr, layer_decay=1.0, batch_size=bs, seed=a.seed + 100 * ep, warmup_epochs=0.0,
                         run_dir=f"/tmp/eegfm-mi-diag/run-{a.variant.replace('/', '_')}-{a.seed}-{ep}", metrics="none", progress=False,
                         checkpoint_every_epochs=1, min_lr=lr)
    finetune(model, train, cfg)
    tr = evaluate(model, train)["balanced_accuracy"]; va = evaluate(model, valid)["balanced_accuracy"]
    hist.append((ep + 1, round(tr, 3), round(va, 3)))
    print(a.variant, a.seed, ep + 1, f"train {tr:.3f} val {va:.3f} {time.process_time()-t0:.0f}s", flush=True)
Path("/tmp/eegfm-mi-diag").mkdir(exist_ok=True)
json.dump({"variant": a.variant, "seed": a.seed, "hist": hist}, open(f"/tmp/eegfm-mi-diag/{a.variant.replace('/', '_')}-{a.seed}.json", "w"))
