"""torchrun worker of test_finetune_trainer's DDP test: fine-tune a tiny classifier on 2 gloo ranks.

``torchrun --standalone --nproc_per_node 2 tests/_ddp_finetune_worker.py OUT``; rank 0 saves the
state_dict to OUT/state.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ENC = dict(embed_dim=16, depth=1, num_heads=2, patch_size=50)


def toy_data():
    from eegfm.finetune import LabeledEEG

    rng = np.random.default_rng(0)
    X = rng.standard_normal((18, 3, 200)).astype(np.float32) * 5
    y = np.array([0, 0, 1] * 6)  # unbalanced: exercises the class-weighted count normalisation
    X[y == 1, 0] += 10 * np.sin(np.arange(200) / 3).astype(np.float32)
    return LabeledEEG.from_arrays(X, y, ["Fz", "Cz", "Pz"], sfreq=200.0)


def config(run_dir):
    from eegfm.finetune import FinetuneConfig

    return FinetuneConfig(epochs=2, batch_size=6, lr=1e-2, layer_decay=0.8, run_dir=str(run_dir), progress=False,
                          metrics="none", device="cpu", checkpoint_every_epochs=100)


def model():
    from eegfm import MAPEClassifier

    torch.manual_seed(0)
    return MAPEClassifier(n_outputs=2, encoder=ENC)


def main(out: Path) -> None:
    from eegfm.finetune import finetune
    from eegfm.training import cleanup, init_distributed

    info = init_distributed(backend="gloo")
    assert info.world_size == 2, info
    m = model()
    finetune(m, toy_data(), config(out / "run"))
    if info.rank == 0:
        torch.save(m.state_dict(), out / "state.pt")
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
