"""Stream windows from three real EEG caps through one encoder.

Uses the real recordings bundled with eegfm (64- and 19-channel caps at 160 and 500 Hz):
they are preprocessed once into a cache (reused on the next run with ``--cache-dir``), cut into
4-s windows, and batched with little padding. The excerpts are short (16-30 s), so the high-pass
is at 0.5 Hz: the default 0.1 Hz needs a 33-s filter, longer than the signal.

    python examples/mixed_montage_dataloader.py [--cache-dir DIR]
"""

import argparse
import tempfile
from contextlib import nullcontext

import torch

from eegfm import create_model
from eegfm.data import EEGCorpus, PreprocessConfig, from_raw
from eegfm.datasets import list_sample_recordings, load_sample

parser = argparse.ArgumentParser()
parser.add_argument("--cache-dir", default=None, help="keep the preprocessed cache here (default: a temporary folder)")
args = parser.parse_args()

model = create_model("mape_encoder_tiny").eval()
raws = load_sample(verbose=False)
sources = [from_raw(raw, key=name) for name, raw in zip(list_sample_recordings(), raws)]
with nullcontext(args.cache_dir) if args.cache_dir else tempfile.TemporaryDirectory(prefix="eegfm-cache-") as cache_dir:
    corpus = EEGCorpus(sources, cache_dir, PreprocessConfig(l_freq=0.5), progress=False)
    print(f"{len(corpus)} recordings in {cache_dir}: {[e.n_channels for e in corpus.entries]} channels")

    windows = corpus.windows(seconds=4.0, stride_seconds=2.0)
    loader = corpus.loader(windows, batch_size=8, patch_size=model.patch_size)
    print(f"{len(windows)} windows, {loader.batch_sampler.padding_fraction():.1%} padding with token bucketing")
    with torch.no_grad():
        for batch in loader:
            out = model(**batch.encoder_inputs(), sfreq=corpus.config.sfreq)
            print(f"batch x {tuple(batch.x.shape)} -> cls {tuple(out.cls.shape)}, "
                  f"channels per window {sorted(set(batch.channel_mask.sum(1).tolist()))}")
