"""Fine-tuning loop: a real smoke test, linear probing, saving, resume, config errors, validation
with best-epoch selection and early stopping."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from eegfm import MAPEClassifier, MAPEEncoder
from eegfm.data import EEGCorpus
from eegfm.data.sources import from_raw
from eegfm.datasets import load_sample
from eegfm.finetune import FinetuneConfig, LabeledEEG, evaluate, finetune, predict

ENC = dict(embed_dim=32, depth=1, num_heads=2, patch_size=100)


@pytest.fixture(scope="module")
def real_subset(tmp_path_factory) -> LabeledEEG:
    """Bundled real EEG (PhysioNet eegmat subject 02): 2-s windows of rest vs mental arithmetic."""
    raws = load_sample(["eegmat_sub-02_rest", "eegmat_sub-02_arithmetic"], verbose=False)
    sources = [from_raw(raw, key=f"sample:{task}", metadata={"task": task, "subject": "02"})
               for raw, task in zip(raws, ["rest", "arithmetic"])]
    corpus = EEGCorpus(sources, tmp_path_factory.mktemp("cache"), progress=False)
    return LabeledEEG.from_corpus(corpus, 2.0, "task", classes=["rest", "arithmetic"])


def _config(tmp_path, **kw):
    base = dict(epochs=15, batch_size=8, lr=2e-3, layer_decay=0.9, run_dir=str(tmp_path / "run"), progress=False,
                metrics="none", checkpoint_every_epochs=100, warmup_epochs=0.5)
    return FinetuneConfig(**{**base, **kw})


def test_finetuning_on_real_eeg_beats_chance_on_its_training_data(real_subset, tmp_path):
    torch.manual_seed(0)
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    before = evaluate(model, real_subset)["balanced_accuracy"]
    summary = finetune(model, real_subset, _config(tmp_path, epochs=12))
    after = evaluate(model, real_subset)
    assert len(real_subset) == 16 and summary["steps"] == 12 * 2  # 16 windows in 2 batches of 8 per epoch
    assert after["balanced_accuracy"] >= 0.75 and after["auroc"] > 0.8, (before, after)
    # the fine-tuned model was saved and reloads with the same predictions
    reloaded = MAPEClassifier.from_pretrained(tmp_path / "run" / "model")
    np.testing.assert_allclose(predict(reloaded, real_subset), predict(model, real_subset), atol=1e-5)


def test_linear_probing_leaves_the_pretrained_encoder_unchanged(real_subset, tmp_path):
    encoder = MAPEEncoder(**ENC)
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    head_before = model.head.weight.detach().clone()
    finetune(model, real_subset, _config(tmp_path, mode="linear", epochs=2))
    for (name, p), q in zip(model.encoder.state_dict().items(), encoder.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert not torch.equal(model.head.weight, head_before)


def test_full_finetuning_moves_the_head_faster_than_the_first_block(real_subset, tmp_path):
    """Layer-wise decay 0.1, depth 1: block 0 learns at 10 % of the head's rate (Adam: steps ~ lr)."""
    torch.manual_seed(0)
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, real_subset, _config(tmp_path, epochs=2, layer_decay=0.1, weight_decay=0.0))
    def moved(name):
        return (model.state_dict()[name] - before[name]).abs().max().item()
    ratio = moved("encoder.blocks.0.attn.qkv.weight") / moved("head.weight")
    assert 0.05 < ratio < 0.2, ratio
    assert moved("encoder.patch_embed.convs.0.0.weight") / moved("head.weight") < 0.02


def test_resume_after_a_crash_reaches_the_same_weights(real_subset, tmp_path):
    torch.manual_seed(0)
    straight = MAPEClassifier(n_outputs=2, encoder=ENC)
    start = {k: v.clone() for k, v in straight.state_dict().items()}
    finetune(straight, real_subset, _config(tmp_path, epochs=4, checkpoint_every_epochs=1))
    # a crash after epoch 2: the newest checkpoint is the one of step 4 (2 batches per epoch)
    ckpts = tmp_path / "run" / "checkpoints"
    shutil.copyfile(ckpts / "step_0000004.pt", ckpts / "last.pt")
    resumed = MAPEClassifier(n_outputs=2, encoder=ENC)
    resumed.load_state_dict(start)
    summary = finetune(resumed, real_subset, _config(tmp_path, epochs=4, checkpoint_every_epochs=1, resume=True))
    assert summary["steps"] == 8
    torch.testing.assert_close(resumed.state_dict(), straight.state_dict())


