"""torchrun worker: a tiny NeuralTokenizer trained on 2 ranks (see test_distributed.py).

``torchrun --standalone --nproc_per_node 2 tests/_ddp_tokenizer_worker.py OUT STEPS``: rank r
trains on recordings r::world of a fixed mixed-montage batch; rank 0 saves its state_dict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

SHAPES = [(8, 200), (6, 150), (8, 200), (4, 100)]  # (channels, samples): unequal tokens per rank


def recordings():
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(c, t, generator=g) * (5 + 10 * torch.rand(c, 1, generator=g)), torch.rand(c, 2, generator=g) * 100)
            for c, t in SHAPES]


def make_tokenizer():
    """Codebook initialised up front and restarts off, so every rank's update is deterministic."""
    from eegfm.models.tokenizer import NeuralTokenizer

    torch.manual_seed(0)
    tok = NeuralTokenizer(patch_size=25, embed_dim=16, depth=1, num_heads=2, code_dim=4, num_codes=8,
                          decoder_depth=1, dead_code_steps=0, ema_decay=0.9)
    q = tok.quantizer
    q.codebook.copy_(torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), dim=1))
    q.embed_sum.copy_(q.codebook)
    q.cluster_size.fill_(1.0)
    q.initialized.fill_(True)
    return tok


def batches_for(shard=None):
    from eegfm.data import pad_recordings

    recs = recordings()
    if shard is not None:
        r, w = shard
        recs = recs[r::w]
    batch = pad_recordings(recs)

    def batches(epoch, start):
        for _ in range(start, 4):
            yield batch

    return batches


def config(run_dir, steps):
    from eegfm.training import TrainConfig

    return TrainConfig(steps=steps, lr=1e-2, warmup_steps=1, log_every=1, checkpoint_every=1000,
                       run_dir=str(run_dir), progress=False, seed=0, device="cpu")


def main(out: Path, steps: int) -> None:
    from eegfm.training import Trainer, cleanup, init_distributed, rank, world_size

    init_distributed(backend="gloo")
    tok = make_tokenizer()
    Trainer(tok, config(out / "run", steps), batches_for((rank(), world_size()))).fit()
    if rank() == 0:
        torch.save(tok.state_dict(), out / "tokenizer_state.pt")
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
