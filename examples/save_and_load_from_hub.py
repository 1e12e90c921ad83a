"""Save a MAPEEncoder in Hugging Face Hub format, load it back, and (optionally) push it.

    python examples/save_and_load_from_hub.py            # local round trip
    python examples/save_and_load_from_hub.py --push me/my-eeg-encoder   # needs `hf auth login`
"""

import argparse
import tempfile

import torch

from eegfm import MAPEEncoder, create_model

parser = argparse.ArgumentParser()
parser.add_argument("--push", metavar="REPO_ID", help="also push to this Hub repo")
args = parser.parse_args()

model = create_model("mape_encoder_tiny").eval()
x, positions = torch.randn(1, 8, 400) * 20, torch.rand(8, 2) * 100

with tempfile.TemporaryDirectory() as folder:
    model.save_pretrained(folder)  # config.json + model.safetensors + model card
    loaded = MAPEEncoder.from_pretrained(folder)  # strict: every weight must match
    with torch.no_grad():
        same = torch.equal(model(x, positions).cls, loaded(x, positions).cls)
    print(f"saved to {folder} and reloaded; identical outputs: {same}")

if args.push:
    model.push_to_hub(args.push)
    print(f"pushed; load it anywhere with MAPEEncoder.from_pretrained({args.push!r})")
