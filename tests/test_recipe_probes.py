"""The recipe probes of benchmarks/ (finetune_probe.py, feature_probe.py) at tiny size."""

import numpy as np
import pytest
import torch

from eegfm import MAPEEncoder
from eegfm.finetune import LabeledEEG

from conftest import load_script

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ["Fz", "Cz", "Pz", "C3"]


def _load(name):
    return load_script(f"benchmarks/{name}.py")


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(0, 10, (n, 4, 400)).astype(np.float32) * (1 + 2 * y[:, None, None])
    return LabeledEEG.from_arrays(X, y, NAMES, sfreq=200.0, groups=np.repeat(np.arange(n // 4), 4).astype(str))


def test_variants_parse_names_keys_and_json_values():
    probe = _load("finetune_probe")
    variants = probe.parse_variants("a:init=scratch,lr=0.001,pooling=cls;b:init=pretrained,lp_epochs=2")
    assert variants == {"a": {"init": "scratch", "lr": 0.001, "pooling": "cls"},
                        "b": {"init": "pretrained", "lp_epochs": 2}}


def test_a_variant_fine_tunes_and_reports_validation(tmp_path):
    probe = _load("finetune_probe")
    torch.manual_seed(0)
    config = dict(patch_size=100, embed_dim=16, depth=1, num_heads=2)
    encoder = MAPEEncoder(**config)
    train, valid = _data(), _data(8, seed=1)
    row = probe.run_variant({"init": "pretrained", "lp_epochs": 1, "epochs": 2, "patience": 1, "batch_size": 8},
                            0, encoder, config, train, valid)
    assert 0 <= row["best"] <= 1 and 1 <= row["epochs_run"] <= 2 and len(row["curve"]) == row["epochs_run"]
    scratch = probe.run_variant({"init": "scratch", "embed_dim": 8, "epochs": 1, "batch_size": 8}, 0, None, config,
                                train, valid)
    assert scratch["epochs_run"] == 1
    with pytest.raises(SystemExit, match="unknown variant keys \\['nope'\\]"):
        probe.run_variant({"init": "scratch", "nope": 1}, 0, None, config, train, valid)
    with pytest.raises(SystemExit, match="init=scratch only"):
        probe.run_variant({"init": "pretrained", "depth": 3}, 0, encoder, config, train, valid)


def test_variants_compare_the_finetuning_strategies():
    """mode=lora / mode=frozen variants (and their rows: the one fit of frozen is its best and last)."""
    probe = _load("finetune_probe")
    torch.manual_seed(0)
    config = dict(patch_size=100, embed_dim=16, depth=1, num_heads=2)
    encoder = MAPEEncoder(**config)
    train, valid = _data(), _data(8, seed=1)
    lora = probe.run_variant({"mode": "lora", "lora_rank": 2, "epochs": 2, "patience": 1, "batch_size": 8,
                              "lr": 3e-4, "layer_decay": 1}, 0, encoder, config, train, valid)
    assert 1 <= lora["epochs_run"] <= 2 and lora["lora"]["rank"] == 2
    assert lora["lora"]["trainable_parameters"] < lora["lora"]["parameters"]
    frozen = probe.run_variant({"mode": "frozen"}, 0, encoder, config, train, valid)
    assert frozen["epochs_run"] == 0 and frozen["best"] == frozen["last"] and frozen["best_epoch"] is None
    assert frozen["frozen"]["param"] == "C" and frozen["frozen"]["cv"] == "GroupKFold(4) over train.groups"
    assert frozen["best"] > 0.9  # class 1 has 9x the power
    with pytest.raises(ValueError, match="lora_rank=2 applies to mode='lora' only"):
        probe.run_variant({"mode": "full", "lora_rank": 2}, 0, encoder, config, train, valid)


def test_downstream_runs_the_strategies_as_models(tmp_path):
    ds = _load("downstream")
    assert {"eegfm_lora", "eegfm_frozen_lr"} <= set(ds.ALL_MODELS) - set(ds.DEFAULT_MODELS)
    assert set(ds.EEGFM_MODES) == set(ds.EEGFM_MODELS)
    args = ds.build_parser().parse_args(["--finetune-epochs", "2", "--patience", "1", "--batch-size", "8",
                                         "--channel-dropout", "0.2"])
    torch.manual_seed(0)
    config = dict(patch_size=100, embed_dim=16, depth=1, num_heads=2)
    encoder = MAPEEncoder(**config)
    train, valid, test = _data(), _data(8, seed=1), _data(8, seed=2)
    for name in ("eegfm_lora", "eegfm_frozen_lr"):
        info, logits = ds.run_eegfm(name, 0, encoder, config, train, valid, [test, test.drop_channels(0.5)], args,
                                    tmp_path / name)
        assert [lg.shape for lg in logits] == [(8, 2), (8, 2)] and 0 <= info["valid"]["balanced_accuracy"] <= 1
        if name == "eegfm_frozen_lr":
            assert info["epochs_run"] == 0 and info["best_epoch"] is None
        else:
            assert 1 <= info["epochs_run"] <= 2 and 1 <= info["best_epoch"] <= 2


def test_feature_probe_reads_out_every_feature_and_fits_a_probe():
    fp = _load("feature_probe")
    torch.manual_seed(0)
    encoder = MAPEEncoder(patch_size=100, embed_dim=16, depth=1, num_heads=2)
    data = _data()
    feats = fp.encoder_features(encoder, data, batch_size=5)
    assert {k: v.shape for k, v in feats.items()} == {"mean": (16, 16), "cls": (16, 16), "channel_mean": (16, 64),
                                                      "patch_embed": (16, 64)}
    power = fp.band_power(data)
    assert power.shape == (16, 4 * len(fp.BANDS))
    score = fp.probe(power, data.labels, data.groups.astype(str), power, data.labels)
    assert score > 0.9  # class 1 has 9x the power: separable


def test_spectrum_pretrainer_regresses_masked_amplitudes_and_learns():
    sp = _load("spectrum_pretrain_probe")
    from eegfm.data.collate import pad_into
    from eegfm import proportion_coordinates

    torch.manual_seed(0)
    model = sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2)  # the library's spectrum target
    assert model.target == "spectrum" and model.single_pass
    assert model.head.out_features == 26  # one output per rfft bin of a 50-sample patch
    rng = np.random.default_rng(0)
    pos = proportion_coordinates(NAMES)
    batch = pad_into([rng.normal(0, 10, (4, 400)).astype(np.float32) for _ in range(4)], [pos] * 4)
    out = model(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0))
    assert out.count == 4 * 4 * 8 // 2  # single pass: half of every sample's tokens (each strategy masks 0.5)
    assert torch.isfinite(out.loss) and set(out.accuracy) == {"random", "channel", "temporal"}  # R^2 each
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(out.loss.detach())
    for _ in range(30):
        loss = model(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    evaluation = model.evaluate([batch], seed=0)
    assert set(evaluation["accuracy"]) == {"random", "channel", "temporal"}


def test_spectrum_probe_builds_the_distance_biased_encoder():
    sp = _load("spectrum_pretrain_probe")
    model = sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2, target="spectrum_slow", patch_mean=True,
                          attention_bias="distance")
    assert model.encoder.config.attention_bias == "distance" and model.encoder.config.patch_mean
    assert sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2).encoder.config.attention_bias == "none"


