"""``eegfm finetune``: pre-trained encoder + labelled windows from source metadata, cross-subject split,
validation subjects drawn from the training subjects, the end summary and its warnings."""

import json
import logging

import numpy as np
import pytest

from eegfm import MAPEClassifier, MAPEEncoder
from eegfm.cli.finetune import LabeledDataConfig, format_confusion, validation_split
from eegfm.cli.main import main
from eegfm.cli.overrides import ConfigError
from eegfm.finetune import LabeledEEG, one_class_warning

CLASSES = "--data.classes=rest,arithmetic,motor imagery (imagined left/right fist)"


def _args(tmp_path, run="run", *extra):
    encoder_dir = tmp_path / "encoder"
    if not encoder_dir.exists():
        MAPEEncoder(embed_dim=32, depth=1, num_heads=2, patch_size=100).save_pretrained(encoder_dir)
    return ["finetune", f"--pretrained={encoder_dir}", "--data.sources=sample", f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.label=task", CLASSES, "--data.window_seconds=2", "--finetune.epochs=2", "--finetune.batch_size=8",
            f"--finetune.run_dir={tmp_path / run}", "--finetune.progress=false", "--finetune.metrics=none", *extra]


def test_finetune_command_on_the_bundled_sample(tmp_path, capsys, caplog):
    args = _args(tmp_path, "run", "--data.test_subjects=sub-02")
    with caplog.at_level(logging.WARNING, logger="eegfm.finetune"):
        assert main(args) == 0
    out = capsys.readouterr().out
    lines = out[out.index("finetune: "):].strip().splitlines()  # a short summary, not the loop's raw dict
    assert lines[0].startswith("finetune: ") and "15 windows (3 classes)" in lines[0]
    assert lines[1].startswith("test subjects sub-02: balanced accuracy ") and "AUROC" in lines[1]
    assert "kappa" in lines[1] and "weighted F1" in lines[1] and lines[1].endswith("(16 windows)")
    assert lines[2].split() == ["true", "\\", "predicted", "|", "0", "1", "2"]
    assert lines[3].split()[:2] == ["0", "rest"] and lines[4].split()[:2] == ["1", "arithmetic"]
    assert lines[5].startswith("  2 motor imagery (imagined~ |")  # long names are cut
    matrix = [[int(v) for v in line.split("|")[1].split()] for line in lines[3:6]]
    # the sample has one training subject (S001): no validation subjects, said in a warning
    warnings = [line for line in lines if line.startswith("WARNING: ")]
    assert any("no validation subjects (the training data has 1 subject (S001)" in w for w in warnings)
    assert any("hold no example of class 'rest', 'arithmetic'" in w for w in warnings)  # S001: motor imagery only
    logged = [r.getMessage() for r in caplog.records if r.name == "eegfm.finetune"]
    assert [f"WARNING: {m}" for m in logged] == warnings  # each one logged, each one in the summary
    assert lines[-2] == f"model: {tmp_path / 'run' / 'model'} (MAPEClassifier.from_pretrained; model card README.md)"
    assert lines[-1] == f"plots: {tmp_path / 'run' / 'plots'}/ (confusion, montage)"  # no metrics.csv, no validation
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["finetune"]["epochs"] == 2
    assert main(args) == 2  # the same run directory again: refused, with the fine-tuning keys
    err = capsys.readouterr().err
    assert "continue it with --finetune.resume=true" in err and "--overwrite" in err
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["windows"] == {"train": 15, "valid": 0, "test": 16}  # eegbci 30 s -> 15; eegmat 2 x 16 s -> 16
    assert evaluation["subjects"] == {"train": ["S001"], "valid": [], "test": ["sub-02"]}
    test = evaluation["test"]
    assert evaluation["classes"][:2] == ["rest", "arithmetic"] and 0 <= test["auroc"] <= 1
    assert test["confusion_matrix"] == matrix and np.sum(matrix, axis=1).tolist() == [8, 8, 0]
    assert {"cohen_kappa", "weighted_f1", "balanced_accuracy"} <= set(test) and "valid" not in evaluation
    assert evaluation["config"]["patience"] is None and evaluation["warnings"] == [w[9:] for w in warnings]
    model = MAPEClassifier.from_pretrained(tmp_path / "run" / "model")
    assert model.n_outputs == 3 and model.encoder.embed_dim == 32
    classes = ["rest", "arithmetic", "motor imagery (imagined left/right fist)"]
    assert model.class_names == classes  # config.json names the outputs
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["class_names"] == classes
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "| 2 | motor imagery (imagined left/right fist) |" in card  # the classes table
    # the data the weights were fitted on: the training subject S001 (its 64-channel recording)
    assert "| Sources | eegfm-sample |" in card and "| Subjects | 1 |" in card and "| Recordings | 1 |" in card
    assert "| Channel counts | 64 |" in card and "| l_freq | 0.5 |" not in card  # this run's 0.1 Hz contract
    assert "| l_freq | 0.1 |" in card and f"- Initialised from: {tmp_path / 'encoder'}" in card
    assert f"eegfm finetune --config {tmp_path / 'run' / 'run_config.json'}\n" in card
    assert "'--data.classes=rest,arithmetic,motor imagery (imagined left/right fist)'" in card  # quoted for bash
    row = (f"| the 'task' label of eegfm-sample, test subjects sub-02 (held out: cross-subject), 16 windows | "
           f"this model | balanced accuracy | 0 (n=1) | {test['balanced_accuracy']:.3f} ± 0.000 |")
    assert row in card and "| AUROC | 0 (n=1) |" in card and "- seed: 0" in card
    assert "- test subjects: sub-02" in card and "- validation subjects: none" in card
    assert all(w in card for w in evaluation["warnings"])  # the run's warnings are limitations
    assert {p.name for p in (tmp_path / "run" / "plots").iterdir()} == {"confusion.png", "montage.png"}