def test_config_and_data_errors_are_named(real_subset, tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        FinetuneConfig(mode="probe")
    with pytest.raises(ValueError, match="task must be one of"):
        FinetuneConfig(task="ranking")
    model = MAPEClassifier(n_outputs=1, encoder=ENC)
    with pytest.raises(ValueError, match="labels go up to 1 but the model has n_outputs=1; load it with n_outputs=2"):
        finetune(model, real_subset, _config(tmp_path))
    slow = MAPEClassifier(n_outputs=2, encoder={**ENC, "sfreq": 100.0, "preprocessing": {"h_freq": 40.0}})
    with pytest.raises(ValueError, match="train.sfreq=200.0 Hz but the encoder expects 100.0 Hz"):
        finetune(slow, real_subset, _config(tmp_path))


def test_regression_task(real_subset, tmp_path):
    targets = LabeledEEG(real_subset.signals, real_subset.positions, real_subset.labels.astype(np.float32) * 2 - 1,
                         sfreq=real_subset.sfreq)
    torch.manual_seed(0)
    model = MAPEClassifier(n_outputs=1, encoder=ENC)
    before = evaluate(model, targets, task="regression")["mse"]
    finetune(model, targets, _config(tmp_path, task="regression", epochs=10))
    assert evaluate(model, targets, task="regression")["mse"] < before


def test_ddp_two_ranks_match_one_process(tmp_path):
    """Each rank takes half of every global batch; class-weighted loss normalised globally."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import _ddp_finetune_worker as w

    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(w.__file__)), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ddp = torch.load(out / "state.pt", weights_only=True)
    single = w.model()
    start = {k: v.clone() for k, v in single.state_dict().items()}
    finetune(single, w.toy_data(), w.config(tmp_path / "single"))
    for name, p in single.state_dict().items():
        torch.testing.assert_close(ddp[name], p, atol=1e-5, rtol=1e-4, msg=name)
    assert not torch.allclose(start["head.weight"], single.state_dict()["head.weight"])


# ---------------------------------------------------------------- validation, selection, early stopping
TOY_ENC = dict(embed_dim=16, depth=1, num_heads=2, patch_size=50)


def _toy(seed: int, n: int = 12, regression: bool = False) -> LabeledEEG:
    """n windows of 3 channels x 1 s at 200 Hz; class 1 carries a sine on Fz."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3, 200)).astype(np.float32) * 5
    y = np.arange(n) % 2
    X[y == 1, 0] += 10 * np.sin(np.arange(200) / 3).astype(np.float32)
    return LabeledEEG.from_arrays(X, y.astype(np.float32) if regression else y, ["Fz", "Cz", "Pz"], sfreq=200.0)


def _toy_model(n_outputs=2):
    torch.manual_seed(0)
    return MAPEClassifier(n_outputs=n_outputs, encoder=TOY_ENC)


def _toy_config(tmp_path, name="run", **kw):  # 12 windows in batches of 4: 3 steps per epoch
    base = dict(epochs=4, batch_size=4, lr=1e-2, warmup_epochs=0.5, run_dir=str(tmp_path / name), progress=False,
                metrics="none", device="cpu", checkpoint_every_epochs=100)
    return FinetuneConfig(**{**base, **kw})


def test_validation_history_has_one_entry_per_epoch(tmp_path):
    valid = _toy(1, n=8)
    summary = finetune(_toy_model(), _toy(0), _toy_config(tmp_path), valid=valid)
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and summary["steps"] == 4 * 3
    assert all(set(h) == {"epoch", "balanced_accuracy", "accuracy", "auroc", "cohen_kappa", "weighted_f1",
                          "confusion_matrix", "n"} and h["n"] == 8 for h in history)
    assert all(np.sum(h["confusion_matrix"]) == 8 and len(h["confusion_matrix"]) == 2 for h in history)
    scores = [h["balanced_accuracy"] for h in history]
    assert summary["best_epoch"] == 1 + scores.index(max(scores))  # the first of equal scores
    assert summary["valid"] == {k: v for k, v in history[summary["best_epoch"] - 1].items() if k != "epoch"}


def test_without_valid_the_summary_is_unchanged(tmp_path):
    summary = finetune(_toy_model(), _toy(0), _toy_config(tmp_path, epochs=1))
    assert set(summary) == {"steps", "train", "config"} and summary["steps"] == 3


def test_early_stopping_when_the_monitor_cannot_improve(tmp_path):
    """lr 1e-12: the weights (so the validation metric) stay put; patience=1 stops after epoch 2."""
    cfg = _toy_config(tmp_path, epochs=6, lr=1e-12, patience=1, checkpoint_every_epochs=1)
    summary = finetune(_toy_model(), _toy(0), cfg, valid=_toy(1, n=8))
    assert summary["steps"] == 2 * 3 < 6 * 3
    assert [h["epoch"] for h in summary["history"]] == [1, 2] and summary["best_epoch"] == 1
    assert summary["history"][0]["balanced_accuracy"] == summary["history"][1]["balanced_accuracy"]
    # resuming the stopped run restores the selection state from the checkpoint and trains no further
    again = finetune(_toy_model(), _toy(0), dataclasses.replace(cfg, resume=True), valid=_toy(1, n=8))
    assert again["steps"] == 6 and again["history"] == summary["history"] and again["best_epoch"] == 1


@pytest.mark.parametrize("task, monitor, scores, best", [
    ("classification", "balanced_accuracy", [0.5, 0.9, 0.6, 0.7], 2),  # maximised
    ("regression", "mse", [1.0, 0.4, 0.7, 0.5], 2),  # minimised
])
@pytest.mark.parametrize("select_best", [True, False])
def test_select_best_restores_the_weights_of_the_best_epoch(tmp_path, monkeypatch, task, monitor, scores, best,
                                                            select_best):
    """Scripted validation scores; the weights are compared with the checkpoint of each epoch."""
    import eegfm.finetune.trainer as T

    calls = iter(scores)
    monkeypatch.setattr(T, "evaluate", lambda model, data, task, batch_size, **kw: {monitor: next(calls),
                                                                                    "n": len(data)})
    regression = task == "regression"
    model = _toy_model(n_outputs=1 if regression else 2)
    cfg = _toy_config(tmp_path, task=task, checkpoint_every_epochs=1, select_best=select_best)
    assert cfg.monitor == monitor  # regression: the default monitor becomes "mse"
    summary = finetune(model, _toy(0, regression=regression), cfg, valid=_toy(1, n=8, regression=regression))
    assert summary["best_epoch"] == best and [h[monitor] for h in summary["history"]] == scores
    chosen = best if select_best else len(scores)
    assert summary["valid"] == {monitor: scores[chosen - 1], "n": 8}

    def epoch_weights(epoch):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"step_{3 * epoch:07d}.pt", weights_only=True)["model"]
        return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}

    torch.testing.assert_close(model.state_dict(), epoch_weights(chosen), rtol=0, atol=0)
    assert not torch.equal(epoch_weights(best)["head.weight"], epoch_weights(len(scores))["head.weight"])
    saved = MAPEClassifier.from_pretrained(tmp_path / "run" / "model")  # the saved model is the selected one
    torch.testing.assert_close(saved.state_dict(), model.state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["full", "linear"])
