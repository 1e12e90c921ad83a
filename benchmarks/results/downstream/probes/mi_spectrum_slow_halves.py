"""Masked R^2 of each half of a ``target="spectrum_slow"`` pre-training run (recipe row 33).

    python benchmarks/results/downstream/probes/mi_spectrum_slow_halves.py /tmp/mi-pre-slow-s0

The run's ``evaluation.json`` gives the R^2 of the weighted target (amplitudes and slow means,
half each); this splits it: the masked tokens' R^2 on the Fourier amplitudes alone and on the
slow, signed sub-window means alone, over 10 batches of the run's own corpus (seeded masks,
every strategy), the model in eval mode. A second argument scores it on another corpus (an eegfm
source spec) instead of its own (recipe row 37: encoders pre-trained on other data, scored on
the MI corpus)::

    python benchmarks/results/downstream/probes/mi_spectrum_slow_halves.py /tmp/mi-pre-xma-s0 "$(cat mi_spec.txt)"
"""

import itertools
import dataclasses
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from eegfm.cli.runs import DataConfig, build_loader  # noqa: E402
from eegfm.models.pretrainer import MaskedPretrainer  # noqa: E402


def halves_r2(pre: MaskedPretrainer, batches, strategies=None) -> dict:
    """Masked R^2 of the amplitudes and of the slow means separately, over ``batches`` (seeded masks).

    ``strategies``: the masks to draw (default: the model's own); the model is left as it was.
    """
    n_bins = pre.encoder.patch_size // 2 + 1
    sums = {"amplitudes": [0.0, 0.0], "slow": [0.0, 0.0]}  # sum of target^2, sum of squared error
    score, trained = pre._token_loss_and_score, pre.strategies

    def split(pred, target, chosen):
        counts = chosen[..., None].float()
        for name, part in (("amplitudes", slice(0, n_bins)), ("slow", slice(n_bins, None))):
            sums[name][0] += float((target[..., part].pow(2) * counts).sum())
            sums[name][1] += float(((pred[..., part] - target[..., part]).pow(2) * counts).sum())
        return score(pred, target, chosen)

    pre._token_loss_and_score = split
    pre.strategies = list(strategies or trained)
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for batch in batches:
                pre(**batch.encoder_inputs(), generator=generator)
    finally:
        del pre._token_loss_and_score  # the class's method again
        pre.strategies = trained
    return {name: round(1 - error / total, 3) for name, (total, error) in sums.items()}


def main(run: Path, sources: str | None = None) -> dict:
    torch.set_num_threads(1)
    pre = MaskedPretrainer.from_pretrained(run / "model").eval()
    saved = json.loads((run / "run_config.json").read_text())["data"]
    data = DataConfig(**{k: v for k, v in saved.items() if k in DataConfig.__dataclass_fields__})
    if sources:
        data = dataclasses.replace(data, sources=sources)
    _, _, loader = build_loader(data, pre.encoder.patch_size, 0, progress=False)
    r2 = halves_r2(pre, itertools.islice(loader.batches(epoch=10_000), 10))
    print(run, r2)
    return r2


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
