"""Short MI pre-training runs that ask whether the encoder learns context (recipe row 34).

    python benchmarks/results/downstream/probes/mi_short_pretrain_probe.py --sources "<row 28's>" --steps 300 \
        --run-dir /tmp/probe [--target spectrum_slow] [--attention-bias distance] [--pos-scale 4] [--slow-weight 0.9]

``spectrum_pretrain_probe.py``'s model and schedule (D=64, 2 layers, 4 heads, patch 0.5 s,
``patch_mean=True``, single pass, AdamW 1e-3, 10 % warm-up, cosine) with three knobs:
``--attention-bias`` (the library's ``EncoderConfig.attention_bias``), ``--pos-scale`` (the MAPE
position embedding multiplied by this factor) and ``--slow-weight`` (``target="spectrum_slow"``:
the share of the loss on the slow means, 0.5 in the library). Writes ``<run-dir>/probe.json``:
the masked R^2 per strategy over 10 batches (seeded masks), and for ``spectrum_slow`` each half's
R^2 (amplitudes, slow means) per strategy.
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

sys.path.insert(0, str(Path(__file__).parent))
import spectrum_pretrain_probe as spp  # noqa: E402
from mi_spectrum_slow_halves import halves_r2  # noqa: E402


def scale_positions(model, factor: float) -> None:
    """Multiply the encoder's position embedding by ``factor`` (a probe-only change)."""
    embedding = model.encoder.pos_embed
    forward = embedding.forward
    embedding.forward = lambda *args, **kwargs: forward(*args, **kwargs) * factor


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    spp.add_pretrain_arguments(p)
    p.add_argument("--target", choices=("spectrum", "spectrum_slow"), default="spectrum")
    p.add_argument("--attention-bias", choices=("none", "distance"), default="none")
    p.add_argument("--pos-scale", type=float, default=1.0)
    p.add_argument("--slow-weight", type=float, default=0.5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data, _, _, loader = spp.load_corpus(args)
    torch.manual_seed(args.seed)
    model = spp.make_model(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth,
                           num_heads=args.heads, sfreq=data.sfreq, preprocessing=data.preprocess_config().to_dict(),
                           target=args.target, patch_mean=True, attention_bias=args.attention_bias)
    if args.pos_scale != 1.0:
        scale_positions(model, args.pos_scale)
    if args.target == "spectrum_slow":
        spp.set_slow_weight(model, args.slow_weight)
    start = time.process_time()
    spp.fit(model, args, loader)
    model.eval()
    batches = list(itertools.islice(loader.batches(epoch=10_000), 10))
    out = {"command": "python " + " ".join(sys.argv), "cpu_s": round(time.process_time() - start),
           "masked_r2": spp.evaluate_all_strategies(model, batches, seed=0)["accuracy"]}
    if args.target == "spectrum_slow":
        out["halves_r2"] = {strategy: halves_r2(model, batches, [strategy]) for strategy in spp.STRATEGIES}
    (args.run_dir / "probe.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
