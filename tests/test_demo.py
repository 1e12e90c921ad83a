import json
import re

from eegfm.cli.main import main


def test_demo_runs_the_whole_path_on_the_bundled_sample(tmp_path, capsys):
    assert main(["demo", f"--out={tmp_path}", "--tokenizer_steps=12", "--pretrain_steps=12", "--progress=false"]) == 0
    printed = capsys.readouterr().out
    assert "3 recordings, 53 windows of 4 s" in printed
    # the final codebook on the windows encoded after training, not counts over the run (k-means start included)
    assert "codebook: final codebook on 53 windows encoded after training uses " in printed and "perplexity" in printed
    tokenizer = json.loads((tmp_path / "tokenizer" / "evaluation.json").read_text())
    assert tokenizer["codebook"]["windows"] == 53 and tokenizer["codebook"]["num_codes"] == 128
    assert ("WARNING: the codebook collapsed" in printed) == tokenizer["codebook"]["collapsed"]
    assert "masked-token accuracy: random" in printed and "most-frequent-code baseline" in printed
    assert "reloaded outputs identical: True" in printed
    config = json.loads((tmp_path / "pretrain" / "encoder" / "config.json").read_text())
    assert config["embed_dim"] == 64 and config["preprocessing"]["l_freq"] == 0.5
    # the demo ends with its own timing: wall time and CPU time of the whole run
    last = printed.strip().splitlines()[-1]
    assert re.fullmatch(r"demo: \d+ s wall, \d+ CPU-s", last), last


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "demo" in out and "tokenizer" in out and "pretrain" in out


def test_setup_script_options():
    """scripts/setup.sh: --demo (core dependencies only) and the full dev set-up; anything else is refused."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--demo" in shown.stdout and "dev extras" in shown.stdout
    refused = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown option --bogus" in refused.stderr
