"""``eegfm demo``: the toolkit on the real EEG sample shipped with the package (offline, CPU).

1. loads three real recordings with different caps (64 channels at 160 Hz, and 19 channels
   at 500 Hz with legacy 10-20 names);
2. gives every channel its proportion coordinates (``eegfm.proportion_coordinates``);
3. resamples to the model's 200 Hz, band-passes, converts to µV, and cuts windows;
4. encodes one mixed-montage, mixed-length batch with a ``MAPEEncoder`` and checks that a
   window gives the same output alone and padded inside the batch;
5. saves the model in Hugging Face Hub format, reloads it, and checks identical outputs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_OUT = Path("demo_output")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("demo", help="run the toolkit on the bundled real EEG sample",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the saved model goes (default: %(default)s)")
    parser.add_argument("--model", default="mape_encoder_tiny", help="registered model name (default: %(default)s)")
    parser.add_argument("--window-seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _prepare(raw, sfreq: float):
    """EEG channels only, 0.5-45 Hz band-pass, resampled to ``sfreq``; returns (µV array (C, T), names)."""
    raw = raw.copy().pick("eeg").load_data(verbose=False)
    raw.filter(0.5, 45.0, verbose=False)
    raw.resample(sfreq, verbose=False)
    return raw.get_data() * 1e6, raw.ch_names


def _windows(data: np.ndarray, n: int) -> list[np.ndarray]:
    return [data[:, i : i + n] for i in range(0, data.shape[1] - n + 1, n)]


def run(args) -> int:
    from eegfm import create_model, pad_recordings, proportion_coordinates
    from eegfm.datasets import list_sample_recordings, load_sample
    from eegfm.models.encoder import MAPEEncoder

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    model = create_model(args.model).eval()
    print(f"[1/5] model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"patch {model.patch_size} samples at {model.sfreq:g} Hz")

    names = list_sample_recordings()
    raws = load_sample(names, verbose=False)
    print(f"[2/5] loaded {len(raws)} real recordings bundled with eegfm:")
    recordings = {}
    for name, raw in zip(names, raws):
        data, ch_names = _prepare(raw, model.sfreq)
        positions = proportion_coordinates(ch_names)  # (C, 2)
        recordings[name] = (data, positions, ch_names)
        print(f"      {name:28s} {len(ch_names):3d} channels, {raw.info['sfreq']:g} Hz -> {model.sfreq:g} Hz, "
              f"{data.shape[1] / model.sfreq:.0f} s, median |x| {np.median(np.abs(data)):.1f} µV")
    data, positions, ch_names = recordings[names[-1]]
    shown = [c for c in ("Fp1", "Cz", "T3", "T5", "O2") if c in ch_names]
    coords = ", ".join(f"{c}=({positions[ch_names.index(c)][0]:.0f}, {positions[ch_names.index(c)][1]:.0f})" for c in shown)
    print(f"[3/5] proportion coordinates (Cz=(50,50); legacy T3/T5 resolved as T7/P7): {coords}")

    n = int(args.window_seconds * model.sfreq)
    batch_items, labels = [], []
    for name, (data, positions, _) in recordings.items():
        for w in _windows(data, n)[:4]:
            batch_items.append((w, positions))
            labels.append(name)
    short = recordings[names[1]]
    batch_items.append((short[0][:, : n // 2], short[1]))  # a shorter window in the same batch
    labels.append(names[1] + " (half window)")
    batch = pad_recordings(batch_items)
    with torch.no_grad():
        out = model(**batch.encoder_inputs(), sfreq=model.sfreq)
    padding = 1.0 - out.token_mask.float().mean().item()
    print(f"[4/5] one mixed batch: x {tuple(batch.x.shape)}, tokens {tuple(out.tokens.shape)}, "
          f"{padding:.0%} of tokens are padding (never attended to)")
    i = len(batch_items) - 1
    with torch.no_grad():
        alone = model(torch.as_tensor(batch_items[i][0], dtype=torch.float32)[None],
                      torch.as_tensor(batch_items[i][1], dtype=torch.float32))
    diff = (out.cls[i] - alone.cls[0]).abs().max().item()
    print(f"      '{labels[i]}' alone vs padded in the batch: max |CLS difference| = {diff:.2e}")

    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = args.out / args.model
    model.save_pretrained(model_dir)
    reloaded = MAPEEncoder.from_pretrained(model_dir)
    with torch.no_grad():
        same = torch.equal(reloaded(**batch.encoder_inputs()).cls, out.cls)
    files = ", ".join(sorted(p.name for p in model_dir.iterdir()))
    print(f"[5/5] saved in Hub format to {model_dir} ({files}); reloaded outputs identical: {same}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0 if (same and diff < 1e-4) else 1