def test_spectrum_probe_strategies_flag_trains_channel_masks_only_and_scores_all():
    sp = _load("spectrum_pretrain_probe")
    from eegfm.data.collate import pad_into
    from eegfm import proportion_coordinates

    assert sp.parse_strategies("channel") == ("channel",)
    assert sp.parse_strategies(" random,temporal ") == ("random", "temporal")
    for bad in ("", "channel,channel", "spatial"):
        with pytest.raises(Exception):
            sp.parse_strategies(bad)
    assert sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2).strategies == list(sp.STRATEGIES)
    torch.manual_seed(0)
    model = sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2, strategies=("channel",))
    rng = np.random.default_rng(0)
    batch = pad_into([rng.normal(0, 10, (4, 400)).astype(np.float32) for _ in range(4)],
                     [proportion_coordinates(NAMES)] * 4)
    out = model(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0))
    assert set(out.accuracy) == {"channel"} and out.count == 4 * 2 * 8  # half the channels of every sample
    evaluation = sp.evaluate_all_strategies(model, [batch], seed=0)
    assert set(evaluation["accuracy"]) == set(sp.STRATEGIES) and model.strategies == ["channel"]


@pytest.mark.real_data
def test_probes_read_the_training_and_validation_subjects_only(shared_data, tmp_path):
    import json

    fp, ft = _load("feature_probe"), _load("finetune_probe")
    common = ["--data-root", str(shared_data), "--cache-dir", str(tmp_path / "cache")]
    report = fp.main([*common, "--random-seeds", "", "--out", str(tmp_path / "features.json")])
    fold = report["fold"]
    assert fold["test"] == [f"{s}" for s in range(26, 32)] and not set(fold["test"]) & set(fold["val"] + fold["train"])
    assert set(report["validation_balanced_accuracy"]) == {"band_power"}
    assert json.loads((tmp_path / "features.json").read_text())["command"].startswith("python benchmarks/feature_probe.py")
    report = ft.main([*common, "--variants", "s:init=scratch,epochs=1,embed_dim=16,depth=1,num_heads=2", "--seeds", "0"])
    assert report["results"]["s"]["rows"][0]["epochs_run"] == 1 and report["fold"] == fold


