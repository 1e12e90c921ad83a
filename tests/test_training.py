"""Training engine: schedule, loss goes down, atomic checkpoints, exact kill-and-resume, errors."""

import csv
import math
import random
import re
import sys

import numpy as np
import pytest
import torch
from _ddp_worker import ToyRegressor, make_batches
from torch import nn

import eegfm
from eegfm.training import (
    CheckpointError,
    MetricsLogger,
    TrainConfig,
    Trainer,
    cosine_with_warmup,
    latest_checkpoint,
    load_checkpoint,
    make_scheduler,
    save_checkpoint,
)
from eegfm.training import checkpoint as checkpoint_module


def _config(tmp_path, **kw):
    base = dict(steps=20, lr=0.05, min_lr=0.005, warmup_steps=3, log_every=1, checkpoint_every=5,
                run_dir=str(tmp_path / "run"), progress=False, seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def _read_csv(path):
    with open(path, newline="") as f:
        header = f.readline().strip()
    with open(path, newline="") as f:
        return header, list(csv.DictReader(f))


# ---------------------------------------------------------------- schedule
def test_cosine_with_warmup_values():
    kw = dict(total_steps=110, warmup_steps=10, base_lr=1e-3, min_lr=1e-5)
    assert cosine_with_warmup(0, **kw) == pytest.approx(1e-4)  # first step is not wasted at lr 0
    assert cosine_with_warmup(4, **kw) == pytest.approx(5e-4)
    assert cosine_with_warmup(9, **kw) == pytest.approx(1e-3)  # end of warm-up
    assert cosine_with_warmup(10, **kw) == pytest.approx(1e-3)  # start of the cosine
    assert cosine_with_warmup(60, **kw) == pytest.approx((1e-3 + 1e-5) / 2)  # middle
    assert cosine_with_warmup(110, **kw) == pytest.approx(1e-5)  # end
    assert cosine_with_warmup(500, **kw) == pytest.approx(1e-5)  # stays at the floor
    assert cosine_with_warmup(0, total_steps=10, warmup_steps=0, base_lr=1.0, min_lr=0.0) == 1.0
    with pytest.raises(ValueError, match="min_lr must not exceed base_lr"):
        cosine_with_warmup(0, total_steps=10, warmup_steps=0, base_lr=1.0, min_lr=2.0)


def test_make_scheduler_follows_the_function():
    kw = dict(total_steps=30, warmup_steps=5, base_lr=0.1, min_lr=0.01)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=123.0)
    sched = make_scheduler(opt, **kw)
    for step in range(35):
        assert opt.param_groups[0]["lr"] == pytest.approx(cosine_with_warmup(step, **kw))
        opt.step()
        sched.step()


