"""benchmarks/downstream.py end to end at tiny size, on both tasks (real EEG from ../shared/data)."""

import json
import shutil

import pytest

from conftest import load_script


pytestmark = [pytest.mark.slow, pytest.mark.real_data, pytest.mark.usefixtures("one_torch_thread")]


def _load():
    return load_script("benchmarks/downstream.py")


TINY = ["--ma-subjects", "02,03,04,05", "--mi-subjects", "1,2,3,4", "--folds", "2", "--seeds", "0,1",
        "--mi-seconds", "2",
        "--extras", "eeglab,uci,openbci", "--pretrain-eegbci-runs", "4",
        "--tokenizer-steps", "3", "--pretrain-steps", "3", "--pretrain-batch-size", "8", "--embed-dim", "16",
        "--depth", "1", "--heads", "2", "--code-dim", "8", "--num-codes", "16", "--finetune-epochs", "1",
        "--patience", "1", "--batch-size", "16", "--baseline-epochs", "1", "--baseline-patience", "1",
        "--channel-drop", "0.5", "--channel-dropout", "0.2", "--time-shift", "0.1", "--amplitude-scale", "0.1"]


def _final_figures_only(bench, monkeypatch):
    """The figures of the finished report only: the partial reports written after each fold (for an
    interrupted run) redraw the same two figures, which no test here looks at."""
    plot = bench.plot
    monkeypatch.setattr(bench, "plot", lambda report, out: None if report["partial"] else plot(report, out))


def test_downstream_runs_every_model_on_both_tasks_without_leaks(tmp_path, shared_data, monkeypatch):
    bench = _load()
    _final_figures_only(bench, monkeypatch)
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


# ---------------------------------------------------------------------------------- --encoder, --pretrain-target
ENCODER_RUN = ["--ma-subjects", "02,03,04", "--mi-subjects", "1,2,3", "--test-subjects", "ma:04;mi:3",
               "--seeds", "0", "--mi-seconds", "2", "--finetune-epochs", "2", "--patience", "1", "--batch-size", "16",
               "--channel-dropout", "0.3", "--time-shift", "0.5", "--amplitude-scale", "0.2"]


def _tiny_encoder_run(folder, sources: str):
    """An `eegfm pretrain`-like run folder: a tiny MAPEEncoder in encoder/ and a run_config.json naming ``sources``."""
    from eegfm import MAPEEncoder

    MAPEEncoder(patch_size=100, embed_dim=16, depth=1, num_heads=2).save_pretrained(folder / "encoder")
    (folder / "run_config.json").write_text(json.dumps({"model": {"target": "spectrum"},
                                                        "data": {"sources": sources}}))
    return folder


