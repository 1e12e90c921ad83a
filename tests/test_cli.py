"""``eegfm tokenizer`` and ``eegfm pretrain`` end to end on the bundled sample (tiny models)."""

import json

import pytest

from eegfm.cli.main import main
from eegfm.cli.overrides import ConfigError
from eegfm.models.encoder import MAPEEncoder
from eegfm.models.tokenizer import NeuralTokenizer

DATA = ["--data.sources=sample", "--data.batch_size=8", "--data.l_freq=0.5", "--data.stride_seconds=2"]
TRAIN = ["--train.warmup_steps=2", "--train.log_every=2", "--train.progress=false"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    args = ["tokenizer", *DATA, *TRAIN, f"--data.cache_dir={root / 'cache'}", f"--train.run_dir={root / 'tok'}",
            "--train.steps=6", "--train.checkpoint_every=3", "--model.embed_dim=32", "--model.depth=1",
            "--model.num_heads=2", "--model.num_codes=32", "--model.code_dim=8", "--model.decoder_depth=1"]
    assert main(args) == 0
    return root


def plot_files(run) -> set:
    files = {p.name for p in (run / "plots").iterdir()}
    assert all((run / "plots" / name).stat().st_size > 5000 for name in files)  # rendered, not empty
    return files


def assert_sample_data_facts(card: str, hours: str = "0.0172", subjects: int = 2, recordings: int = 3,
                             counts: str = "19, 64"):
    """The card's Training data table holds the bundled sample's facts."""
    assert "| Sources | eegfm-sample |" in card and f"| Hours of EEG | {hours} |" in card
    assert f"| Subjects | {subjects} |" in card and f"| Recordings | {recordings} |" in card
    assert f"| Channel counts | {counts} |" in card
    assert "| Caps / montages | 19 channels (Fp1 Fp2 F3 F4 F7 F8 ...; 2 recordings)" in card or counts == "64"
    assert "| l_freq | 0.5 |" in card and "| sfreq | 200.0 |" in card  # the preprocessing contract


def test_tokenizer_command_writes_model_plot_metrics_and_checkpoints(tokenizer_dir):
    run = tokenizer_dir / "tok"
    tok = NeuralTokenizer.from_pretrained(run / "model")
    assert tok.quantizer.num_codes == 32
    assert (run / "codebook_usage.png").stat().st_size > 1000
    assert plot_files(run) == {"loss.png", "codebook.png", "spectra.png", "montage.png"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["recordings"] == 3 and 0 < summary["codebook"]["usage"] <= 1
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"step_0000003.pt", "step_0000006.pt", "last.pt"}
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "codebook_usage" in header and "codebook_perplexity" in header


def test_tokenizer_model_card_holds_the_run_s_facts(tokenizer_dir):
    run = tokenizer_dir / "tok"
    card = (run / "model" / "README.md").read_text()
    assert_sample_data_facts(card)
    assert f"eegfm tokenizer --config {run / 'run_config.json'}\n" in card  # rerun from the saved settings
    typed = next(line for line in card.splitlines() if line.startswith("# eegfm tokenizer "))
    assert "--train.steps=6" in typed and "--model.num_codes=32" in typed  # the command as typed
    full = next(line for line in card.splitlines() if line.startswith("eegfm tokenizer --model."))
    assert "--model.num_codes=32" in full and "--data.l_freq=0.5" in full and "--train.steps=6" in full
    summary = json.loads((run / "summary.json").read_text())
    codebook = summary["codebook"]
    assert (f"- codebook: final codebook on {codebook['windows']} windows encoded after training uses "
            f"{codebook['codes_used']} of 32 codes") in card
    assert "- seed: 0" in card and "- steps: 6" in card
    assert "The codebook figures are measured on training windows" in card


def test_tokenizer_command_resumes(tokenizer_dir, capsys):
    run = tokenizer_dir / "tok"
    args = ["tokenizer", *DATA, *TRAIN, f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={run}",
            "--train.steps=8", "--train.resume=true", "--model.embed_dim=32", "--model.depth=1",
            "--model.num_heads=2", "--model.num_codes=32", "--model.code_dim=8", "--model.decoder_depth=1"]
    assert main(args) == 0
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps, key=int) and steps[-1] == "8"


