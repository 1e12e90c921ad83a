"""benchmarks/downstream.py end to end at tiny size, on both tasks (real EEG from ../shared/data)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.real_data, pytest.mark.usefixtures("one_torch_thread")]


def _load():
    spec = importlib.util.spec_from_file_location("downstream", ROOT / "benchmarks" / "downstream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--ma-subjects", "02,03,04,05", "--mi-subjects", "1,2,3,4", "--folds", "2", "--seeds", "0,1",
        "--mi-seconds", "2",
        "--extras", "eeglab,uci,openbci", "--pretrain-eegbci-runs", "4,8,12",
        "--tokenizer-steps", "3", "--pretrain-steps", "3", "--pretrain-batch-size", "8", "--embed-dim", "16",
        "--depth", "1", "--heads", "2", "--code-dim", "8", "--num-codes", "16", "--finetune-epochs", "2",
        "--patience", "1", "--batch-size", "16", "--baseline-epochs", "2", "--baseline-patience", "1",
        "--channel-drop", "0.5", "--channel-dropout", "0.2", "--time-shift", "0.1", "--amplitude-scale", "0.1"]


def test_downstream_runs_every_model_on_both_tasks_without_leaks(tmp_path, shared_data):
    bench = _load()
    out, work = tmp_path / "out", tmp_path / "work"
    report = bench.main(["--data-root", str(shared_data), *TINY, "--out", str(out), "--work-dir", str(work)])
    saved = json.loads((out / "downstream.json").read_text())
    assert saved["partial"] is False and saved["seeds"] == [0, 1]
    assert saved["results"].keys() == report["results"].keys() == {"ma", "mi"}
    assert set(saved["results"]["ma"]) == {"eegfm_pretrained", "eegfm_linear", "eegfm_scratch", "eegnet", "shallow",
                                           "ts_lr"}
    assert set(saved["results"]["mi"]) == set(saved["results"]["ma"]) | {"csp_lda"}
    assert saved["data"]["ma"]["subjects"] == ["02", "03", "04", "05"]
    assert saved["data"]["mi"]["subjects"] == ["S001", "S002", "S003", "S004"]
    assert saved["data"]["mi"]["n_channels"] == [64] and saved["data"]["ma"]["n_channels"] == [19]

    for task, folds in saved["folds"].items():
        subjects = saved["data"][task]["subjects"]
        assert len(folds) == 2
        assert sorted(s for f in folds for s in f["test"]) == subjects  # every subject tested exactly once
        for f in folds:
            assert f["val"] and f["train"]
            assert not set(f["test"]) & set(f["val"]) and not set(f["test"]) & set(f["train"])
            assert sorted(f["test"] + f["val"] + f["train"]) == subjects
            # pre-training of this fold never saw its test subjects
            pre = saved["pretraining"][task]["folds"][str(f["fold"])]
            own = pre["subjects"]["eegmat" if task == "ma" else "eegbci"]
            assert not set(f["test"]) & set(own) and pre["excluded_test_subjects"] == f["test"]
            assert pre["recordings"]
            key = (lambda s: f"sub-{s}_") if task == "ma" else (lambda s: f"{s}R")
            for s in f["test"]:
                assert not any(key(s) in rec for rec in pre["recordings"]), (task, s)
            for s in f["train"] + f["val"]:  # the task's own non-test subjects are in, unlabelled
                assert any(key(s) in rec for rec in pre["recordings"]), (task, s)
            acc = pre["masked_accuracy"]
            assert 0 <= acc["baseline_accuracy"] <= 1 and all(0 <= v <= 1 for v in acc["accuracy"].values())
        # the tokenizer never saw any recording of the task's own dataset
        tok = saved["pretraining"][task]["tokenizer"]
        assert tok["subjects"]["eegmat" if task == "ma" else "eegbci"] == []
        assert not any(("eegmat" in k) if task == "ma" else ("eegmmidb" in k) for k in tok["recordings"])
        assert 0 < tok["codebook"]["usage"] <= 1
        assert any("OpenBCI" in s["source"] for s in tok["skipped"])  # no channel positions: skipped, counted

        for model, res in saved["results"][task].items():
            rows = res["rows"]
            classic = model in ("ts_lr", "csp_lda")
            expected = {(f, s) for f in (0, 1) for s in (["classic"] if classic else ["0", "1"])}
            assert {(r["fold"], r["seed"]) for r in rows} == expected, (task, model)
            for r in rows:
                assert 0 <= r["test"]["balanced_accuracy"] <= 1 and 0 <= r["test"]["auroc"] <= 1
                assert set(r["per_subject_balanced_accuracy"]) == set(saved["folds"][task][r["fold"]]["test"])
                assert set(r["channel_drop"]) == {"0.5"} and 0 <= r["channel_drop"]["0.5"] <= 1
            assert res["channel_drop"]["0.5"]["n"] == (1 if classic else 2)  # pooled per seed, like the headline
            agg = res["aggregate"]
            assert agg["balanced_accuracy"]["n"] == (1 if classic else 2)
            assert 0 <= agg["balanced_accuracy"]["mean"] <= 1 and 0 <= agg["auroc"]["mean"] <= 1
            # pooled over folds: the test predictions cover every example of the task once
            n_tested = sum(r["test"]["n"] for r in rows if r["seed"] == rows[0]["seed"])
            assert n_tested == saved["data"][task]["n_examples"]
        comp = saved["comparisons"][task]["eegfm_pretrained_vs_eegfm_scratch"]["balanced_accuracy"]
        assert comp["n_seeds"] == 2 and len(comp["differences"]) == 2
        assert comp["n_better"] + comp["n_worse"] <= 2
    for name in ("downstream.png", "paired_pretrained_vs_scratch.png", "summary.md"):
        assert (out / name).is_file()
    assert "eegfm_pretrained" in (out / "summary.md").read_text()
    assert "Channel-drop curve" in (out / "summary.md").read_text()

    # --reuse (here on one task): nothing is trained again, the figures are the same
    again = bench.main(["--data-root", str(shared_data), *TINY, "--tasks", "mi", "--out", str(tmp_path / "again"),
                        "--work-dir", str(work), "--reuse"])
    assert set(again["results"]) == {"mi"}
    for model, res in again["results"]["mi"].items():
        assert res["aggregate"] == saved["results"]["mi"][model]["aggregate"], model
        assert res["channel_drop"] == saved["results"]["mi"][model]["channel_drop"], model
        assert all(r["seconds"] == s["seconds"] for r, s in zip(res["rows"], saved["results"]["mi"][model]["rows"]))


def test_downstream_rejects_bad_arguments(shared_data, tmp_path):
    bench = _load()
    base = ["--data-root", str(shared_data), "--work-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"subjects \['99'\] are not in the ma data"):
        bench.main([*base, "--ma-subjects", "02,99"])
    with pytest.raises(SystemExit, match="--models"):
        bench.main([*base, "--models", "eegfm_pretrained,nope"])
    with pytest.raises(SystemExit, match="name the task"):
        bench.main([*base, "--test-subjects", "02,03"])
    with pytest.raises(SystemExit, match="--channel-drop"):
        bench.main([*base, "--channel-drop", "0.5,1.0"])


def test_folds_are_fixed_disjoint_and_validation_comes_from_training_subjects():
    bench = _load()
    subjects = [f"{i:02d}" for i in range(2, 32)]
    folds = bench.make_folds(subjects, 5, 0, 0.2)
    assert folds == bench.make_folds(subjects, 5, 0, 0.2)
    assert sorted(s for f in folds for s in f["test"]) == subjects
    for f in folds:
        assert len(f["test"]) == 6 and len(f["val"]) == 5 and len(f["train"]) == 19
        assert not set(f["val"]) & set(f["test"])
    fixed = bench.make_folds(subjects, 5, 0, 0.2, fixed_test=["30", "31"])
    assert len(fixed) == 1 and fixed[0]["test"] == ["30", "31"] and len(fixed[0]["val"]) == 6


def test_fixed_montage_models_lose_the_channels_eegfm_loses():
    import numpy as np

    from eegfm.finetune import LabeledEEG

    bench = _load()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 6, 40)).astype(np.float32) + 1.0  # never exactly 0
    data = LabeledEEG.from_arrays(X, np.arange(5) % 2, ["Fz", "Cz", "Pz", "Oz", "C3", "C4"], sfreq=200.0)
    zeroed = bench.zero_dropped_channels(data, 0.5, seed=7)
    dropped = data.drop_channels(0.5, seed=7)
    for i in range(5):
        kept = np.flatnonzero(np.abs(zeroed[i]).sum(1) > 0)
        assert len(kept) == 3
        np.testing.assert_array_equal(zeroed[i, kept], np.asarray(dropped.signals[i]))
        np.testing.assert_array_equal(np.asarray(dropped.positions[i]), np.asarray(data.positions[i])[kept])
