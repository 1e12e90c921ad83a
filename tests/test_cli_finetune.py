"""``eegfm finetune``: pre-trained encoder + labelled windows from source metadata, cross-subject split."""

import json

import pytest

from eegfm import MAPEClassifier, MAPEEncoder
from eegfm.cli.main import main
from eegfm.cli.overrides import ConfigError


def test_finetune_command_on_the_bundled_sample(tmp_path, capsys):
    encoder_dir = tmp_path / "encoder"
    MAPEEncoder(embed_dim=32, depth=1, num_heads=2, patch_size=100).save_pretrained(encoder_dir)
    args = ["finetune", f"--pretrained={encoder_dir}", "--data.sources=sample", f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.label=task", "--data.classes=rest,arithmetic,motor imagery (imagined left/right fist)",
            "--data.window_seconds=2", "--finetune.epochs=2", "--finetune.batch_size=8",
            f"--finetune.run_dir={tmp_path / 'run'}", "--finetune.progress=false", "--finetune.metrics=none",
            "--data.test_subjects=sub-02"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test subjects sub-02: balanced_accuracy" in out
    lines = out[out.index("finetune: "):].strip().splitlines()  # a short summary, not the loop's raw dict
    assert len(lines) == 3 and lines[0].startswith("finetune: ") and "15 windows (3 classes)" in lines[0]
    assert lines[2] == f"model: {tmp_path / 'run' / 'model'} (MAPEClassifier.from_pretrained)"
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["finetune"]["epochs"] == 2
    assert main(args) == 2  # the same run directory again: refused, with the fine-tuning keys
    err = capsys.readouterr().err
    assert "continue it with --finetune.resume=true" in err and "--overwrite" in err
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["windows"] == {"train": 15, "test": 16}  # eegbci 30 s -> 15; eegmat 2 x 16 s -> 16
    assert evaluation["classes"][:2] == ["rest", "arithmetic"] and 0 <= evaluation["valid"]["auroc"] <= 1
    model = MAPEClassifier.from_pretrained(tmp_path / "run" / "model")
    assert model.n_outputs == 3 and model.encoder.embed_dim == 32


def test_finetune_command_rejects_bad_settings(tmp_path, capsys):
    assert main(["finetune", "--finetune.epoch=3"]) == 2
    assert "Did you mean --finetune.epochs" in capsys.readouterr().err
    assert main(["finetune", "--pretrained=", "--finetune.mode=probe", f"--data.cache_dir={tmp_path}"]) == 2
    assert "mode must be one of" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Did you mean --finetune.epochs"):
        main(["--debug", "finetune", "--finetune.epoch=3"])
