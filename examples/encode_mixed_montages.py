"""Encode recordings from different EEG caps in one batch with a MAPEEncoder.

Any ``mne.io.Raw`` works: here, the real recordings bundled with eegfm (a 64-channel
BCI2000 cap at 160 Hz and a 19-channel 10-20 cap at 500 Hz with legacy T3/T5 names).

    python examples/encode_mixed_montages.py
"""

import torch

from eegfm import MAPEEncoder, pad_recordings, proportion_coordinates
from eegfm.datasets import load_sample

SFREQ = 200.0  # the model's sampling rate (its preprocessing contract)
WINDOW = 4.0  # seconds

model = MAPEEncoder(embed_dim=64, depth=2, num_heads=4, patch_size=100, sfreq=SFREQ).eval()

recordings = []
for raw in load_sample(["eegbci_S001R04", "eegmat_sub-02_rest"], verbose=False):
    raw = raw.pick("eeg").resample(SFREQ, verbose=False)
    x = raw.get_data(tmax=WINDOW - 1 / SFREQ) * 1e6  # (C, T) in µV
    positions = proportion_coordinates(raw.info)  # (C, 2), Cz = (50, 50)
    recordings.append((x, positions))
    print(f"{raw.info['description'][:40]:40s} x {x.shape}, positions {positions.shape}")

batch = pad_recordings(recordings)  # pads channels and time, keeps masks
with torch.no_grad():
    out = model(**batch.encoder_inputs(), sfreq=SFREQ)
print("tokens", tuple(out.tokens.shape), "cls", tuple(out.cls.shape), "real tokens per recording",
      out.token_mask.sum(1).tolist())
features = out.pooled()  # (B, D): mean of real tokens, padding excluded
print("pooled features", tuple(features.shape))
