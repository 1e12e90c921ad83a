"""Toy model + data shared by the training tests, and the torchrun worker of test_distributed.

Run as ``torchrun --standalone --nproc_per_node 2 tests/_ddp_worker.py OUT STEPS``: rank r
trains on rows r::world of every global batch; rank 0 writes its state_dict to OUT/state.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

D_IN = 4
GLOBAL_BATCH = 7  # odd on purpose: 2 ranks get 4 and 3 rows, exercising the count normalisation
TRUE_W = torch.tensor([1.0, -2.0, 0.5, 3.0])


class ToyRegressor(nn.Module):
    """Linear regressor; loss_sum = sum of squared errors, count = rows; buffers updated per step."""

    def __init__(self, d_in: int = D_IN, noise: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(d_in, 1)
        self.noise = noise  # input noise drawn from torch's RNG, so resume must restore it
        self.register_buffer("ema_pred", torch.zeros(()))  # like an EMA codebook
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def training_step(self, batch):
        x, y = batch
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        pred = self.linear(x).squeeze(-1)  # (B,)
        err = pred - y
        with torch.no_grad():
            self.ema_pred.mul_(0.9).add_(0.1 * pred.mean())
            self.seen += x.shape[0]
        return {
            "loss_sum": (err**2).sum(),
            "count": torch.tensor(x.shape[0]),
            "abs_err": err.abs().mean().detach(),
        }


def global_batch(epoch: int, index: int, n: int = GLOBAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic batch ``index`` of ``epoch``: (x (n, D_IN), y (n,))."""
    g = torch.Generator().manual_seed(10_000 * epoch + index)
    x = torch.randn(n, D_IN, generator=g)
    y = x @ TRUE_W + 0.5 + 0.01 * torch.randn(n, generator=g)
    return x, y


def make_batches(n_per_epoch: int = 6, shard: tuple[int, int] | None = None, record: list | None = None):
    """``batches(epoch, start)`` for the Trainer; ``shard=(rank, world)`` keeps rows rank::world."""

    def batches(epoch: int, start: int):
        for i in range(start, n_per_epoch):
            x, y = global_batch(epoch, i)
            if shard is not None:
                r, w = shard
                x, y = x[r::w], y[r::w]
            if record is not None:
                record.append((epoch, i))
            yield x, y

    return batches


def ddp_config(run_dir, steps: int):
    from eegfm.training import TrainConfig

    return TrainConfig(
        steps=steps, lr=0.05, min_lr=0.005, warmup_steps=2, log_every=1, checkpoint_every=1000,
        run_dir=str(run_dir), progress=False, seed=0, device="cpu",  # gloo on CPU whatever the machine
    )


def main(out: Path, steps: int) -> None:
    from eegfm.training import Trainer, cleanup, init_distributed

    info = init_distributed(backend="gloo")
    assert info.world_size == 2 and info.backend == "gloo", info
    torch.manual_seed(0)
    model = ToyRegressor()
    batches = make_batches(shard=(info.rank, info.world_size))
    summary = Trainer(model, ddp_config(out / "run", steps), batches).fit()
    if info.rank == 0:
        torch.save({"state": model.state_dict(), "summary": summary}, out / "state.pt")
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
