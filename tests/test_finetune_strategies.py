"""Fine-tuning strategies through one API (``FinetuneConfig.mode``): full, linear, lora, frozen.

Each learns a tiny separable task within seconds; linear and frozen leave the encoder
bit-identical; lora trains only adapters + head (+ pool) and returns a plain, merged
MAPEClassifier whose outputs equal the adapted model's; frozen's head gives sklearn's logits.
"""

import dataclasses
import re
import sys

import numpy as np
import pytest
import torch

from eegfm import MAPEClassifier, MAPEEncoder
from eegfm.finetune import FinetuneConfig, FinetuneTask, LabeledEEG, evaluate, finetune, predict
from eegfm.finetune import strategies, trainer
from eegfm.finetune.strategies import add_lora, frozen_features, merge_lora

ENC = dict(embed_dim=32, depth=1, num_heads=2, patch_size=100)
CHANNELS = ["Fz", "Cz", "Pz", "Oz"]
#: learning rate per gradient mode on the tiny task (a random-init encoder, 8 epochs)
LR = {"full": 1e-3, "linear": 1e-2, "lora": 1e-2, "frozen": 1e-3}
SUMMARY_KEYS = {"steps", "train", "config", "history", "best_epoch", "valid", "warnings"}


def _data(n_classes=2, n=96, seed=0, groups=4):
    """Class k: white noise of 10 * 3**k µV plus a 10-Hz rhythm of 30 * k µV (random phase), ``groups`` subjects."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    t = np.arange(200) / 200
    X = rng.normal(size=(n, len(CHANNELS), 200)) * 10 * (3.0 ** y)[:, None, None]
    X += 30 * y[:, None, None] * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi, size=(n, 1, 1)))
    return LabeledEEG.from_arrays(X.astype(np.float32), y, CHANNELS, sfreq=200,
                                  groups=np.repeat(np.arange(groups), n // groups))


@pytest.fixture(scope="module")
def split():
    return _data().split_by_group([3])  # train: subjects 0-2, valid: subject 3


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return MAPEEncoder(**ENC)


def _config(tmp_path, mode, **kw):
    base = dict(mode=mode, epochs=8, batch_size=16, lr=LR[mode], layer_decay=1.0, run_dir=str(tmp_path / mode),
                progress=False, metrics="none", checkpoint_every_epochs=100)
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.parametrize("mode", ["full", "linear", "lora", "frozen"])
def test_every_mode_learns_the_tiny_task_and_reports_the_same_summary(mode, split, encoder, tmp_path):
    train, valid = split
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    summary = finetune(model, train, _config(tmp_path, mode), valid=valid)
    assert SUMMARY_KEYS <= set(summary) and summary["config"]["mode"] == mode
    assert summary["valid"]["balanced_accuracy"] >= 0.8, summary["valid"]  # chance: 0.5
    assert evaluate(model, valid)["balanced_accuracy"] == pytest.approx(summary["valid"]["balanced_accuracy"],
                                                                        abs=1e-6)
    assert "loss" in summary["train"] and not model.training
    if mode == "frozen":
        assert summary["steps"] == 0 and summary["history"] == [] and summary["best_epoch"] is None
        assert summary["frozen"]["cv"] == "GroupKFold(3) over train.groups"  # 3 training subjects
    else:
        assert summary["steps"] > 0 and len(summary["history"]) == 8 and 1 <= summary["best_epoch"] <= 8
    # every mode saves a plain classifier that reloads with the same outputs
    reloaded = MAPEClassifier.from_pretrained(tmp_path / mode / "model")
    np.testing.assert_allclose(predict(reloaded, valid), predict(model, valid), atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "frozen"])
def test_linear_and_frozen_leave_the_encoder_bit_identical(mode, split, encoder, tmp_path):
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    head = model.head.weight.detach().clone()
    finetune(model, split[0], _config(tmp_path, mode, epochs=2), valid=split[1])
    for (name, p), q in zip(model.encoder.state_dict().items(), encoder.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert not torch.equal(model.head.weight, head)


def test_lora_trains_adapters_and_head_only_and_returns_the_merged_model(split, encoder, tmp_path, monkeypatch):
    train, valid = split
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2, pooling="attention")
    keys = list(model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable_seen, adapted = set(), {}

    step = FinetuneTask.training_step

    def recording_step(self, batch):
        trainable_seen.update(n for n, p in self.model.named_parameters() if p.requires_grad)
        return step(self, batch)

    def recording_merge(wrapper, *, merge=True):
        adapted["logits"] = predict(model, valid)  # the adapted (unmerged) model's outputs
        return merge_lora(wrapper, merge=merge)

    monkeypatch.setattr(FinetuneTask, "training_step", recording_step)
    monkeypatch.setattr(trainer, "merge_lora", recording_merge)
    summary = finetune(model, train, _config(tmp_path, "lora", lora_rank=4, lora_alpha=8, lora_dropout=0.0),
                       valid=valid)
    # only the adapters of the attention layers, the head and the attention pool had gradients
    assert trainable_seen == set(summary["lora"]["trainable"])
    assert all(".lora_A." in n or ".lora_B." in n or n.startswith(("head.", "pool.")) for n in trainable_seen)
    assert {n.split(".lora_")[0] for n in trainable_seen if ".lora_" in n} == {"encoder.blocks.0.attn.qkv",
                                                                                 "encoder.blocks.0.attn.proj"}
    assert any(n.startswith("pool.") for n in trainable_seen) and "head.weight" in trainable_seen
    assert summary["lora"]["trainable_parameters"] < summary["lora"]["parameters"] / 2
    # merged == adapted, and the model is a plain MAPEClassifier again
    np.testing.assert_allclose(predict(model, valid), adapted["logits"], rtol=1e-4, atol=1e-5)
    assert type(model) is MAPEClassifier and list(model.state_dict()) == keys
    assert not any("peft" in type(m).__module__ for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())  # the flags it came with
    after = model.state_dict()
    assert not torch.equal(after["encoder.blocks.0.attn.qkv.weight"], before["encoder.blocks.0.attn.qkv.weight"])
    for name in keys:  # only adapted layers, the head and the pool moved
        if not name.startswith(("encoder.blocks.0.attn.qkv.weight", "encoder.blocks.0.attn.proj.weight", "head.",
                                "pool.")):
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)


def test_lora_resume_after_a_crash_reaches_the_same_merged_weights(split, encoder, tmp_path):
    import shutil

    train, valid = split
    straight = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    cfg = dict(epochs=4, checkpoint_every_epochs=1, lora_rank=4)
    finetune(straight, train, _config(tmp_path, "lora", **cfg), valid=valid)
    ckpts = tmp_path / "lora" / "checkpoints"  # a crash after epoch 2 (72 windows: 4 batches of 16 per epoch)
    shutil.copyfile(ckpts / "step_0000008.pt", ckpts / "last.pt")
    resumed = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    summary = finetune(resumed, train, _config(tmp_path, "lora", resume=True, **cfg), valid=valid)
    assert summary["steps"] == 16 and [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
    torch.testing.assert_close(resumed.state_dict(), straight.state_dict())


@pytest.mark.parametrize("pooling", ["mean", "cls"])  # cls: the last block attends from the CLS token alone
def test_lora_merge_equals_the_adapted_model_with_mlp_targets(encoder, split, pooling):
    """add_lora / merge_lora directly: nonzero adapters on attention + MLP, merged outputs unchanged
    (with pooling="cls" too, whose last block must go through the adapted q/k/v projection)."""
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2, pooling=pooling).eval()
    wrapper = add_lora(model, rank=2, alpha=4, dropout=0.0, targets="attention+mlp", seed=1)
    names = {n.split(".lora_")[0] for n, _ in model.named_parameters() if ".lora_" in n}
    assert names == {f"encoder.blocks.0.{m}" for m in ("attn.qkv", "attn.proj", "mlp.0", "mlp.3")}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B." in n:  # zero at init; make the update nonzero
                p.normal_(std=0.5)
    adapted = predict(model, split[1])
    assert not np.allclose(adapted, predict(MAPEClassifier.from_encoder(encoder, n_outputs=2, pooling=pooling),
                                            split[1]))
    assert merge_lora(wrapper) is model
    np.testing.assert_allclose(predict(model, split[1]), adapted, rtol=1e-4, atol=1e-5)


def test_frozen_head_gives_sklearn_logits(encoder, tmp_path):
    """Binary: logit1 - logit0 = decision_function; 3 classes: log_softmax(logits) = predict_log_proba."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for n_classes in (2, 3):
        data = _data(n_classes=n_classes, n=60, groups=3)
        model = MAPEClassifier.from_encoder(encoder, n_outputs=n_classes)
        summary = finetune(model, data, _config(tmp_path, "frozen", run_dir=str(tmp_path / f"f{n_classes}")))
        info = summary["frozen"]
        assert info["param"] == "C" and info["value"] in info["grid"] and len(info["cv_scores"]) == len(info["grid"])
        X = frozen_features(model, data)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=info["value"], class_weight="balanced",
                                                                 max_iter=5000, random_state=0)).fit(X, data.labels)
        logits = predict(model, data).astype(np.float64)
        log_p = logits - logits.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        np.testing.assert_allclose(log_p, clf.predict_log_proba(X), atol=2e-4)
        if n_classes == 2:
            np.testing.assert_allclose(logits[:, 1] - logits[:, 0], clf.decision_function(X), rtol=1e-4, atol=2e-4)