def test_encoder_whose_corpus_holds_a_test_subject_is_refused(shared_data, tmp_path):
    bench = _load()
    base = ["--data-root", str(shared_data), "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            "--models", "eegfm_lora,eegnet"]
    eegmat, eegbci = shared_data / "eegmat_bids", shared_data / "eegbci"
    # a run folder (encoder/ inside) whose corpus has the MA test subject 04, and the encoder folder itself
    leaky = _tiny_encoder_run(tmp_path / "leaky", f"bids:{eegmat}:02,04;eegbci:{eegbci}:1:4")
    for given in (leaky, leaky / "encoder"):
        with pytest.raises(SystemExit, match=r"contains ma test subject\(s\) 04: refusing") as err:
            bench.main([*base, *ENCODER_RUN, "--encoder", str(given)])
        assert "\n" not in str(err.value) and "leaky/run_config.json" in str(err.value)
    # MI: eegmmidb subject numbers (test subject 3)
    leaky_mi = _tiny_encoder_run(tmp_path / "leaky_mi", f"bids:{eegmat}:02;eegbci:{eegbci}:1,3:4")
    with pytest.raises(SystemExit, match=r"contains mi test subject\(s\) S003: refusing"):
        bench.main([*base, *ENCODER_RUN, "--encoder", str(leaky_mi)])
    # folds: every subject is tested in some fold, so any of the task's subjects in the corpus is a leak
    clean = _tiny_encoder_run(tmp_path / "clean", f"bids:{eegmat}:02,03")
    folds_message = "each a test subject of some fold.*--test-subjects.*pre-train per fold"
    with pytest.raises(SystemExit, match=folds_message) as err:
        bench.main([*base, "--tasks", "ma", "--ma-subjects", "02,03,04", "--folds", "3", "--encoder", str(clean)])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # refused before anything was trained or written


def test_encoder_runs_lora_and_frozen_with_the_channel_drop_curve(shared_data, tmp_path, capsys):
    bench = _load()
    eegmat, eegbci = shared_data / "eegmat_bids", shared_data / "eegbci"
    # the corpus holds the tasks' training / validation subjects (allowed, unlabelled), never a test subject
    run = _tiny_encoder_run(tmp_path / "run", f"bids:{eegmat}:02,03;eegbci:{eegbci}:1,2:4,8")
    out, work = tmp_path / "out", tmp_path / "work"
    common = ["--data-root", str(shared_data), *ENCODER_RUN, "--models", "eegfm_lora,eegfm_frozen_lr",
              "--work-dir", str(work)]
    report = bench.main([*common, "--out", str(out), "--encoder", str(run)])
    saved = json.loads((out / "downstream.json").read_text())
    assert saved["results"].keys() == {"ma", "mi"} and report["encoder"] == saved["encoder"]
    enc = saved["encoder"]
    assert enc["path"] == str(run) and enc["encoder_dir"] == str(run / "encoder") and enc["corpus_checked"] is True
    assert enc["run_config_file"] == str(run / "run_config.json") and enc["sources"].startswith("bids:")
    assert enc["config"]["embed_dim"] == 16 and enc["corpus_subjects"] == {"ma": ["02", "03"], "mi": ["S001", "S002"]}
    assert saved["pretrain_target"] is None
    assert "lora_lr" in saved["config"] and bench.eegfm_lr("eegfm_lora", bench.build_parser().parse_args([])) == 3e-4
    for task in ("ma", "mi"):
        assert saved["pretraining"][task] == {"tokenizer": None, "folds": {}, "encoder": str(run / "encoder")}
        assert set(saved["results"][task]) == {"eegfm_lora", "eegfm_frozen_lr"}
        for model, res in saved["results"][task].items():
            assert set(res["channel_drop"]) == {"0.3", "0.5", "0.7"}, (task, model)  # the default curve
            assert all(res["channel_drop"][q]["n"] == 1 for q in ("0.3", "0.5", "0.7"))
            (row,) = res["rows"]
            assert set(row["channel_drop"]) == {"0.3", "0.5", "0.7"}
            assert all(0 <= v <= 1 for v in row["channel_drop"].values())
            assert 0 <= row["test"]["balanced_accuracy"] <= 1
    assert not (work / "ma" / "tokenizer").exists() and not (work / "ma" / "fold0" / "pretrain").exists()
    assert "eegfm models start from the given encoder" in (out / "summary.md").read_text()

    # the same weights without a run_config.json: a loud warning, corpus_checked false (rows reused: same weights)
    shutil.copytree(run / "encoder", tmp_path / "bare")
    capsys.readouterr()
    again = bench.main([*common, "--tasks", "ma", "--out", str(tmp_path / "again"), "--encoder",
                        str(tmp_path / "bare"), "--reuse"])
    printed = capsys.readouterr().out
    assert "WARNING" in printed and "could NOT be checked" in printed
    assert again["encoder"]["corpus_checked"] is False and again["encoder"]["sources"] is None
    assert again["results"]["ma"]["eegfm_lora"]["aggregate"] == saved["results"]["ma"]["eegfm_lora"]["aggregate"]
    assert "could NOT be checked" in (tmp_path / "again" / "summary.md").read_text()


@pytest.mark.parametrize("target,visible_blocks", [("spectrum", 0), ("spectrum_slow", 1)])
def test_spectrum_pretraining_trains_no_tokenizer(target, visible_blocks, shared_data, tmp_path, capsys):
    bench = _load()
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--data-root", str(shared_data), "--tasks", "ma", "--ma-subjects", "02,03,04,05", "--mi-subjects", "1",
            "--folds", "2", "--seeds", "0", "--extras", "", "--pretrain-eegbci-runs", "4", "--pretrain-target",
            target, "--pretrain-steps", "3", "--pretrain-batch-size", "8", "--embed-dim", "16", "--depth", "1",
            "--heads", "2", "--finetune-epochs", "1", "--patience", "1", "--batch-size", "16", "--channel-drop", "0.5",
            "--models", "eegfm_pretrained,eegfm_linear", "--work-dir", str(work),
            *(["--pretrain-visible-blocks", str(visible_blocks)] if visible_blocks else [])]
    report = bench.main([*argv, "--out", str(out)])
    saved = json.loads((out / "downstream.json").read_text())
    assert saved["pretrain_target"] == target and saved["config"]["pretrain_target"] == target
    run_config = json.loads((work / "ma" / "fold0" / "pretrain" / "run_config.json").read_text())
    assert run_config["model"]["visible_blocks"] == visible_blocks
    pre = saved["pretraining"]["ma"]
    assert pre["tokenizer"] is None and pre["target"] == target
    assert not (work / "ma" / "tokenizer").exists()  # no tokenizer folder, no tokenizer summary
    assert not list(work.rglob("codes"))  # no code cache either
    for f in ("0", "1"):
        fold = pre["folds"][f]
        assert fold["target"] == target and "masked_accuracy" not in fold
        assert set(fold["masked_r2"]["masked_r2"]) == {"random", "channel", "temporal"}
        assert not set(fold["excluded_test_subjects"]) & set(fold["subjects"]["eegmat"])
        assert (work / "ma" / f"fold{f}" / "pretrain" / "encoder" / "config.json").is_file()
    assert set(report["results"]["ma"]) == {"eegfm_pretrained", "eegfm_linear"}
    assert "masked R^2 per fold" in (out / "summary.md").read_text()
    # --reuse: the spectrum encoders are reused, not trained again
    fingerprint = (work / "ma" / "fold0" / "pretrain" / "fingerprint.txt").read_text()
    capsys.readouterr()
    again = bench.main([*argv, "--out", str(tmp_path / "again"), "--reuse"])
    assert capsys.readouterr().out.count("reusing the pre-trained encoder") == 2
    assert (work / "ma" / "fold0" / "pretrain" / "fingerprint.txt").read_text() == fingerprint
    assert again["results"]["ma"]["eegfm_pretrained"]["aggregate"] == saved["results"]["ma"]["eegfm_pretrained"][
        "aggregate"]