def test_pretrain_command_saves_the_encoder_and_evaluation(tokenizer_dir, capsys):
    run = tokenizer_dir / "pre"
    args = ["pretrain", f"--tokenizer={tokenizer_dir / 'tok' / 'model'}", *DATA, *TRAIN,
            f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={run}", "--train.steps=4",
            "--model.embed_dim=32", "--model.depth=1", "--model.num_heads=2", "--model.strategies=random,temporal",
            "--eval_batches=2"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()  # a short summary, not the training loop's raw dict
    warned = lines[-1].startswith("WARNING: masked-token accuracy")  # 4 steps need not beat the baseline
    assert len(lines) == 5 + warned and lines[0].startswith("pretrain: 4 steps in ")
    assert lines[1].startswith("masked-token accuracy: random") and lines[2].startswith(f"encoder: {run / 'encoder'}")
    assert lines[3] == f"plots: {run / 'plots'}/ (loss, masked, montage)"
    encoder = MAPEEncoder.from_pretrained(run / "encoder")
    assert encoder.embed_dim == 32 and encoder.preprocessing.l_freq == 0.5
    evaluation = json.loads((run / "evaluation.json").read_text())["evaluation"]
    assert set(evaluation["accuracy"]) == {"random", "temporal"}
    assert 0 <= evaluation["baseline_accuracy"] <= 1
    assert plot_files(run) == {"loss.png", "masked.png", "montage.png"}  # no spectra: the target is codes
    for folder in ("encoder", "model"):  # the same facts on both cards
        card = (run / folder / "README.md").read_text()
        assert_sample_data_facts(card)
        assert f"eegfm pretrain --config {run / 'run_config.json'}\n" in card
        assert f"- masked evaluation: {lines[1]}" in card and "- masked evaluation on: 2 batches" in card
        assert f"- tokenizer (targets): {tokenizer_dir / 'tok' / 'model'}" in card and "- seed: 0" in card
    assert "A MAPEEncoder pre-trained with `eegfm pretrain` by masked prediction of the codes" in \
        (run / "encoder" / "README.md").read_text()


def test_bad_settings_are_one_line_errors_with_status_2(tokenizer_dir, capsys):
    assert main(["tokenizer", "--train.stepz=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("eegfm tokenizer: error: unknown config key --train.stepz. "
                                                     "Did you mean --train.steps")
    assert "Traceback" not in err and err.rstrip().endswith("(--debug shows the traceback)")
    bad = ["pretrain", f"--tokenizer={tokenizer_dir / 'tok' / 'model'}", "--data.sources=sample",
           f"--train.run_dir={tokenizer_dir / 'x'}"]
    assert main(bad) == 2
    assert "l_freq=0.1 (model expects 0.5)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown config key --train.stepz"):  # --debug: the exception itself
        main(["--debug", "tokenizer", "--train.stepz=3"])
    assert main(["pretrain", "--tokenizer", str(tokenizer_dir / "nothing-here"), "--data.sources", "sample"]) == 2
    assert "nothing-here" in capsys.readouterr().err  # --key value works like --key=value


def test_key_value_pairs_with_a_space():
    from eegfm.cli.main import _join_key_value

    assert _join_key_value(["tokenizer", "--train.steps", "5", "--data.sources=sample", "--debug"]) == [
        "tokenizer", "--train.steps=5", "--data.sources=sample", "--debug"]


def test_push_to_hub_is_one_flag(tokenizer_dir, monkeypatch):
    import huggingface_hub

    pushed = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"))

    def upload_folder(self, *, repo_id, folder_path, **kw):
        from pathlib import Path

        pushed[repo_id] = sorted(p.name for p in Path(folder_path).iterdir())
        pushed["card"] = (Path(folder_path) / "README.md").read_text()
        return "https://huggingface.co/commit/1"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    args = ["pretrain", f"--tokenizer={tokenizer_dir / 'tok' / 'model'}", *DATA, *TRAIN,
            f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={tokenizer_dir / 'push'}",
            "--train.steps=1", "--model.embed_dim=32", "--model.depth=1", "--model.num_heads=2",
            "--eval_batches=1", "--push_to_hub=me/my-eeg-encoder"]
    assert main(args) == 0
    card = pushed.pop("card")
    assert pushed == {"me/my-eeg-encoder": ["README.md", "config.json", "model.safetensors"]}
    assert card == (tokenizer_dir / "push" / "encoder" / "README.md").read_text().replace(
        "path/to/this/folder", "me/my-eeg-encoder")  # the run's card, naming the repo
    assert "| Subjects | 2 |" in card and "--push_to_hub=me/my-eeg-encoder" in card and "- masked evaluation: " in card


def test_the_same_seed_gives_identical_runs(tokenizer_dir):
    import torch

    def run(name: str, seed: int) -> dict:
        args = ["pretrain", f"--tokenizer={tokenizer_dir / 'tok' / 'model'}", *DATA, *TRAIN,
                f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={tokenizer_dir / name}",
                "--train.steps=2", f"--train.seed={seed}", "--model.embed_dim=32", "--model.depth=1",
                "--model.num_heads=2", "--eval_batches=1"]
        torch.manual_seed(sum(map(ord, name)))  # the global RNG differs before each run
        assert main(args) == 0
        return MAPEEncoder.from_pretrained(tokenizer_dir / name / "encoder").state_dict()

    a, b, c = run("seed_a", 3), run("seed_b", 3), run("seed_c", 4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------- --model.target=spectrum
SPECTRUM = ["pretrain", "--model.target=spectrum", *DATA, *TRAIN, "--train.steps=4", "--model.embed_dim=32",
            "--model.depth=1", "--model.num_heads=2", "--eval_batches=2"]


def test_pretrain_spectrum_needs_no_tokenizer_nor_code_cache(tokenizer_dir, tmp_path, monkeypatch, capsys, caplog):
    import eegfm.cli.pretrain as command
    from eegfm.models.pretrainer import MaskedPretrainer

    def no_cache(*args, **kwargs):
        raise AssertionError("the code cache was built for target spectrum")

    monkeypatch.setattr(command, "cache_codes", no_cache)
    monkeypatch.chdir(tmp_path)  # no runs/tokenizer/model here
    run = tmp_path / "spectrum"
    assert main([*SPECTRUM, f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={run}",
                 "--model.patch_size=50", "--model.strategies=random,channel", "--model.decoder_depth=1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("pretrain: 4 steps in ") and lines[1].startswith("masked R^2: random ")
    assert lines[1].endswith("(predicting the mean: 0)") and "accuracy" not in lines[1]
    summary = json.loads((run / "evaluation.json").read_text())
    evaluation = summary["evaluation"]
    assert summary["target"] == "spectrum" and set(evaluation) == {"masked_r2", "masked_tokens"}
    assert set(evaluation["masked_r2"]) == {"random", "channel"}
    r2 = sum(evaluation["masked_r2"][k] * evaluation["masked_tokens"][k] for k in ("random", "channel")) / sum(
        evaluation["masked_tokens"].values())
    assert bool(summary["warnings"]) == (r2 <= 0) == lines[-1].startswith("WARNING: masked R^2")
    assert json.loads((run / "run_config.json").read_text())["tokenizer"] is None
    model = MaskedPretrainer.from_pretrained(run / "model")
    assert model.target == "spectrum" and model.head.out_features == 26 and model.encoder.patch_size == 50
    assert model.decoder_depth == 1 and len(model.decoder_blocks) == 1  # pre-trained with a decoder (MAE style)
    assert MAPEEncoder.from_pretrained(run / "encoder").patch_size == 50
    assert plot_files(run) == {"loss.png", "masked.png", "spectra.png", "montage.png"}
    card = (run / "encoder" / "README.md").read_text()
    assert f"- masked evaluation: {lines[1]}" in card and "tokenizer (targets)" not in card
    assert "- target: spectrum: the z-scored Fourier amplitudes of each patch" in card


@pytest.mark.parametrize("decoder_depth", [0, 1])
def test_pretrain_spectra_are_of_masked_patches(tokenizer_dir, decoder_depth):
    """The spectra plot shows masked patches: the pretrainer's head output against amplitude_target."""
    from eegfm.cli.pretrain import pretrain_spectra
    from eegfm.cli.runs import DataConfig, build_loader
    from eegfm.models.pretrainer import MaskedPretrainer

    corpus, windows, _ = build_loader(DataConfig(cache_dir=str(tokenizer_dir / "cache"), l_freq=0.5,
                                                 stride_seconds=2.0, batch_size=8), 50, 0, progress=False)
    model = MaskedPretrainer(patch_size=50, embed_dim=32, depth=1, num_heads=2, target="spectrum",
                             strategies=["temporal"], decoder_depth=decoder_depth)
    spectra = pretrain_spectra(model, windows, corpus.entries, n=3, seed=1)
    assert spectra["true"].shape == spectra["predicted"].shape == (3, 26)
    assert spectra["freqs"][-1] == 100.0 and len(spectra["labels"]) == 3
    assert all(label.split(", ")[1] == "Cz" for label in spectra["labels"])  # the preferred channel, when masked
    again = pretrain_spectra(model, windows, corpus.entries, n=3, seed=1)  # seeded masks: the same patches
    assert again["labels"] == spectra["labels"] and (again["predicted"] == spectra["predicted"]).all()


def test_pretrain_spectrum_slow_writes_its_model_card_and_spectra(tokenizer_dir, tmp_path, monkeypatch, capsys):
    from eegfm.models.pretrainer import SLOW_BINS, MaskedPretrainer

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "slow"
    assert main(["pretrain", "--model.target=spectrum_slow", *DATA, *TRAIN, "--train.steps=2", "--model.embed_dim=32",
                 "--model.depth=1", "--model.num_heads=2", "--eval_batches=1", "--model.patch_size=50",
                 f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={run}"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[1].startswith("masked R^2: random ")
    model = MaskedPretrainer.from_pretrained(run / "model")
    assert model.target == "spectrum_slow" and model.head.out_features == 26 + SLOW_BINS
    assert plot_files(run) == {"loss.png", "masked.png", "spectra.png", "montage.png"}
    assert ("- target: spectrum_slow: the z-scored Fourier amplitudes and slow signed sub-window means of each patch"
            in (run / "encoder" / "README.md").read_text())


def test_health_warning_is_logged_and_summarised(tokenizer_dir, tmp_path, monkeypatch, capsys, caplog):
    from eegfm.cli.pretrain import health_warning
    from eegfm.models.pretrainer import MaskedPretrainer

    assert health_warning({"accuracy": {"random": 0.3, "channel": 0.1}, "baseline_accuracy": 0.15,
                           "masked_tokens": {"random": 10, "channel": 10}}) is None  # pooled: 20 %
    assert health_warning({"accuracy": {"random": 0.3, "channel": 0.1}, "baseline_accuracy": 0.2,
                           "masked_tokens": {"random": 10, "channel": 30}}) == (
        "masked-token accuracy 15.0% does not beat the most-frequent-code baseline 20.0%; train longer or check "
        "--train.lr and the data")
    assert health_warning({"masked_r2": {"random": 0.5}, "masked_tokens": {"random": 3}}) is None
    assert health_warning({"masked_r2": {"random": 0.0}, "masked_tokens": {"random": 3}}).startswith(
        "masked R^2 0.000 <= 0: no better than predicting the mean amplitude")
    assert health_warning({"masked_r2": {"random": float("nan")}, "masked_tokens": {"random": 3}})

    def evaluate(self, batches, *, seed=0):  # an encoder that learnt nothing
        return {"accuracy": {"random": -0.25}, "baseline_accuracy": 0.0, "masked_tokens": {"random": 40}}

    monkeypatch.setattr(MaskedPretrainer, "evaluate", evaluate)
    caplog.set_level("WARNING", logger="eegfm.pretrain")
    assert main([*SPECTRUM, f"--data.cache_dir={tokenizer_dir / 'cache'}", f"--train.run_dir={tmp_path / 'r'}",
                 "--train.steps=1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "WARNING: masked R^2 -0.250 <= 0: no better than predicting the mean amplitude; train " \
                        "longer or check --train.lr and the data"
    [record] = [r for r in caplog.records if r.name == "eegfm.pretrain"]
    assert record.levelname == "WARNING" and record.getMessage() == lines[-1].removeprefix("WARNING: ")
    assert json.loads((tmp_path / "r" / "evaluation.json").read_text())["warnings"] == [record.getMessage()]


def test_pretrain_target_errors_are_one_line(tokenizer_dir, tmp_path, monkeypatch, capsys):
    tok = f"--tokenizer={tokenizer_dir / 'tok' / 'model'}"
    monkeypatch.chdir(tmp_path)
    cases = [
        (["pretrain", "--model.target=fft", "--data.sources=sample"],
         "--model.target='fft' is not one of codes, spectrum, signal, spectrum_slow"),
        (["pretrain", tok, *DATA, "--model.patch_size=50"],
         f"--model.patch_size=50 differs from the tokenizer's patch_size=100 ({tokenizer_dir / 'tok' / 'model'}); "
         "set --model.patch_size=100"),
        (["pretrain", tok, *DATA, "--model.target=spectrum", "--model.patch_size=50"],
         "--model.patch_size=50 differs from the tokenizer's patch_size=100"),
        (["pretrain", "--model.target=spectrum", "--model.depth=2", "--model.visible_blocks=3",
          "--data.sources=sample"], "--model.visible_blocks=3 must be from 0 to --model.depth=2"),
        (["pretrain", "--model.target=spectrum", "--model.decoder_depth=-1", "--data.sources=sample"],
         "--model.decoder_depth=-1 must be >= 0 (0: no decoder, the paper's step)"),
        (["pretrain", "--model.target=spectrum", "--model.visible_blocks=1", "--model.decoder_depth=1",
          "--data.sources=sample"], "--model.visible_blocks=1 and --model.decoder_depth=1: choose one"),
        (["pretrain", "--data.sources=sample"],  # target codes, no --tokenizer: train one, or use spectrum
         "--tokenizer=runs/tokenizer/model: no such folder; train one with `eegfm tokenizer` first"),
    ]
    for args, message in cases:
        assert main([*args, f"--train.run_dir={tmp_path / 'never'}"]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert "or pre-train without a tokenizer: --model.target=spectrum" in err
    assert not (tmp_path / "never").exists() and not (tmp_path / "runs").exists()  # nothing written


def test_an_unset_patch_size_takes_the_tokenizer_s_else_100():
    from types import SimpleNamespace

    from eegfm.cli.pretrain import DEFAULT_PATCH_SIZE, PretrainRun, check_tokenizer

    tokenizer = SimpleNamespace(encoder=SimpleNamespace(patch_size=50), check_preprocessing=lambda config: None)
    cfg = PretrainRun()
    assert cfg.model.patch_size is None
    check_tokenizer(cfg, tokenizer)
    assert cfg.model.patch_size == 50  # recorded in run_config.json as used
    assert DEFAULT_PATCH_SIZE == 100