def test_validation_changes_neither_the_rng_stream_nor_the_batches(tmp_path, mode):
    """Dropout draws from the RNG in every step; a linear probe's encoder must stay in eval mode."""
    def run(name, **valid):
        torch.manual_seed(0)
        model = MAPEClassifier(n_outputs=2, encoder={**TOY_ENC, "dropout": 0.3}, head_dropout=0.3)
        summary = finetune(model, _toy(0), _toy_config(tmp_path, name, mode=mode, select_best=False), **valid)
        return model, summary

    plain, plain_summary = run("plain")
    validated, summary = run("validated", valid=_toy(1, n=8))
    assert len(summary["history"]) == 4
    torch.testing.assert_close(validated.state_dict(), plain.state_dict(), rtol=0, atol=0)
    assert summary["train"]["loss"] == plain_summary["train"]["loss"]


def test_selection_config_errors_are_named(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"patience must be >= 1 \(epochs\) or None, got patience="):
            FinetuneConfig(patience=bad)
    with pytest.raises(ValueError, match=r"monitor must be one of \('balanced_accuracy', 'accuracy', 'auroc', "
                                         r"'cohen_kappa', 'weighted_f1'\) for task='classification', "
                                         r"got monitor='mse'"):
        FinetuneConfig(monitor="mse")
    with pytest.raises(ValueError, match=r"monitor must be one of \('mse', 'mae', 'r2'\) for task='regression', "
                                         r"got monitor='auroc'"):
        FinetuneConfig(task="regression", monitor="auroc")
    with pytest.raises(ValueError, match="select_best must be True or False"):
        FinetuneConfig(select_best="yes")
    assert FinetuneConfig(task="regression").monitor == "mse"  # the classification default, mapped
    assert FinetuneConfig(task="regression", monitor="r2").monitor == "r2"
    assert FinetuneConfig(monitor="cohen_kappa").monitor == "cohen_kappa"
    with pytest.raises(ValueError, match=r"patience=3 needs a validation set to monitor: pass valid=\.\.\., "
                                         r"or set patience=None"):
        finetune(_toy_model(), _toy(0), _toy_config(tmp_path, patience=3))