def test_pretrain_subjects_in_domain_keeps_the_task_s_own_subjects_only():
    bench = _load()
    selected = {"ma": ["02", "03", "04"], "mi": ["S001", "S002"]}
    assert bench.pretrain_subjects("ma", ["02", "03"], selected, "all") == {"ma": ["02", "03"], "mi": ["S001", "S002"]}
    assert bench.pretrain_subjects("ma", ["02"], selected, "task-train") == {"ma": ["02"], "mi": []}
    assert bench.pretrain_subjects("mi", ["S002"], selected, "task-train") == {"mi": ["S002"], "ma": []}


def test_constant_lr_schedule_keeps_the_lr_on_every_step_and_cosine_stays_the_library_default():
    from eegfm.finetune import FinetuneConfig
    from eegfm.training.schedule import cosine_with_warmup

    bench = _load()
    parse = bench.build_parser().parse_args
    assert bench.eegfm_schedule(parse([]), 3e-4) == {}  # FinetuneConfig's own warm-up and cosine
    cfg = FinetuneConfig(lr=1e-3, **bench.eegfm_schedule(parse(["--lr-schedule", "constant"]), 1e-3))
    assert cfg.warmup_epochs == 0 and cfg.min_lr == 1e-3
    lrs = [cosine_with_warmup(s, total_steps=100, warmup_steps=0, base_lr=cfg.lr, min_lr=cfg.min_lr) for s in range(120)]
    assert lrs == [1e-3] * 120
    with pytest.raises(SystemExit):
        parse(["--lr-schedule", "linear"])


