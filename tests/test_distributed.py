"""DDP on two CPU processes (gloo) equals one process on the whole global batch."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch
from _ddp_worker import ToyRegressor, ddp_config, make_batches

from eegfm.training import Trainer, all_reduce_sum, is_main_process, rank, world_size

WORKER = Path(__file__).with_name("_ddp_worker.py")
STEPS = 6


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_single_process_helpers_are_noops():
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert (rank(), world_size(), is_main_process()) == (0, 1, True)


def test_ddp_two_ranks_match_single_process(tmp_path, capsys):
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(out), str(STEPS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ddp = torch.load(out / "state.pt", weights_only=True)

    torch.manual_seed(0)
    single = ToyRegressor()
    Trainer(single, ddp_config(tmp_path / "single", STEPS), make_batches()).fit()

    ref = dict(single.named_parameters())
    assert ddp["summary"]["steps"] == STEPS
    for name, p in ref.items():
        assert torch.allclose(ddp["state"][name], p.detach(), atol=1e-6, rtol=0), name
    # parameters really moved, so the comparison is not vacuous
    torch.manual_seed(0)
    init = ToyRegressor()
    assert not torch.allclose(init.linear.weight, single.linear.weight, atol=1e-3)

    # logged metrics are count-weighted averages over ranks = the single-process values
    rows_ddp = _read_csv(out / "run" / "metrics.csv")
    rows_one = _read_csv(tmp_path / "single" / "metrics.csv")
    assert [r["step"] for r in rows_ddp] == [str(s) for s in range(1, STEPS + 1)]
    for a, b in zip(rows_ddp, rows_one):
        for key in ("loss", "abs_err", "grad_norm", "lr"):
            assert abs(float(a[key]) - float(b[key])) <= 1e-5 * max(1.0, abs(float(b[key]))), (key, a, b)
    # rank 0 alone wrote the final checkpoint, with both ranks' RNG states
    ckpt = torch.load(out / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == STEPS


def test_ddp_tokenizer_codebook_and_weights_match_single_process(tmp_path):
    """EMA codebook statistics are all-reduced: 2 ranks == 1 process on the whole batch."""
    import _ddp_tokenizer_worker as w

    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(w.__file__)), str(out), "3"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ddp = torch.load(out / "tokenizer_state.pt", weights_only=True)

    single = w.make_tokenizer()
    before = {k: v.clone() for k, v in single.state_dict().items()}
    Trainer(single, w.config(tmp_path / "single", 3), w.batches_for()).fit()
    ref = single.state_dict()
    for name in ("quantizer.codebook", "quantizer.cluster_size", "quantizer.embed_sum", "encoder.blocks.0.attn.qkv.weight",
                 "to_code.weight", "head.weight" if "head.weight" in ref else "to_code.bias"):
        assert torch.allclose(ddp[name], ref[name], atol=1e-5, rtol=1e-4), name
    assert not torch.allclose(before["quantizer.embed_sum"], ref["quantizer.embed_sum"])  # it really moved
    assert torch.equal(ddp["quantizer.usage_counts"], ref["quantizer.usage_counts"])
