"""``eegfm`` run directories and first-hour habits: protected runs, run_config.json first,
``--config`` reruns, help for every setting, ``--version``, bare paths as sources, missing
model messages and the short end-of-run summary."""

import ast
import contextlib
import io
import json
import shutil
from argparse import Namespace
from pathlib import Path

import pytest

import eegfm
from eegfm.cli.demo import DemoRun
from eegfm.cli.finetune import FinetuneRun
from eegfm.cli.main import main
from eegfm.cli.overrides import config_keys
from eegfm.cli.pretrain import PretrainRun
from eegfm.cli.rundir import check_run_dir, load_config
from eegfm.cli.runs import resolve_sources
from eegfm.cli.tokenizer import TokenizerRun
from eegfm.training import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--data.batch_size=8", "--data.l_freq=0.5", "--data.stride_seconds=2", "--train.warmup_steps=2",
        "--train.log_every=2", "--train.progress=false", "--model.embed_dim=32", "--model.depth=1",
        "--model.num_heads=2", "--model.num_codes=32", "--model.code_dim=8", "--model.decoder_depth=1"]


def tokenizer_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["tokenizer", "--data.sources=sample", f"--data.cache_dir={root / 'cache'}", *TINY,
            f"--train.run_dir={run_dir}", *extra]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A finished tokenizer run (6 steps, checkpoints at 3 and 6) and what it printed."""
    root = tmp_path_factory.mktemp("runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(tokenizer_args(root, root / "tok", "--train.steps=6", "--train.checkpoint_every=3")) == 0
    return root, out.getvalue()


def failing_fit(seen: dict):
    """A Trainer.fit that records whether run_config.json exists, then fails like a killed run."""
    def fit(self):
        seen["run_config"] = (Path(self.config.run_dir) / "run_config.json").is_file()
        raise RuntimeError("training failed at step 1")
    return fit


# ---------------------------------------------------------------- A. protected runs
def test_a_run_directory_that_holds_a_run_is_refused(first_run, capsys):
    root, _ = first_run
    run = root / "tok"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    assert main(tokenizer_args(root, run, "--train.steps=2")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run directory {run} already holds a run" in err
    assert "continue it with --train.resume=true" in err and "start again with --overwrite" in err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before  # nothing touched


def test_overwrite_deletes_the_earlier_run_first(first_run):
    root, _ = first_run
    run = root / "tok_overwritten"
    shutil.copytree(root / "tok", run)
    (run / "notes.txt").write_text("mine")
    assert main(tokenizer_args(root, run, "--overwrite", "--train.steps=2", "--train.checkpoint_every=2")) == 0
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"step_0000002.pt", "last.pt"}  # no step 3 or 6
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["2"]
    assert (run / "notes.txt").read_text() == "mine"  # not a run output: kept
    assert json.loads((run / "run_config.json").read_text())["train"]["steps"] == 2


def test_resume_and_overwrite_together_is_an_error(tmp_path, capsys):
    assert main(tokenizer_args(tmp_path, tmp_path / "r", "--train.resume=true", "--overwrite")) == 2
    assert "--overwrite would delete the run that --train.resume=true continues" in capsys.readouterr().err


def test_only_run_outputs_make_a_directory_taken(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    check_run_dir(tmp_path, resume=False, overwrite=False, section="train")  # other files: fine
    (tmp_path / "run_config.json").write_text("{}")  # a run killed before its first checkpoint
    with pytest.raises(FileExistsError, match="it saved no checkpoint: start it again with --overwrite"):
        check_run_dir(tmp_path, resume=False, overwrite=False, section="finetune")
    with pytest.raises(FileNotFoundError, match="--train.resume=true but .* has no checkpoint to continue"):
        check_run_dir(tmp_path, resume=True, overwrite=False, section="train")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(FileExistsError, match="continue it with --finetune.resume=true, or delete it"):
        check_run_dir(tmp_path, resume=False, overwrite=False, section="finetune")
    check_run_dir(tmp_path, resume=True, overwrite=False, section="train")
    check_run_dir(tmp_path, resume=False, overwrite=True, section="train")


def test_run_config_is_written_before_training(tmp_path, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(Trainer, "fit", failing_fit(seen))
    run = tmp_path / "killed"
    assert main(tokenizer_args(tmp_path, run, "--train.steps=7")) == 2
    assert "training failed at step 1" in capsys.readouterr().err
    assert seen == {"run_config": True}
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["train"]["steps"] == 7 and saved["model"]["num_codes"] == 32
    assert not list(run.glob(".*.tmp"))  # written atomically: no temporary left


def test_config_reruns_a_run_with_the_same_settings(first_run):
    root, _ = first_run
    old = json.loads((root / "tok" / "run_config.json").read_text())
    rerun = root / "tok_rerun"
    assert main(["tokenizer", "--config", str(root / "tok"), f"--train.run_dir={rerun}"]) == 0
    new = json.loads((rerun / "run_config.json").read_text())
    assert new["train"].pop("run_dir") == str(rerun) and old["train"].pop("run_dir") == str(root / "tok")
    assert new == old
    assert json.loads((rerun / "model" / "config.json").read_text()) == \
        json.loads((root / "tok" / "model" / "config.json").read_text())


def test_config_file_then_command_line_and_never_resume(first_run, tmp_path):
    root, _ = first_run
    saved = json.loads((root / "tok" / "run_config.json").read_text())
    saved["train"]["resume"] = True
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps(saved))
    cfg = load_config(TokenizerRun(), Namespace(config=str(path), overrides=["--train.steps=11"]), section="train")
    assert (cfg.model.num_codes, cfg.train.steps, cfg.train.resume) == (32, 11, False)
    assert cfg.train.betas == (0.9, 0.98) and cfg.data.stride_seconds == 2.0


def test_config_of_another_command_or_no_file_is_a_one_line_error(first_run, tmp_path, capsys):
    root, _ = first_run
    assert main(["pretrain", "--config", str(root / "tok" / "run_config.json")]) == 2
    err = capsys.readouterr().err
    # the first key pretrain lacks (it has a model.patch_size of its own)
    assert err.count("\n") == 1 and "has the key 'model.code_dim', which this command does not take" in err
    assert main(["tokenizer", "--config", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- B. CLI habits
def _help_of(lines: list[str], key: str) -> str:
    i = next(i for i, line in enumerate(lines) if line.startswith(f"  --{key}="))
    text = lines[i].split(None, 1)[1] if len(lines[i].split(None, 1)) > 1 else lines[i + 1].strip()
    assert not text.startswith("--"), f"--{key} has no help"
    return text


@pytest.mark.parametrize("command, config", [("tokenizer", TokenizerRun()), ("pretrain", PretrainRun()),
                                             ("finetune", FinetuneRun()), ("demo", DemoRun())])
def test_help_gives_every_setting_its_help_text(command, config, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    for key in config_keys(config):
        assert _help_of(lines, key)
    assert "SPEC" not in out and "examples/" not in out
    if command != "demo":
        assert "--config" in out and "--overwrite" in out


def test_cli_texts_cite_nothing_a_pip_user_lacks():
    import eegfm.cli

    for path in Path(eegfm.cli.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "SPEC " not in node.value and "examples/" not in node.value, path.name


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"eegfm {eegfm.__version__} (torch ")


def test_bare_paths_in_sources_are_files_sources(tmp_path):
    folder = tmp_path / "eeg"
    folder.mkdir()
    for name in ("a.edf", "b.edf", "c.BDF", "notes.txt"):
        (folder / name).write_text("")
    assert resolve_sources(str(folder)) == f"files:{folder}/*.BDF;files:{folder}/*.edf"
    assert resolve_sources(f"{folder / 'a.edf'};sample") == f"files:{folder / 'a.edf'};sample"
    assert resolve_sources(f"{folder}/*.edf") == f"files:{folder}/*.edf"
    assert resolve_sources("bids:/x;moabb:BNCI2014_001") == "bids:/x;moabb:BNCI2014_001"  # sources: unchanged
    with pytest.raises(ValueError, match=r"is neither a source nor an existing EEG file or folder; write "
                                         r"kind:argument, e.g. files:/data/\*.edf"):
        resolve_sources("/data/rec.edf")
    with pytest.raises(ValueError, match="notes.txt is not an EEG file MNE reads"):
        resolve_sources(str(folder / "notes.txt"))
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=f"holds no EEG files .*it is a BIDS dataset: write bids:{bids}"):
        resolve_sources(str(bids))


def test_a_bare_folder_is_read_as_its_eeg_files(tmp_path, monkeypatch, capsys):
    from eegfm.datasets import load_sample

    folder = tmp_path / "my eeg"
    folder.mkdir()
    for i, raw in enumerate(load_sample(verbose=False)[:2]):
        raw.save(folder / f"rec{i}_raw.fif", verbose=False)
    seen = {}
    monkeypatch.setattr(Trainer, "fit", failing_fit(seen))  # stop once the data is read
    args = tokenizer_args(tmp_path, tmp_path / "run", "--train.steps=2")
    args[1] = f"--data.sources={folder}"
    assert main(args) == 2 and "training failed at step 1" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["data"]["sources"] == f"files:{folder}/*.fif"
    assert main(["tokenizer", "--data.sources", "/data/rec.edf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "write kind:argument" in err


def test_forgotten_tokenizer_says_train_one_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs/tokenizer/model here
    assert main(["pretrain", "--data.sources=sample"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tokenizer=runs/tokenizer/model: no such folder" in err
    assert "train one with `eegfm tokenizer` first" in err and "Hub repo id ('owner/name')" not in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_repo_shaped_typo_says_no_such_local_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--tokenizer", "runs/tokeniser", "--data.sources=sample"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--tokenizer=runs/tokeniser: no such local folder (and not found on the Hub offline)" in err
    assert main(["finetune", "--pretrained=runs/pretrain/encodr", f"--data.cache_dir={tmp_path}"]) == 2
    assert "no such folder; pre-train an encoder with `eegfm pretrain` first" in capsys.readouterr().err


def test_a_run_ends_with_a_short_summary(first_run):
    root, printed = first_run
    lines = printed.strip().splitlines()
    assert "[eegfm.training] done" not in printed and "{" not in printed
    assert 2 <= len(lines) <= 6 and max(map(len, lines)) <= 140
    assert lines[0].startswith("tokenizer: 6 steps in ") and "3 recordings" in lines[0]
    assert lines[1].startswith("codebook: ") and f"model: {root / 'tok' / 'model'}" in printed
    assert f"plots: {root / 'tok' / 'plots'}/ (loss, codebook, spectra, montage)" in lines


# ---------------------------------------------------------------- C. the recipe on the model card
def test_the_card_s_recipe_reruns_the_run(first_run):
    """Every command of the card's recipe gives the run's settings back (resume aside)."""
    import shlex

    from eegfm.cli.overrides import apply_overrides, config_to_dict

    root, _ = first_run
    run = root / "tok"
    saved = json.loads((run / "run_config.json").read_text())
    card = (run / "model" / "README.md").read_text()
    recipe = card.split("## Training recipe")[1].split("```bash\n")[1].split("```")[0].splitlines()
    assert recipe[1] == f"eegfm tokenizer --config {run / 'run_config.json'}"
    full, typed = shlex.split(recipe[3]), shlex.split(recipe[5].removeprefix("# "))
    assert full[:2] == typed[:2] == ["eegfm", "tokenizer"]
    def as_saved(config) -> dict:  # as run_config.json holds it (tuples become lists)
        return json.loads(json.dumps(config_to_dict(config)))

    for command in (full, typed):
        assert as_saved(apply_overrides(TokenizerRun(), command[2:])) == saved
    from_file = load_config(TokenizerRun(), Namespace(config=recipe[1].split()[-1], overrides=[]), section="train")
    assert as_saved(from_file) == saved


def test_changed_settings_are_written_as_the_command_line_reads_them():
    from eegfm.cli.report import changed_settings

    cfg = TokenizerRun()
    cfg.train.betas, cfg.data.l_freq, cfg.train.resume, cfg.data.sources = (0.8, 0.9), None, True, "bids:/my data"
    assert changed_settings(cfg, TokenizerRun(), skip=("train.resume",)) == [
        "--data.sources=bids:/my data", "--data.l_freq=none", "--train.betas=0.8,0.9"]
    assert changed_settings(TokenizerRun(), TokenizerRun()) == []


def test_overwrite_deletes_the_plots_too(first_run):
    root, _ = first_run
    run = root / "tok_plots"
    shutil.copytree(root / "tok", run)
    (run / "plots" / "old.png").write_bytes(b"x")
    assert main(tokenizer_args(root, run, "--overwrite", "--train.steps=2", "--train.metrics=none")) == 0
    assert {p.name for p in (run / "plots").iterdir()} == {"spectra.png", "montage.png"}  # no metrics.csv: no curves
