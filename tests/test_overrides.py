import json
from dataclasses import dataclass, field

import pytest

from eegfm.cli.overrides import ConfigError, apply_mapping, apply_overrides, config_to_dict, describe, field_help


@dataclass
class Train:
    steps: int = 10
    lr: float = 1e-3
    amp: str = "auto"
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class Run:
    name: str = "run"
    push_to_hub: str | None = None
    progress: bool = True
    strategies: list[str] = field(default_factory=lambda: ["random", "channel"])
    train: Train = field(default_factory=Train)


def test_typed_values_and_nested_keys():
    base = Run()
    cfg = apply_overrides(base, ["--train.steps=300", "--train.lr=5e-4", "--progress=false",
                                 "--push_to_hub=me/model", "--strategies=temporal", "--train.betas=0.8,0.9",
                                 "--push-to-hub=me/other"])
    assert (cfg.train.steps, cfg.train.lr, cfg.progress) == (300, 5e-4, False)
    assert cfg.push_to_hub == "me/other" and cfg.strategies == ["temporal"] and cfg.train.betas == (0.8, 0.9)
    assert base.train.steps == 10 and base.progress is True  # the input is not mutated
    assert apply_overrides(cfg, ["--push_to_hub=none"]).push_to_hub is None
    assert config_to_dict(cfg)["train"]["steps"] == 300
    assert "--train.steps=10" in describe(base)


def test_unknown_and_bad_values_are_errors():
    with pytest.raises(ConfigError, match=r"unknown config key --train.step\. Did you mean --train.steps\?"):
        apply_overrides(Run(), ["--train.step=3"])
    with pytest.raises(ConfigError, match="--train.steps expects int, got 'many'"):
        apply_overrides(Run(), ["--train.steps=many"])
    with pytest.raises(ConfigError, match="--progress expects true/false, got 'maybe'"):
        apply_overrides(Run(), ["--progress=maybe"])
    with pytest.raises(ConfigError, match="must look like --key=value"):
        apply_overrides(Run(), ["--progress"])


def test_a_saved_config_reads_back_with_its_types():
    cfg = apply_overrides(Run(), ["--train.steps=3", "--train.lr=1", "--push_to_hub=me/x", "--strategies=temporal"])
    saved = json.loads(json.dumps(config_to_dict(cfg)))  # as run_config.json holds it: lists, 1 for 1.0
    back = apply_mapping(Run(), saved)
    assert back == cfg and back.train.betas == (0.9, 0.98) and isinstance(back.train.lr, float)
    assert apply_mapping(Run(), {"train": {"steps": 5}}, skip=("name",)).train.steps == 5  # missing keys: defaults
    assert apply_mapping(Run(), {"name": "other"}, skip=("name",)).name == "run"
    with pytest.raises(ConfigError, match="f.json has the key 'train.epochs', which this command does not take"):
        apply_mapping(Run(), {"train": {"epochs": 3}}, origin="f.json")
    with pytest.raises(ConfigError, match="f.json: train.steps must be int, got 'many'"):
        apply_mapping(Run(), {"train": {"steps": "many"}}, origin="f.json")


@dataclass
class Helped:
    # a section title belongs to no field
    steps: int = 10  # optimizer steps
    lr: float = 1e-3
    name: str = field(default="x", metadata={"help": "from the metadata"})
    ratios: list[float] = field(default_factory=lambda: [0.5,  # first
                                                         0.25])  # second


def test_help_texts_come_from_field_comments_or_metadata():
    assert field_help(Helped, "steps") == "optimizer steps"
    assert field_help(Helped, "lr") == ""
    assert field_help(Helped, "name") == "from the metadata"
    assert field_help(Helped, "ratios") == "first second"
    lines = describe(Helped(), width=80).splitlines()
    assert lines[0].split() == ["--steps=10", "optimizer", "steps"] and lines[1].strip() == "--lr=0.001"
    assert describe(Run()).count("--train.") == 4 and "--progress=true" in describe(Run())


def test_fine_tuning_settings_share_the_training_loop_help():
    from eegfm.finetune import FinetuneConfig
    from eegfm.training import TrainConfig

    assert field_help(FinetuneConfig, "seed") == field_help(TrainConfig, "seed") != ""
    assert field_help(FinetuneConfig, "amp") == field_help(TrainConfig, "amp")  # its comment only points there
    assert field_help(FinetuneConfig, "epochs") and field_help(TrainConfig, "betas")