def test_finetune_command_validates_every_epoch_on_drawn_subjects(tmp_path, capsys):
    """Without test subjects, one of the two subjects is drawn for validation; early stopping is on by default."""
    assert main(_args(tmp_path, "run", "--finetune.epochs=3", "--finetune.metrics=csv", "--finetune.seed=4")) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["finetune"]["patience"] == 5
    assert evaluation["config"]["patience"] == 5 and evaluation["config"]["select_best"] is True
    subjects = evaluation["subjects"]
    assert sorted(subjects["train"] + subjects["valid"]) == ["S001", "sub-02"] and len(subjects["valid"]) == 1
    assert subjects["test"] == [] and "test" not in evaluation
    history = evaluation["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and all("confusion_matrix" in h for h in history)
    assert 1 <= evaluation["best_epoch"] <= 3 and "cohen_kappa" in evaluation["valid"]
    line = next(x for x in out.splitlines() if x.startswith("validation subjects "))
    assert line.startswith(f"validation subjects {subjects['valid'][0]}: best epoch {evaluation['best_epoch']} of 3, "
                           "balanced accuracy ")
    assert "true \\ predicted" in out  # the validation confusion matrix when there are no test subjects
    # the validation matrix and the one-class warning agree
    collapsed = one_class_warning(evaluation["valid"]["confusion_matrix"]) is not None
    assert collapsed == any("predicts one class on the validation set" in w for w in evaluation["warnings"])
    run = tmp_path / "run"
    assert {p.name for p in (run / "plots").iterdir()} == {"loss.png", "validation.png", "confusion.png", "montage.png"}
    assert all((run / "plots" / p).stat().st_size > 5000 for p in ("loss.png", "validation.png", "confusion.png"))
    card = (run / "model" / "README.md").read_text()
    valid = subjects["valid"][0]
    row = (f"| the 'task' label of eegfm-sample, validation subjects {valid} (chose the epoch), "
           f"{evaluation['windows']['valid']} windows | this model | "
           f"balanced accuracy | 4 (n=1) | {evaluation['valid']['balanced_accuracy']:.3f} ± 0.000 |")
    assert row in card and "test subjects" not in card.split("## Downstream results")[1].split("##")[0]
    assert f"- weights of epoch: {evaluation['best_epoch']} of 3 (best by balanced_accuracy)" in card
    assert "No test subjects: the validation figures chose the epoch, so they are optimistic." in card


def test_validation_split_by_subject():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(10)], 3)
    data = LabeledEEG.from_arrays(rng.standard_normal((30, 2, 100)), np.arange(30) % 2, ["Cz", "Pz"], sfreq=100.0,
                                  groups=groups)
    train, valid, chosen = validation_split(data, LabeledDataConfig())
    assert len(chosen) == 2 and len(valid) == 6 and len(train) == 24  # 20 % of 10 subjects
    assert not set(train.groups) & set(valid.groups) and sorted(valid.groups.tolist()) == sorted(chosen * 3)
    assert validation_split(data, LabeledDataConfig())[2] == chosen  # the same seed, the same subjects
    assert validation_split(data, LabeledDataConfig(split_seed=1))[2] != chosen
    assert validation_split(data, LabeledDataConfig(valid_subjects=["s3"]))[2] == ["s3"]
    assert validation_split(data, LabeledDataConfig(valid_fraction=0.0))[1] is None
    one = data.subset(np.flatnonzero(groups == "s0"))
    assert validation_split(one, LabeledDataConfig())[1] is None  # one subject: no validation
    assert len(validation_split(data.subset(np.arange(6)), LabeledDataConfig(valid_fraction=0.9))[2]) == 1  # n-1
    with pytest.raises(ValueError, match="--data.valid_subjects s99 are not among the training subjects"):
        validation_split(data, LabeledDataConfig(valid_subjects=["s99"]))
    with pytest.raises(ValueError, match="leaves no subject to train on"):
        validation_split(one, LabeledDataConfig(valid_subjects=["s0"]))


def test_confusion_matrix_lines():
    lines = format_confusion([[12, 3], [0, 100]], ["rest", "a very long class name indeed, cut"], width=10)
    assert lines == ["  true \\ predicted |   0   1",
                     "  0 rest           |  12   3",
                     "  1 a very lo~     |   0 100"]


def test_finetune_command_rejects_bad_settings(tmp_path, capsys):
    assert main(["finetune", "--finetune.epoch=3"]) == 2
    assert "Did you mean --finetune.epochs" in capsys.readouterr().err
    assert main(["finetune", "--pretrained=", "--finetune.mode=probe", f"--data.cache_dir={tmp_path}"]) == 2
    assert "mode must be one of" in capsys.readouterr().err
    assert main(["finetune", "--pretrained=", "--data.valid_fraction=1", f"--data.cache_dir={tmp_path}"]) == 2
    assert "--data.valid_fraction must be in [0, 1), got 1.0" in capsys.readouterr().err
    assert main(["finetune", "--pretrained=", "--data.valid_subjects=7", "--data.test_subjects=7,8",
                 f"--data.cache_dir={tmp_path}"]) == 2
    assert "subjects 7 are in both --data.valid_subjects and --data.test_subjects" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Did you mean --finetune.epochs"):
        main(["--debug", "finetune", "--finetune.epoch=3"])