def test_a_probe_report_becomes_downstream_rows_of_the_card():
    card = _load("eegfm_small_card")
    report = {"fold": {"val": ["08", "09"], "test": ["26"]}, "seeds": [0, 1],
              "results": {"lora": {"options": {"init": "pretrained", "mode": "lora"},
                                   "rows": [{"best": 0.8}, {"best": 0.7}]},
                          "scratch": {"options": {"init": "scratch"}, "rows": [{"best": 0.6}, {"best": 0.6}]}}}
    lora, scratch = card.probe_rows("MA", report)
    assert lora.task == "MA, validation subjects 08,09 (test subjects 26 never read)"
    assert lora.model == "eegfm-small (mode=lora)" and scratch.model == "from scratch"
    assert lora.seeds == [0, 1] and abs(lora.mean - 0.75) < 1e-12 and abs(lora.std - 0.0707107) < 1e-6
    assert scratch.std == 0.0


def test_card_rows_can_be_limited_to_some_variants():
    card = _load("eegfm_small_card")
    report = {"fold": {"val": ["08"], "test": ["26"]}, "seeds": [0],
              "results": {"a": {"options": {"init": "pretrained"}, "rows": [{"best": 0.8}]},
                          "b": {"options": {"init": "scratch"}, "rows": [{"best": 0.6}]}}}
    assert [r.model for r in card.probe_rows("MA", report, ["b"])] == ["from scratch"]


def test_a_harness_report_becomes_downstream_rows_of_the_card_with_its_test_subjects():
    card = _load("eegfm_small_card")
    fold = {"fold": 0, "test": ["26", "27"], "val": ["08"], "train": ["02"]}
    per_seed = {"eegfm_lora": {"0": 0.7, "1": 0.8}, "eegfm_scratch": {"0": 0.6, "1": 0.6}, "eegnet": {"0": 0.5}}
    report = {"folds": {"ma": [fold]},
              "results": {"ma": {m: {"aggregate": {"balanced_accuracy": {"per_seed": s}}} for m, s in per_seed.items()}}}
    lora, scratch, eegnet = card.harness_rows("MA", report)
    assert lora.task == "MA, test subjects 26,27 (early stopping on validation subjects 08)"
    assert (lora.model, scratch.model, eegnet.model) == ("eegfm-small, LoRA", "from scratch (same architecture, "
                                                         "full fine-tuning)", "EEGNet (braindecode)")
    assert lora.seeds == [0, 1] and abs(lora.mean - 0.75) < 1e-12 and eegnet.seeds == [0] and eegnet.std == 0.0
    assert [r.model for r in card.harness_rows("MA", report, ["eegnet"])] == ["EEGNet (braindecode)"]
    report["folds"]["ma"] = [fold, {**fold, "fold": 1}]
    assert card.harness_rows("MA", report)[0].task == "MA, 2 leave-subjects-out folds (test predictions pooled over folds)"


