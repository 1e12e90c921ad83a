"""Fine-tuning loop: a real smoke test, linear probing, saving, resume, config errors."""

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
