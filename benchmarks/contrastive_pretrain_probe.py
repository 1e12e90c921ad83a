"""Experiment: contrastive pre-training (two augmented views of each window, NT-Xent).

    python benchmarks/contrastive_pretrain_probe.py --sources "bids:../shared/data/eegmat_bids:02,03" \
        --steps 1000 --run-dir /tmp/eegfm-contrastive

Recipe rows 5 and 11 (``benchmarks/results/downstream/RECIPE.md``) found that masked
prediction (of VQ codes or of Fourier amplitudes) gives frozen features no better than a
random encoder's, and row 7 that fine-tuning augmentation (channel dropout, time shift,
amplitude scaling) helps every arm. This probe asks whether pre-training *for invariance to
those augmentations* gives better features: each window is augmented twice
(:func:`eegfm.finetune.augment.augment_batch`, independently), both views are encoded by the
same :class:`eegfm.MAPEEncoder`, mean-pooled, projected by a 2-layer MLP and matched by the
NT-Xent loss of SimCLR (temperature ``tau``; the other 2B - 2 views of the batch are the
negatives). The projection head is dropped; ``<run-dir>/encoder`` is a ``MAPEEncoder`` folder
for ``benchmarks/feature_probe.py`` and ``benchmarks/finetune_probe.py``; ``evaluation.json``
has the view-retrieval accuracy (share of views whose nearest other view is their pair).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm import MAPEEncoder  # noqa: E402
from eegfm.finetune.augment import augment_batch  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from spectrum_pretrain_probe import add_pretrain_arguments, fit, load_corpus, write_summary  # noqa: E402


class ContrastivePretrainer(nn.Module):
    """SimCLR over two augmented views of each EEG window.

    Parameters
    ----------
    encoder : MAPEEncoder
    proj_dim : int
        Width of the projection the loss compares.
    tau : float
        Softmax temperature of NT-Xent.
    sfreq : float
        Sampling rate of the batches (for the time shift).
    channel_dropout, time_shift_seconds, amplitude_scale : float
        Augmentation of each view (:func:`eegfm.finetune.augment.augment_batch`).
    """

    def __init__(self, encoder: MAPEEncoder, *, proj_dim: int = 64, tau: float = 0.1, sfreq: float = 200.0,
                 channel_dropout: float = 0.5, time_shift_seconds: float = 1.0, amplitude_scale: float = 0.5):
        super().__init__()
        self.encoder = encoder
        dim = encoder.embed_dim
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, proj_dim))
        self.tau = tau
        self.augment = dict(sfreq=sfreq, channel_dropout=channel_dropout, time_shift_seconds=time_shift_seconds,
                            amplitude_scale=amplitude_scale)

    def embed(self, batch) -> torch.Tensor:
        """Unit-norm projections of two views of ``batch``, shape (2B, proj_dim)."""
        views = [augment_batch(batch, **self.augment) for _ in range(2)]
        pooled = [self.encoder(v.x, v.positions, channel_mask=v.channel_mask, n_times=v.n_times,
                                  check_finite=False).pooled()
                  for v in views]
        return F.normalize(self.projection(torch.cat(pooled)), dim=-1)

    def training_step(self, batch) -> dict:
        """NT-Xent summed over the 2B views; ``accuracy``: nearest other view is the pair."""
        z = self.embed(batch)  # (2B, P)
        n = z.shape[0] // 2
        logits = (z @ z.T) / self.tau  # (2B, 2B)
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        pair = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        loss = F.cross_entropy(logits, pair, reduction="sum")
        accuracy = (logits.argmax(1) == pair).float().mean()
        return {"loss_sum": loss, "count": 2 * n, "accuracy": accuracy.detach()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pretrain_arguments(p, batch_size=64)
    p.add_argument("--tau", type=float, default=0.1)
    p.add_argument("--channel-dropout", type=float, default=0.5)
    p.add_argument("--time-shift", type=float, default=1.0)
    p.add_argument("--amplitude-scale", type=float, default=0.5)
    args = p.parse_args(argv)
    data, corpus, windows, loader = load_corpus(args)
    torch.manual_seed(args.seed)
    encoder = MAPEEncoder(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth,
                          num_heads=args.heads, sfreq=data.sfreq, preprocessing=data.preprocess_config().to_dict())
    model = ContrastivePretrainer(encoder, tau=args.tau, sfreq=data.sfreq, channel_dropout=args.channel_dropout,
                                  time_shift_seconds=args.time_shift, amplitude_scale=args.amplitude_scale)
    fitted = fit(model, args, loader)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(args.seed)
        accuracy = [float(model.training_step(b)["accuracy"])
                    for b in itertools.islice(loader.batches(epoch=10_000), 10)]
    encoder.save_pretrained(args.run_dir / "encoder")
    return write_summary("contrastive_pretrain_probe.py", argv, args, corpus, windows, fitted,
                         view_retrieval_accuracy=sum(accuracy) / len(accuracy), chance=1.0 / (2 * args.batch_size - 1))


if __name__ == "__main__":
    main()