# ---------------------------------------------------------------- training
class _Batch:
    """EEGBatch-like: an object with .to(device)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def to(self, device):
        return _Batch(self.x.to(device), self.y.to(device))


class _ObjectBatchRegressor(ToyRegressor):
    def training_step(self, batch):
        return super().training_step((batch.x, batch.y))

    def no_weight_decay(self):
        return {"linear.weight"}

    def save_pretrained(self, path):
        path.mkdir(parents=True)
        torch.save(self.state_dict(), path / "weights.pt")


def test_thirty_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    model = _ObjectBatchRegressor()
    base = make_batches(n_per_epoch=4)

    def batches(epoch, start):
        return (_Batch(x, y) for x, y in base(epoch, start))

    summary = Trainer(model, _config(tmp_path, steps=30, lr=0.3, min_lr=0.01, metrics="csv"), batches).fit()
    header, rows = _read_csv(tmp_path / "run" / "metrics.csv")
    assert header.split(",")[:2] == ["step", "loss"]
    losses = [float(r["loss"]) for r in rows]
    assert len(rows) == 30 and losses[-1] < 0.1 * losses[0]
    assert {"abs_err", "grad_norm", "lr", "count_per_s", "epoch"} <= set(rows[0])
    assert float(rows[-1]["epoch"]) == 7.0  # 30 steps over 4-batch epochs
    assert summary["steps"] == 30 and summary["metrics"]["loss"] == pytest.approx(losses[-1])
    assert (tmp_path / "run" / "model" / "weights.pt").is_file()  # save_pretrained at the end
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["last.pt"] + [f"step_{s:07d}.pt" for s in (20, 25, 30)]  # the newest 3 (keep_checkpoints)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 30 and state["eegfm_version"] == eegfm.__version__
    assert state["frozen_sha256"] is None and state["model"].keys() == model.state_dict().keys()  # nothing frozen
    assert state["config"]["steps"] == 30 and state["model_class"].endswith("_ObjectBatchRegressor")


def test_weight_decay_groups_and_trainable_parameters(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    model.no_weight_decay = lambda: {"2"}  # a whole module by name
    model.training_step = lambda batch: {}
    trainer = Trainer(model, _config(tmp_path), make_batches(), trainable_parameters=model[:2].parameters())
    decay, no_decay = trainer._param_groups()
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 0.05
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    assert not model[2].weight.requires_grad  # frozen: not in trainable_parameters


def test_callback_request_stop_writes_a_final_checkpoint(tmp_path):
    seen = []

    def stop_at_7(trainer, step):
        seen.append(step)
        if step == 7:
            trainer.request_stop()

    torch.manual_seed(0)
    summary = Trainer(ToyRegressor(), _config(tmp_path), make_batches(), callbacks=[stop_at_7]).fit()
    assert seen == list(range(1, 8)) and summary["steps"] == 7
    assert latest_checkpoint(tmp_path / "run").name == "last.pt"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 7


# ---------------------------------------------------------------- checkpoints
def _partial_then_fail(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("disk full (simulated)")


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    monkeypatch.setattr(torch, "save", _partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no stray temporary file


def test_crash_while_checkpointing_keeps_previous_last(tmp_path, monkeypatch):
    torch.manual_seed(0)
    Trainer(ToyRegressor(), _config(tmp_path, steps=5), make_batches()).fit()
    monkeypatch.setattr(torch, "save", _partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        Trainer(ToyRegressor(), _config(tmp_path, steps=10, resume=True), make_batches()).fit()
    monkeypatch.undo()
    ckdir = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckdir.iterdir()) == ["last.pt", "step_0000005.pt"]
    assert load_checkpoint(ckdir / "last.pt")["step"] == 5


def test_load_checkpoint_errors_name_the_file(tmp_path):
    bad = tmp_path / "step_0000003.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=re.escape(str(bad)) + " is corrupt or unreadable"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.pt")) + " does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    ckdir = tmp_path / "checkpoints"
    for s in (5, 20, 10):
        save_checkpoint(ckdir / f"step_{s:07d}.pt", {"step": s})
    (ckdir / "step_0000030.pt.tmp-123").write_bytes(b"junk")  # a crashed save is ignored
    assert latest_checkpoint(tmp_path) == ckdir / "step_0000020.pt"
    checkpoint_module.link_or_copy_atomic(ckdir / "step_0000010.pt", ckdir / "last.pt")
    assert latest_checkpoint(tmp_path) == ckdir / "last.pt"
    assert load_checkpoint(ckdir / "last.pt")["step"] == 10


# ---------------------------------------------------------------- checkpoint policy: keep N, frozen parts
def _step_names(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt"))


def test_keep_checkpoints_keeps_the_newest_n(tmp_path):
    for keep, steps in ((2, (15, 20)), (1, (20,)), (0, (5, 10, 15, 20))):  # 0: every one
        torch.manual_seed(0)
        Trainer(ToyRegressor(), _config(tmp_path / str(keep), keep_checkpoints=keep), make_batches()).fit()
        assert _step_names(tmp_path / str(keep) / "run") == [f"step_{s:07d}.pt" for s in steps]
        assert load_checkpoint(tmp_path / str(keep) / "run" / "checkpoints" / "last.pt")["step"] == 20


def test_prune_checkpoints_keeps_last_and_the_file_just_written(tmp_path):
    for s in (5, 10, 15, 40):  # step 40: a stale file of an older, longer run
        save_checkpoint(tmp_path / f"step_{s:07d}.pt", {"step": s})
    checkpoint_module.link_or_copy_atomic(tmp_path / "step_0000015.pt", tmp_path / "last.pt")
    deleted = checkpoint_module.prune_checkpoints(tmp_path, 1, protect=tmp_path / "step_0000015.pt")
    assert sorted(p.name for p in deleted) == ["step_0000005.pt", "step_0000010.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000015.pt", "step_0000040.pt"]
    with pytest.raises(ValueError, match=r"keep must be a whole number >= 0 \(0 keeps every checkpoint\), got keep=-1"):
        checkpoint_module.prune_checkpoints(tmp_path, -1)
    with pytest.raises(ValueError, match=r"keep_checkpoints must be a whole number >= 0 .* got keep_checkpoints=2.5"):
        Trainer(ToyRegressor(), _config(tmp_path, keep_checkpoints=2.5), make_batches())


def test_resume_after_older_checkpoints_were_deleted_is_exact(tmp_path):
    def new_model():
        torch.manual_seed(123)
        return ToyRegressor(noise=0.1)

    straight = Trainer(new_model(), _config(tmp_path / "a"), make_batches())
    straight.fit()

    def crash_after_12(trainer, step):
        if step == 12:
            raise _Crash("killed")

    with pytest.raises(_Crash):
        Trainer(new_model(), _config(tmp_path / "b", keep_checkpoints=1), make_batches(),
                callbacks=[crash_after_12]).fit()
    assert _step_names(tmp_path / "b" / "run") == ["step_0000010.pt"]  # step 5 deleted
    resumed = Trainer(ToyRegressor(noise=0.1), _config(tmp_path / "b", keep_checkpoints=1, resume=True),
                      make_batches())
    resumed.fit()
    assert _step_names(tmp_path / "b" / "run") == ["step_0000020.pt"]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


class _FrozenFeatures(ToyRegressor):
    """A frozen random projection before the trained regressor (like a frozen backbone)."""

    def __init__(self, seed=7):
        super().__init__()
        self.features = nn.Linear(4, 4).requires_grad_(False)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(4) + 0.1 * torch.randn(4, 4, generator=torch.Generator().manual_seed(seed)))
            self.features.bias.zero_()

    def training_step(self, batch):
        x, y = batch
        return super().training_step((self.features(x), y))


def _stop_at(step):
    def callback(trainer, now):
        if now == step:
            trainer.request_stop()  # as a crash right after the checkpoint of `step`
    return [callback]


def _train_frozen(tmp_path, *, seed=7, stop=None, **kw):
    torch.manual_seed(0)
    model = _FrozenFeatures(seed)
    trainer = Trainer(model, _config(tmp_path, steps=10, **kw), make_batches(),
                      trainable_parameters=model.linear.parameters(), callbacks=_stop_at(stop) if stop else None)
    trainer.fit()
    return trainer


def test_checkpoints_leave_frozen_parameters_out_and_resume_exactly(tmp_path):
    straight = _train_frozen(tmp_path / "a")
    state = load_checkpoint(tmp_path / "a" / "run" / "checkpoints" / "last.pt")
    assert sorted(state["model"]) == ["ema_pred", "linear.bias", "linear.weight", "seen"]  # no features.*
    assert re.fullmatch(r"[0-9a-f]{64}", state["frozen_sha256"])
    assert state["frozen_sha256"] == checkpoint_module.FrozenParameters(straight.model).sha256()
    _train_frozen(tmp_path / "b", stop=5)
    resumed = _train_frozen(tmp_path / "b", resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_frozen_hash_covers_names_values_and_dtypes_and_follows_in_place_changes():
    model = _FrozenFeatures()
    frozen = checkpoint_module.FrozenParameters(model)
    first = frozen.sha256()
    assert frozen.names() == {"features.weight", "features.bias"} and frozen.sha256() == first
    assert checkpoint_module.FrozenParameters(_FrozenFeatures()).sha256() == first  # same values, another object
    with torch.no_grad():
        model.features.bias.add_(1e-3)  # changed in place during training: a new hash, not the cached one
    changed = frozen.sha256()
    model.features.to(torch.float64)
    assert len({first, changed, frozen.sha256()}) == 3
    assert checkpoint_module.FrozenParameters(ToyRegressor()).sha256() is None  # nothing frozen


def test_resuming_with_other_frozen_parameters_is_one_clear_error(tmp_path):
    first = _train_frozen(tmp_path, stop=5)
    saved = checkpoint_module.FrozenParameters(first.model).sha256()
    other = checkpoint_module.FrozenParameters(_FrozenFeatures(seed=8)).sha256()
    with pytest.raises(ValueError, match=rf"cannot resume from .*last.pt: its frozen parameters have sha256 "
                                         rf"{saved[:16]} but this model's have {other[:16]}; build the model from "
                                         r"the same pre-trained weights .* or start a new run in another run_dir$"):
        _train_frozen(tmp_path, seed=8, resume=True)
    with pytest.raises(ValueError, match=rf"its frozen parameters have sha256 {saved[:16]} but this model's have none"):
        Trainer(_FrozenFeatures().requires_grad_(True), _config(tmp_path, steps=10, resume=True), make_batches()).fit()


def test_a_checkpoint_written_whole_still_resumes(tmp_path):
    """Checkpoints of earlier versions hold every parameter and no frozen hash."""
    straight = _train_frozen(tmp_path / "a")
    half = _train_frozen(tmp_path / "b", stop=5)
    path = tmp_path / "b" / "run" / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    del state["frozen_sha256"]
    state["model"] = half.model.state_dict()
    path.unlink()  # last.pt is a hard link of step_0000005.pt
    save_checkpoint(path, state)
    resumed = _train_frozen(tmp_path / "b", resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- exact resume
def _rng_snapshot():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _assert_same_rng(a, b):
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert a[2][0] == b[2][0] and np.array_equal(a[2][1], b[2][1]) and a[2][2:] == b[2][2:]


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("n_per_epoch", [7, 5])  # checkpoint at step 10: mid-epoch / at epoch end
def test_kill_and_resume_is_exact(tmp_path, n_per_epoch):
    def new_model():
        torch.manual_seed(123)
        return ToyRegressor(noise=0.1)  # consumes torch RNG in every step

    # A: 20 steps straight
    order_a = []
    a = Trainer(new_model(), _config(tmp_path / "a"), make_batches(n_per_epoch, record=order_a))
    a.fit()
    rng_a = _rng_snapshot()

    # B: crash after step 12 (last checkpoint at step 10), then resume to 20
    def crash_after_12(trainer, step):
        if step == 12:
            raise _Crash("killed")

    order_b1 = []
    with pytest.raises(_Crash):
        Trainer(new_model(), _config(tmp_path / "b"), make_batches(n_per_epoch, record=order_b1),
                callbacks=[crash_after_12]).fit()
    torch.manual_seed(999)  # the new process starts with other RNG states
    random.seed(999)
    np.random.seed(999)
    order_b2 = []
    other_init = ToyRegressor(noise=0.1)
    b = Trainer(other_init, _config(tmp_path / "b", resume=True), make_batches(n_per_epoch, record=order_b2))
    b.fit()
    rng_b = _rng_snapshot()

    # data order: B replays exactly the batches A saw after step 10
    assert order_b1 == order_a[:12] and order_b2 == order_a[10:] and len(order_a) == 20
    # model parameters and buffers
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert int(sb["seen"]) == 20 * 7
    # optimizer and scheduler state
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert oa["param_groups"] == ob["param_groups"]
    for pid, st in oa["state"].items():
        for key, val in st.items():
            assert torch.equal(val, ob["state"][pid][key]), (pid, key)
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    assert (a.epoch, a.batch_in_epoch) == (b.epoch, b.batch_in_epoch)
    _assert_same_rng(rng_a, rng_b)
    # checkpoints end identical too
    ca = load_checkpoint(tmp_path / "a" / "run" / "checkpoints" / "last.pt")
    cb = load_checkpoint(tmp_path / "b" / "run" / "checkpoints" / "last.pt")
    assert torch.equal(ca["rng"][0]["torch"], cb["rng"][0]["torch"]) and ca["step"] == cb["step"] == 20
    # metrics CSV: one header, steps 1..20 increasing (rows 11-12 of the crashed run replaced)
    text = (tmp_path / "b" / "run" / "metrics.csv").read_text()
    assert text.count("step,") == 1
    _, rows = _read_csv(tmp_path / "b" / "run" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    _, rows_a = _read_csv(tmp_path / "a" / "run" / "metrics.csv")
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_a]


# ---------------------------------------------------------------- errors
class _BadKeys(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def training_step(self, batch):
        return {"loss": self.w.sum()}


class _NaNModel(ToyRegressor):
    def training_step(self, batch):
        out = super().training_step(batch)
        if int(self.seen) == 3 * 7:  # third step
            out["loss_sum"] = out["loss_sum"] * float("nan")
        return out


def test_error_messages(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="Linear has no training_step"):
        Trainer(nn.Linear(2, 1), _config(tmp_path), make_batches())
    with pytest.raises(ValueError, match=r"_BadKeys.training_step must return .* it returned \['loss'\]"):
        Trainer(_BadKeys(), _config(tmp_path), make_batches()).fit()
    with pytest.raises(ValueError, match="amp='fp32' is not one of"):
        Trainer(ToyRegressor(), _config(tmp_path, amp="fp32"), make_batches())
    with pytest.raises(ValueError, match="metrics='wandb' is not one of"):
        Trainer(ToyRegressor(), _config(tmp_path, metrics="wandb"), make_batches())
    fresh = tmp_path / "fresh" / "run"
    with pytest.raises(FileNotFoundError, match=f"resume=True but run_dir '{re.escape(str(fresh))}' has no checkpoint"):
        Trainer(ToyRegressor(), _config(tmp_path / "fresh", resume=True), make_batches()).fit()
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at step 3; lower the learning rate"):
        Trainer(_NaNModel(), _config(tmp_path / "nan"), make_batches()).fit()
    with pytest.raises(ValueError, match=r"batches\(epoch=0, start=0\) yielded no batch"):
        Trainer(ToyRegressor(), _config(tmp_path / "empty"), make_batches(n_per_epoch=0)).fit()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        MetricsLogger(tmp_path / "tb", "tensorboard")


def test_bf16_autocast_on_cpu_with_progress_bar(tmp_path, capsys):
    torch.manual_seed(0)
    summary = Trainer(ToyRegressor(), _config(tmp_path, steps=4, amp="bf16", progress=True), make_batches()).fit()
    assert summary["steps"] == 4 and math.isfinite(summary["metrics"]["loss"])
    assert "4/4" in capsys.readouterr().err  # tqdm on rank 0


def test_resuming_another_model_is_one_clear_error(tmp_path):
    torch.manual_seed(0)
    Trainer(ToyRegressor(), _config(tmp_path, steps=3), make_batches()).fit()

    class Wider(ToyRegressor):
        def __init__(self):
            super().__init__()
            self.extra = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"cannot resume from .*last.pt: it holds another model \(missing 2 "
                                         r"\('extra.weight', 'extra.bias'\), unexpected 0 against this one\).*run_config.json"):
        Trainer(Wider(), _config(tmp_path, steps=6, resume=True), make_batches()).fit()
