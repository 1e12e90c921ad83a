"""What context does masked pre-training use? (recipe row 34)

    python benchmarks/results/downstream/probes/mi_context_probe.py predictors
    python benchmarks/results/downstream/probes/mi_context_probe.py attention /tmp/mi-pre-slow-s0 [...]

``predictors``: the masked-token R^2 that simple rules reach on the pre-training targets of
row 28's MI corpus (the 9 training subjects' 41 runs; 8 batches of 32 4-s windows, patch 0.5 s),
for the amplitude target (``amplitude_target``) and the slow target (``slow_target``, 4 bins):
the dataset's mean target vector (no context at all), the same channel's other patches, the two
neighbouring patches of the same channel, the 4 nearest channels at the same moment, and every
other channel at the same moment.

``attention <run>...``: for each pre-training run (a folder with ``model/``, a
``MaskedPretrainer``), the share of a masked token's attention (random mask, ratio 0.5) that goes
to the CLS token, to the other masked tokens, and to visible tokens of the same channel, of the
same moment, and of its 4 nearest channels at the same moment, per layer, over 2 batches of 16
windows; beside the shares uniform attention over the visible tokens would give.
"""

import itertools
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from eegfm.cli.runs import DataConfig, build_loader  # noqa: E402
from eegfm.models.pretrainer import MaskedPretrainer, slow_target  # noqa: E402
from eegfm.models.tokenizer import amplitude_target  # noqa: E402
from eegfm.modules.masking import random_mask  # noqa: E402

SOURCES = ";".join(["eegbci:{root}:1:" + ",".join(map(str, range(1, 15))), "eegbci:{root}:4:4,6,8,10,12,14"]
                   + [f"eegbci:{{root}}:{s}:4,8,12" for s in (2, 3, 5, 6, 7, 10, 11)])
PATCH = 100


def loader(batch_size: int, root: str = str(ROOT.parent / "shared" / "data" / "eegbci"), cache="/tmp/eegfm-long/cache"):
    data = DataConfig(sources=SOURCES.format(root=root), cache_dir=cache, window_seconds=4.0,
                      batch_size=batch_size, num_threads=1)
    return build_loader(data, PATCH, 0, progress=False)[2]


def nearest(positions: torch.Tensor, k: int = 4) -> torch.Tensor:
    """(B, C, k): each channel's ``k`` nearest other channels."""
    n = positions.shape[1]
    distance = torch.cdist(positions, positions) + torch.eye(n)[None] * 1e9
    return distance.topk(k, largest=False).indices


def predictors() -> dict:
    sums: dict[str, list[float]] = {}
    collected = {"amplitudes": [], "slow": []}

    def score(name, target, pred):
        s = sums.setdefault(name, [0.0, 0.0])
        s[0] += float(target.pow(2).sum())
        s[1] += float((target - pred).pow(2).sum())

    for batch in itertools.islice(loader(32).batches(epoch=10_000), 8):
        inputs = batch.encoder_inputs()
        x, positions = inputs["x"], inputs["positions"]
        b, c, t = x.shape
        k = t // PATCH
        patches = x[..., : k * PATCH].reshape(b, c, k, PATCH)
        valid = torch.ones(b, c, k, dtype=torch.bool)
        near = nearest(positions)
        for name, target in (("amplitudes", amplitude_target(patches, valid)), ("slow", slow_target(patches, valid))):
            collected[name].append(target.flatten(0, 2))
            s = target.shape[-1]
            left = torch.cat([target[:, :, 1:2], target[:, :, :-1]], 2)
            right = torch.cat([target[:, :, 1:], target[:, :, -2:-1]], 2)
            score(f"{name}: two neighbouring patches, same channel", target, (left + right) / 2)
            score(f"{name}: the same channel's other patches", target, (target.sum(2, keepdim=True) - target) / (k - 1))
            neighbours = torch.gather(target[:, None].expand(b, c, c, k, s), 2,
                                      near[..., None, None].expand(b, c, near.shape[-1], k, s)).mean(2)
            score(f"{name}: 4 nearest channels, same moment", target, neighbours)
            score(f"{name}: every other channel, same moment", target, (target.sum(1, keepdim=True) - target) / (c - 1))
    out = {name: round(1 - error / total, 3) for name, (total, error) in sums.items()}
    for name, targets in collected.items():
        targets = torch.cat(targets)
        out[f"{name}: the dataset's mean target (no context)"] = round(
            1 - float((targets - targets.mean(0)).pow(2).sum() / targets.pow(2).sum()), 3)
    return dict(sorted(out.items()))


