"""benchmarks/pool_downstream.py: pooling finished harness calls by seed, from their JSON alone."""

import json
from pathlib import Path

import pytest

from conftest import load_script

FOLDS = [{"fold": 0, "test": ["S001"], "val": ["S002"], "train": ["S003", "S004"], "n_examples": {"test": 45}},
         {"fold": 1, "test": ["S002"], "val": ["S003"], "train": ["S001", "S004"], "n_examples": {"test": 45}}]


def _load():
    return load_script("benchmarks/pool_downstream.py")


def _call(folder: Path, model: str, figures: dict, encoder=None, folds=FOLDS, partial=False) -> str:
    """A harness report with ``figures = {seed: balanced accuracy}`` (AUROC = +0.1, drop 0.5 = -0.05)."""
    seeds = {str(s): v for s, v in figures.items()}
    rows = [{"fold": f["fold"], "seed": s, "test": {"balanced_accuracy": v + 0.01 * f["fold"]},
             "valid": {"balanced_accuracy": v - 0.02 + 0.02 * f["fold"]}} for s, v in seeds.items() for f in folds]
    result = {"aggregate": {"balanced_accuracy": {"per_seed": seeds},
                            "auroc": {"per_seed": {s: v + 0.1 for s, v in seeds.items()}},
                            "fold_mean": {"balanced_accuracy": {"per_seed": seeds}}},
              "channel_drop": {"0.5": {"per_seed": {s: v - 0.05 for s, v in seeds.items()}}}, "rows": rows}
    folder.mkdir(parents=True)
    report = {"partial": partial, "folds": {"mi": folds}, "results": {"mi": {model: result}},
              "encoder": {"fingerprint": encoder} if encoder else None}
    (folder / "downstream.json").write_text(json.dumps(report))
    return str(folder)


