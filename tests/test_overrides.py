from dataclasses import dataclass, field

import pytest

from eegfm.cli.overrides import ConfigError, apply_overrides, config_to_dict, describe


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