def attention(run: Path) -> dict:
    pre = MaskedPretrainer.from_pretrained(run / "model").eval()
    enc = pre.encoder
    caught = []

    def hook(module, args, output):
        x, mask = args[0], args[1]
        b, n, d = x.shape
        h = module.num_heads
        q, k, _ = module.qkv(x).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        scores = q @ k.transpose(-1, -2) / (d // h) ** 0.5
        caught.append(torch.softmax(scores if mask is None or mask.dtype == torch.bool else scores + mask, -1))

    handles = [blk.attn.register_forward_hook(hook) for blk in enc.blocks]
    generator = torch.Generator().manual_seed(0)
    shares: dict[str, dict[str, list[float]]] = {}
    with torch.no_grad():
        for batch in itertools.islice(loader(16).batches(epoch=10_000), 2):
            raw = batch.encoder_inputs()
            inputs = enc.prepare_inputs(raw["x"], raw["positions"])
            b, c, k, _ = inputs.embeddings.shape
            mask = random_mask(inputs.token_mask, 0.5, generator)
            hidden = torch.where(mask[..., None], pre.mask_embedding, inputs.embeddings)
            caught.clear()
            enc.encode(hidden, inputs.positions, inputs.token_mask, padded=False)
            channel = torch.arange(c).repeat_interleave(k)
            moment = torch.arange(k).repeat(c)
            same_channel = (channel[:, None] == channel[None]) & (moment[:, None] != moment[None])
            same_moment = (moment[:, None] == moment[None]) & (channel[:, None] != channel[None])
            near = torch.zeros(b, c, c, dtype=torch.bool).scatter_(2, nearest(inputs.positions), True)
            near = near[:, channel][:, :, channel] & (moment[:, None] == moment[None])[None]  # (B, N, N)
            masked = mask.flatten(1)  # (B, N): the queries
            visible = ~masked
            groups = {"same channel": same_channel[None], "same moment": same_moment[None], "4 nearest": near}
            uniform = {name: float((sel & visible[:, None, :]).sum(-1).float().mul(masked).sum()
                                   / (masked.sum() * visible.sum(-1).float().mean()))
                       for name, sel in groups.items()}
            for layer, weights in enumerate(caught):
                w = weights[:, :, 1:, :]  # queries: the tokens
                to_tokens = w[..., 1:]
                row = shares.setdefault(f"layer {layer}", {})

                def mean_over_masked(per_query):  # (B, H, N) -> mean over heads and masked queries
                    return float((per_query * masked[:, None]).sum() / (masked.sum() * w.shape[1]))

                row.setdefault("CLS", []).append(mean_over_masked(w[..., 0]))
                on_masked = (to_tokens * masked[:, None, None]).sum(-1)
                row.setdefault("masked tokens", []).append(mean_over_masked(on_masked))
                for name, sel in groups.items():
                    keys = (sel & visible[:, None, :])[:, None]  # (B, 1, N, N)
                    row.setdefault(name, []).append(mean_over_masked((to_tokens * keys).sum(-1)))
                    row.setdefault(f"{name} (uniform over visible)", []).append(uniform[name])
    for handle in handles:
        handle.remove()
    return {layer: {name: round(sum(v) / len(v), 4) for name, v in row.items()} for layer, row in shares.items()}


def main(argv) -> dict:
    torch.set_num_threads(1)
    if argv[:1] == ["predictors"]:
        out = predictors()
    elif argv[:1] == ["attention"] and len(argv) > 1:
        out = {run: attention(Path(run)) for run in argv[1:]}
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