def test_seeds_of_separate_calls_pool_into_one_arm_and_pair_per_seed(tmp_path, capsys):
    pool = _load()
    a1 = _call(tmp_path / "a1", "eegfm_pretrained", {0: 0.80, 1: 0.70}, encoder="e1")
    a2 = _call(tmp_path / "a2", "eegfm_pretrained", {2: 0.75}, encoder="e1")
    b = _call(tmp_path / "b", "eegfm_scratch", {0: 0.70, 1: 0.70, 2: 0.70, 3: 0.90})
    out = tmp_path / "pooled.json"
    report = pool.main(["--task", "mi", "--arm", f"pre={a1}:eegfm_pretrained,{a2}:eegfm_pretrained",
                        "--arm", f"scr={b}:eegfm_scratch", "--pair", "pre-scr", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    pre = report["arms"]["pre"]
    assert pre["balanced_accuracy"]["per_seed"] == {"0": 0.80, "1": 0.70, "2": 0.75}
    assert pre["balanced_accuracy"]["mean"] == pytest.approx(0.75) and pre["balanced_accuracy"]["n"] == 3
    assert pre["auroc"]["mean"] == pytest.approx(0.85) and pre["encoder"] == "e1"
    assert pre["validation"]["per_seed"]["0"] == pytest.approx(0.79)  # folds' validation, mean over folds
    assert pre["per_fold_mean_over_seeds"] == {"0": pytest.approx(0.75), "1": pytest.approx(0.76)}
    pair = report["pairs"]["pre-scr"]["balanced_accuracy"]
    assert pair["seeds"] == [0, 1, 2] and pair["differences"] == pytest.approx([0.10, 0.0, 0.05])  # seed 3 unpaired
    assert pair["n_better"] == 2 and pair["mean"] == pytest.approx(0.05)
    assert report["pairs"]["pre-scr"]["channel_drop"]["0.5"]["mean"] == pytest.approx(0.05)
    assert report["folds"] == [{k: f[k] for k in ("fold", "test", "val", "train")} for f in FOLDS]
    assert "paired +0.050" in capsys.readouterr().out


def test_a_seed_reported_twice_is_kept_once_when_equal_and_refused_when_not(tmp_path):
    pool = _load()
    a1 = _call(tmp_path / "a1", "eegfm_scratch", {0: 0.8})
    same = _call(tmp_path / "same", "eegfm_scratch", {0: 0.8, 1: 0.6})
    other = _call(tmp_path / "other", "eegfm_scratch", {0: 0.7})
    report = pool.main(["--task", "mi", "--arm", f"s={a1}:eegfm_scratch,{same}:eegfm_scratch"])
    assert report["arms"]["s"]["balanced_accuracy"]["per_seed"] == {"0": 0.8, "1": 0.6}
    assert report["arms"]["s"]["per_fold_mean_over_seeds"] == {"0": pytest.approx(0.7), "1": pytest.approx(0.71)}
    with pytest.raises(SystemExit, match="seed 0 appears twice with different figures"):
        pool.main(["--task", "mi", "--arm", f"s={a1}:eegfm_scratch,{other}:eegfm_scratch"])


def test_calls_that_cannot_be_pooled_are_refused_with_the_reason(tmp_path):
    pool = _load()
    ok = _call(tmp_path / "ok", "eegfm_pretrained", {0: 0.8}, encoder="e1")
    moved = [dict(FOLDS[0], test=["S004"]), FOLDS[1]]
    cases = {
        "other folds": (_call(tmp_path / "f", "eegfm_pretrained", {1: 0.8}, encoder="e1", folds=moved),
                        "folds differ"),
        "other encoder": (_call(tmp_path / "e", "eegfm_pretrained", {1: 0.8}, encoder="e2"),
                          "2 different pre-trained encoders"),
        "partial": (_call(tmp_path / "p", "eegfm_pretrained", {1: 0.8}, encoder="e1", partial=True),
                    "stopped before its last fold"),
        "missing": (str(tmp_path / "nowhere"), "no downstream.json there"),
    }
    for second, message in cases.values():
        with pytest.raises(SystemExit, match=message):
            pool.main(["--task", "mi", "--arm", f"a={ok}:eegfm_pretrained,{second}:eegfm_pretrained"])
    with pytest.raises(SystemExit, match="no model 'eegnet'"):
        pool.main(["--task", "mi", "--arm", f"a={ok}:eegnet"])
    with pytest.raises(SystemExit, match="no results for task 'ma'"):
        pool.main(["--task", "ma", "--arm", f"a={ok}:eegfm_pretrained"])
    with pytest.raises(SystemExit, match="is not PATH:MODEL"):
        pool.main(["--task", "mi", "--arm", f"a={ok}"])
    with pytest.raises(SystemExit, match="expected NAME=PATH:MODEL"):
        pool.main(["--task", "mi", "--arm", "a"])
    with pytest.raises(SystemExit, match="expected A-B with A and B among the arms"):
        pool.main(["--task", "mi", "--arm", f"a={ok}:eegfm_pretrained", "--pair", "a-b"])


def test_pre_training_runs_pool_into_one_arm_by_seed_and_pair_run_by_seed(tmp_path, capsys):
    pool = _load()
    r0 = _call(tmp_path / "r0", "eegfm_pretrained", {0: 0.80, 1: 0.70, 2: 0.90}, encoder="e0")
    r1 = _call(tmp_path / "r1", "eegfm_pretrained", {0: 0.70, 1: 0.80}, encoder="e1")
    b = _call(tmp_path / "b", "eegfm_scratch", {0: 0.70, 1: 0.80, 2: 0.50})
    arms = ["--arm", f"r0={r0}:eegfm_pretrained", "--arm", f"r1={r1}:eegfm_pretrained", "--arm", f"s={b}:eegfm_scratch"]
    report = pool.main(["--task", "mi", *arms, "--runs", "both=r0+r1", "--pair", "both-s"])
    both = report["arms"]["both"]
    assert both["runs"] == ["r0", "r1"] and both["encoders"] == ["e0", "e1"]
    # seed 2 is r0's only: not pooled
    assert both["balanced_accuracy"]["per_seed"] == {"0": pytest.approx(0.75), "1": pytest.approx(0.75)}
    assert both["auroc"]["per_seed"]["0"] == pytest.approx(0.85)
    assert both["channel_drop"]["0.5"]["per_seed"]["1"] == pytest.approx(0.70)
    assert both["per_run"] == {"r0": pytest.approx(0.80), "r1": pytest.approx(0.75)}
    pair = report["pairs"]["both-s"]
    assert pair["balanced_accuracy"]["differences"] == pytest.approx([0.05, -0.05])
    runs = pair["run_seed_pairs"]  # r0: +0.1, -0.1, +0.4; r1: 0, 0
    assert runs["differences"] == pytest.approx([0.10, -0.10, 0.40, 0.0, 0.0]) and runs["n"] == 5
    assert runs["n_better"] == 2 and runs["mean"] == pytest.approx(0.08)
    assert "run x seed pairs +0.080" in capsys.readouterr().out
    for spec, message in {"x=r0": "name two or more different arms", "x=r0+r0": "name two or more different arms",
                          "x=r0+zz": r"\['zz'\] are not arms", "s=r0+r1": "the name is already an arm",
                          "x": "expected NAME=ARM\\+ARM"}.items():
        with pytest.raises(SystemExit, match=message):
            pool.main(["--task", "mi", *arms, "--runs", spec])
    r2 = _call(tmp_path / "r2", "eegfm_pretrained", {5: 0.7}, encoder="e2")
    with pytest.raises(SystemExit, match="share no seed"):
        pool.main(["--task", "mi", "--arm", f"r0={r0}:eegfm_pretrained", "--arm", f"r2={r2}:eegfm_pretrained",
                   "--runs", "x=r0+r2"])