def test_in_domain_pretraining_reads_the_fold_s_training_subjects_only(shared_data, tmp_path, capsys):
    """--pretrain-corpus task-train: each fold pre-trains on its training subjects of the task and
    nothing else (no validation or test subject, no eegmmidb, no extras). Also --only-folds: one fold
    run alone (a partial report), then the whole run assembled with --reuse, that fold reused."""
    bench = _load()
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["--data-root", str(shared_data), "--tasks", "ma", "--ma-subjects", "02,03,04,05,06", "--mi-subjects",
            "1", "--folds", "2", "--seeds", "0", "--pretrain-corpus", "task-train", "--pretrain-eegbci-runs", "4",
            "--pretrain-target", "spectrum", "--pretrain-steps", "2", "--pretrain-batch-size", "8",
            "--embed-dim", "16", "--depth", "1", "--heads", "2", "--finetune-epochs", "1", "--patience", "1",
            "--batch-size", "16", "--channel-drop", "", "--models", "eegfm_pretrained", "--work-dir", str(work)]
    with pytest.raises(SystemExit, match="--only-folds '2': the folds are 0,1"):
        bench.main([*args, "--only-folds", "2", "--out", str(tmp_path / "bad")])
    one = bench.main([*args, "--only-folds", "1", "--out", str(tmp_path / "one")])
    assert one["partial"] and [r["fold"] for r in one["results"]["ma"]["eegfm_pretrained"]["rows"]] == [1]
    capsys.readouterr()
    bench.main([*args, "--reuse", "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.count("reusing the pre-trained encoder") == 1  # fold 1; its row (timing included) below
    saved = json.loads((out / "downstream.json").read_text())
    assert not saved["partial"]
    assert saved["results"]["ma"]["eegfm_pretrained"]["rows"][1] == one["results"]["ma"]["eegfm_pretrained"]["rows"][0]
    assert saved["config"]["pretrain_corpus"] == "task-train"
    for fold in saved["folds"]["ma"]:
        subjects = saved["pretraining"]["ma"]["folds"][str(fold["fold"])]["subjects"]
        assert subjects == {"eegmat": fold["train"], "eegbci": []}
        assert not set(subjects["eegmat"]) & set(fold["val"] + fold["test"])


def test_patch_mean_attention_bias_and_pooling_reach_the_pre_trained_and_the_scratch_models(shared_data, tmp_path,
                                                                                               capsys, monkeypatch):
    bench = _load()
    work = tmp_path / "work"
    argv = ["--data-root", str(shared_data), "--tasks", "ma", "--ma-subjects", "02,03,04,05", "--folds", "2",
            "--only-folds", "0", "--seeds", "0", "--extras", "", "--pretrain-target", "spectrum",
            "--pretrain-corpus", "task-train", "--pretrain-steps", "2", "--pretrain-batch-size", "8",
            "--embed-dim", "16", "--depth", "1", "--heads", "2", "--finetune-epochs", "1", "--patience", "1",
            "--batch-size", "16", "--channel-drop", "", "--models", "eegfm_pretrained,eegfm_scratch",
            "--work-dir", str(work)]
    arch = ["--patch-mean", "--attention-bias", "distance"]
    report = bench.main([*argv, *arch, "--out", str(tmp_path / "mean")])
    encoder = json.loads((work / "ma" / "fold0" / "pretrain" / "encoder" / "config.json").read_text())
    assert encoder["patch_mean"] is True and encoder["attention_bias"] == "distance"
    assert report["config"]["patch_mean"] is True and report["config"]["attention_bias"] == "distance"
    # scratch is built from the same architecture, patch mean and attention bias included
    built = []
    real = bench.MAPEClassifier

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append((model.encoder.config.patch_mean, model.encoder.config.attention_bias, model.pooling))
        return model

    spy.from_encoder = lambda encoder, **kwargs: (built.append(("pre-trained", kwargs["pooling"])),
                                                  real.from_encoder(encoder, **kwargs))[1]
    with monkeypatch.context() as m:
        m.setattr(bench, "MAPEClassifier", spy)
        bench.main([*argv, *arch, "--pooling", "moments", "--reuse", "--out", str(tmp_path / "moments")])
    assert "reusing the pre-trained encoder" in capsys.readouterr().out
    assert sorted(built, key=str) == [("pre-trained", "moments"), (True, "distance", "moments")]
    # without the flags the recipe differs: the patch-mean, distance-bias encoder is not reused
    capsys.readouterr()
    bench.main([*argv, "--reuse", "--out", str(tmp_path / "plain")])
    assert "reusing the pre-trained encoder" not in capsys.readouterr().out
    encoder = json.loads((work / "ma" / "fold0" / "pretrain" / "encoder" / "config.json").read_text())
    assert encoder["patch_mean"] is False and encoder["attention_bias"] == "none"