def test_resume_with_validation_continues_the_selection_exactly(tmp_path):
    cfg = _toy_config(tmp_path, checkpoint_every_epochs=1, patience=3)
    straight_model = _toy_model()
    straight = finetune(straight_model, _toy(0), cfg, valid=_toy(1, n=8))
    # a crash after epoch 2: the newest checkpoint is the one of step 6 (3 batches per epoch)
    ckpts = tmp_path / "run" / "checkpoints"
    shutil.copyfile(ckpts / "step_0000006.pt", ckpts / "last.pt")
    resumed_model = _toy_model()
    resumed = finetune(resumed_model, _toy(0), dataclasses.replace(cfg, resume=True), valid=_toy(1, n=8))
    assert resumed["history"] == straight["history"] and len(straight["history"]) == 4
    assert (resumed["steps"], resumed["best_epoch"], resumed["valid"]) == (straight["steps"], straight["best_epoch"],
                                                                          straight["valid"])
    torch.testing.assert_close(resumed_model.state_dict(), straight_model.state_dict())


_DDP_VALID_WORKER = '''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import torch
from eegfm.finetune import finetune
from eegfm.training import cleanup, init_distributed, rank
from test_finetune_trainer import _toy, _toy_config, _toy_model

out = Path(sys.argv[1])
init_distributed(backend="gloo")
model = _toy_model()
summary = finetune(model, _toy(0), _toy_config(out, epochs=8, patience=1), valid=_toy(1, n=8))
keys = ("steps", "history", "best_epoch", "valid")
(out / f"rank{rank()}.json").write_text(json.dumps({k: summary[k] for k in keys}))
if rank() == 0:
    torch.save(model.state_dict(), out / "state.pt")
cleanup()
'''


def test_ddp_validation_and_early_stopping_match_one_process(tmp_path):
    """Rank 0 validates; both ranks take its stop decision and restore the same best weights."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = tmp_path / "worker.py"
    worker.write_text(_DDP_VALID_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path), str(Path(__file__).parent)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    model = _toy_model()
    single = finetune(model, _toy(0), _toy_config(tmp_path, "single", epochs=8, patience=1), valid=_toy(1, n=8))
    assert ranks[0] == ranks[1] == {k: single[k] for k in ("steps", "history", "best_epoch", "valid")}
    assert single["steps"] < 8 * 3  # it did stop early
    ddp = torch.load(tmp_path / "state.pt", weights_only=True)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(ddp[name], p, atol=1e-5, rtol=1e-4, msg=name)


def _one_class_model():
    """A toy classifier whose head always says class 0 (zero weights, bias [5, 0])."""
    model = _toy_model()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([5.0, 0.0]))
    return model


def test_a_classifier_that_predicts_one_class_is_warned_about(tmp_path, caplog):
    import logging

    valid = _toy(1, n=8)
    valid.classes = ["rest", "task"]
    with caplog.at_level(logging.WARNING, logger="eegfm.finetune"):
        report = evaluate(_one_class_model(), valid, name="the test subjects")
    assert report["confusion_matrix"] == [[4, 0], [4, 0]] and report["cohen_kappa"] == 0.0
    assert report["balanced_accuracy"] == 0.5
    assert [(r.levelname, r.name) for r in caplog.records] == [("WARNING", "eegfm.finetune")]
    assert ("predicts one class on the test subjects: all 8 predictions are class 'rest'"
            in caplog.records[0].getMessage())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eegfm.finetune"):
        evaluate(_one_class_model(), valid, warn=False)
    assert caplog.records == []
    # finetune(): the weights cannot move (lr 1e-12): one warning for the returned epoch, not one per epoch
    cfg = _toy_config(tmp_path, epochs=3, lr=1e-12)
    with caplog.at_level(logging.WARNING, logger="eegfm.finetune"):
        summary = finetune(_one_class_model(), _toy(0), cfg, valid=valid)
    messages = [r.getMessage() for r in caplog.records if r.name == "eegfm.finetune"]
    assert len(messages) == 1 and summary["warnings"] == messages and summary["best_epoch"] == 1
    assert "on the validation set (epoch 1, 8 examples): all 8 predictions are class 'rest'" in messages[0]