def test_frozen_regression_is_a_cross_validated_ridge(encoder, tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = _data(n=48, groups=1)  # one group: shuffled KFold over examples
    target = LabeledEEG(data.signals, data.positions, data.labels.astype(np.float32) * 2 - 1, sfreq=200)
    model = MAPEClassifier.from_encoder(encoder, n_outputs=1)
    summary = finetune(model, target, _config(tmp_path, "frozen", task="regression"), valid=target)
    info = summary["frozen"]
    assert info["param"] == "alpha" and info["cv"] == "KFold(4) over examples" and info["monitor"] == "mse"
    assert summary["valid"]["r2"] > 0.5
    X = frozen_features(model, target)
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=info["value"])).fit(X, target.labels.reshape(-1, 1))
    np.testing.assert_allclose(predict(model, target), ridge.predict(X).reshape(-1, 1), rtol=1e-4, atol=1e-4)


def test_lora_config_defaults_and_round_trip():
    cfg = FinetuneConfig(mode="lora")
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets) == (16, 32.0, 0.1, "attention")
    assert FinetuneConfig(**dataclasses.asdict(cfg)) == cfg  # what the CLI does to re-validate
    full = FinetuneConfig()
    assert full.lora_rank is None and FinetuneConfig(**dataclasses.asdict(full)) == full


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="ridge"), "mode must be one of ('full', 'linear', 'lora', 'frozen'), got mode='ridge'"),
    (dict(mode="full", lora_rank=8), "lora_rank=8 applies to mode='lora' only, got mode='full'"),
    (dict(mode="frozen", lora_alpha=4.0), "lora_alpha=4.0 applies to mode='lora' only, got mode='frozen'"),
    (dict(lora_targets="attention"), "lora_targets='attention' applies to mode='lora' only"),
    (dict(mode="lora", lora_rank=0), "lora_rank must be an int >= 1"),
    (dict(mode="lora", lora_alpha=0), "lora_alpha must be > 0"),
    (dict(mode="lora", lora_dropout=1.0), "lora_dropout must be in [0, 1)"),
    (dict(mode="lora", lora_targets="mlp"), "lora_targets must be one of ('attention', 'attention+mlp')"),
])
def test_bad_strategy_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        FinetuneConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_missing_optional_packages_say_what_to_install(split, encoder, tmp_path, monkeypatch):
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"^mode='lora' needs peft: pip install peft \(or pip install "
                                          r"'eegfm\[finetune\]'\)$"):
        finetune(model, split[0], _config(tmp_path, "lora"))
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"^mode='frozen' needs scikit-learn: pip install scikit-learn"):
        finetune(model, split[0], _config(tmp_path, "frozen"))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def test_frozen_needs_two_classes_and_a_linear_head(split, encoder, tmp_path):
    train = split[0]
    one_class = train.subset(np.flatnonzero(train.labels == 0))
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    with pytest.raises(ValueError, match=r"mode='frozen' needs at least two classes in the training set, "
                                         r"got only \[0\]"):
        finetune(model, one_class, _config(tmp_path, "frozen"))
    with pytest.raises(TypeError, match="mode='lora': Linear has no linear layers named encoder.blocks"):
        strategies.lora_target_names(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------- eegfm finetune --finetune.mode=...
def _cli_args(tmp_path, run, *extra):
    encoder_dir = tmp_path / "encoder"
    if not encoder_dir.exists():
        torch.manual_seed(0)
        MAPEEncoder(**ENC).save_pretrained(encoder_dir)
    return ["finetune", f"--pretrained={encoder_dir}", "--data.sources=sample",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.label=task", "--data.classes=rest,arithmetic,motor imagery (imagined left/right fist)",
            "--data.window_seconds=2",
            "--finetune.epochs=2", "--finetune.batch_size=8", f"--finetune.run_dir={tmp_path / run}",
            "--finetune.progress=false", "--finetune.metrics=none", *extra]


def _plain_keys(n_outputs=3):
    return list(MAPEClassifier(n_outputs=n_outputs, encoder=ENC).state_dict())


def test_cli_finetune_mode_lora(tmp_path):
    import json

    from eegfm.cli.main import main

    assert main(_cli_args(tmp_path, "lora", "--finetune.mode=lora", "--finetune.lora_rank=4")) == 0
    evaluation = json.loads((tmp_path / "lora" / "evaluation.json").read_text())
    assert evaluation["config"]["mode"] == "lora" and evaluation["config"]["lora_rank"] == 4
    assert evaluation["config"]["lora_alpha"] == 32.0 and evaluation["lora"]["targets"] == "attention"
    assert len(evaluation["history"]) == 2 and evaluation["steps"] > 0  # validated on the drawn subject
    assert all(".lora_" in n or n.startswith("head.") for n in evaluation["lora"]["trainable"])
    model = MAPEClassifier.from_pretrained(tmp_path / "lora" / "model")  # merged: the plain layout
    assert list(model.state_dict()) == _plain_keys()


def test_cli_finetune_mode_frozen(tmp_path):
    import json

    from eegfm.cli.main import main

    encoder_dir = tmp_path / "encoder"
    assert main(_cli_args(tmp_path, "frozen", "--finetune.mode=frozen", "--data.valid_fraction=0")) == 0
    evaluation = json.loads((tmp_path / "frozen" / "evaluation.json").read_text())
    assert evaluation["steps"] == 0 and evaluation["config"]["mode"] == "frozen"
    assert evaluation["frozen"]["cv"] == "GroupKFold(2) over train.groups"  # S001 and sub-02
    assert evaluation["frozen"]["value"] in evaluation["frozen"]["grid"]
    model = MAPEClassifier.from_pretrained(tmp_path / "frozen" / "model")
    assert list(model.state_dict()) == _plain_keys()
    encoder = MAPEEncoder.from_pretrained(encoder_dir)
    for (name, p), q in zip(model.encoder.state_dict().items(), encoder.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_cli_finetune_mode_frozen_summary_names_the_fit(tmp_path, capsys):
    from eegfm.cli.main import main

    assert main(_cli_args(tmp_path, "frozen", "--finetune.mode=frozen", "--data.valid_subjects=S001")) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("validation subjects S001: "))
    assert line.startswith("validation subjects S001: standardised logistic regression on frozen features, C=")
    assert "by StratifiedKFold(4) over examples (one group), balanced accuracy " in line  # trained on sub-02 only


def test_cli_finetune_rejects_lora_fields_in_other_modes(tmp_path, capsys):
    from eegfm.cli.main import main

    assert main(["finetune", "--pretrained=", "--finetune.lora_rank=4", f"--data.cache_dir={tmp_path}"]) == 2
    assert "lora_rank=4 applies to mode='lora' only, got mode='full'" in capsys.readouterr().err


def test_training_checks_every_example_once_before_and_no_batch_in_its_steps(split, encoder, tmp_path, monkeypatch):
    """finetune() checks each training example up front, so its steps run the encoder without the
    per-batch input check (a device-to-host sync per step on a GPU)."""
    from eegfm.modules import input_stage

    checked_batches = []
    original = input_stage.check_finite_inputs

    def counting(x, *args, **kwargs):
        checked_batches.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(input_stage, "check_finite_inputs", counting)
    train, _ = split
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    summary = finetune(model, train, _config(tmp_path, "full", epochs=2))
    assert summary["steps"] == 2 * (len(train) // 16)
    assert checked_batches == [1] * len(train)  # one check per example, none per training batch


def test_a_nan_training_example_is_named_before_training(split, encoder, tmp_path):
    train, _ = split
    signals = [np.array(s) for s in train.signals]
    signals[5][2, 17] = np.nan
    bad = LabeledEEG(signals, train.positions, train.labels, sfreq=train.sfreq, groups=train.groups)
    model = MAPEClassifier.from_encoder(encoder, n_outputs=2)
    with pytest.raises(ValueError, match=r"^training example 5: x\[0, 2\] .* has a NaN/Inf sample"):
        finetune(model, bad, _config(tmp_path, "full", epochs=1))
    assert not (tmp_path / "full").exists() or not any((tmp_path / "full").rglob("*.pt"))  # nothing trained