def test_contrastive_pretrainer_matches_two_views_of_each_window_and_learns():
    cp = _load("contrastive_pretrain_probe")
    from eegfm import proportion_coordinates
    from eegfm.data.collate import pad_into

    torch.manual_seed(0)
    encoder = MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2)
    model = cp.ContrastivePretrainer(encoder, proj_dim=8, tau=0.1, channel_dropout=0.25, time_shift_seconds=0.1,
                                     amplitude_scale=0.2)
    rng = np.random.default_rng(0)
    # four windows that differ in spectrum, so that two views of one window can be told from the others
    t = np.arange(400) / 200.0
    windows = [(np.sin(2 * np.pi * f * t) * 20 + rng.normal(0, 2, (4, 400))).astype(np.float32) for f in (3, 9, 17, 31)]
    batch = pad_into(windows, [proportion_coordinates(NAMES)] * 4)
    out = model.training_step(batch)
    assert out["count"] == 8  # two views of each of the 4 windows
    assert out["loss_sum"].requires_grad and 0.0 <= float(out["accuracy"]) <= 1.0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(out["loss_sum"].detach())
    for _ in range(40):
        torch.manual_seed(1)
        loss = model.training_step(batch)["loss_sum"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    last = model.training_step(batch)
    assert float(last["loss_sum"].detach()) < first
    assert float(last["accuracy"]) == 1.0  # every view's nearest other view is its pair


@pytest.mark.real_data
def test_probe_run_folder_names_its_corpus_for_the_harness_check(shared_data, tmp_path):
    """The probe writes run_config.json before training, so downstream.py --encoder <run-dir>
    finds it and lists the pre-training subjects (here eegmat 02 only) for its test-subject check."""
    import argparse
    import json

    sp, ds = _load("spectrum_pretrain_probe"), _load("downstream")
    parser = argparse.ArgumentParser()
    sp.add_pretrain_arguments(parser)
    spec = f"bids:{shared_data / 'eegmat_bids'}:02"
    args = parser.parse_args(["--sources", spec, "--run-dir", str(tmp_path / "run"),
                              "--cache-dir", str(tmp_path / "cache"), "--batch-size", "2"])
    _, corpus, _, _ = sp.load_corpus(args)
    assert len(corpus) == 2  # subject 02's rest and arithmetic recordings
    (tmp_path / "run" / "encoder").mkdir()
    (tmp_path / "run" / "encoder" / "config.json").write_text("{}")
    _, run_config = ds.locate_encoder(tmp_path / "run")
    assert run_config == tmp_path / "run" / "run_config.json"
    assert json.loads(run_config.read_text())["data"]["sources"] == spec
    subjects, _ = ds.corpus_subjects(spec, [tmp_path])
    assert subjects == {"ma": ["02"], "mi": []}


def test_spectrum_probe_slow_weight_reweights_the_two_halves_of_the_loss():
    sp = _load("spectrum_pretrain_probe")
    from eegfm.models.pretrainer import SLOW_BINS

    model = sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2, target="spectrum_slow")
    halves = model.column_weight[:26].sum(), model.column_weight[26:].sum()
    assert torch.allclose(torch.stack(halves), torch.tensor([0.5, 0.5]))  # the library's split
    sp.set_slow_weight(model, 0.9)
    assert model.column_weight.shape == (26 + SLOW_BINS,)
    assert torch.allclose(model.column_weight[:26], torch.full((26,), 0.1 / 26))
    assert torch.allclose(model.column_weight[26:], torch.full((SLOW_BINS,), 0.9 / SLOW_BINS))
    with pytest.raises(ValueError, match="needs target='spectrum_slow'"):
        sp.set_slow_weight(sp.make_model(patch_size=50, embed_dim=16, depth=1, num_heads=2), 0.9)
    with pytest.raises(ValueError, match=r"a value in \(0, 1\)"):
        sp.set_slow_weight(model, 1.0)
    with pytest.raises(SystemExit):  # the flag is refused before any data is read
        sp.main(["--sources", "unused", "--run-dir", "/nonexistent", "--slow-weight", "0.9"])
