import json

from eegfm.cli.main import main


def test_demo_runs_on_bundled_sample_and_saves_a_hub_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "eegbci_S001R04" in printed and "64 channels" in printed and "19 channels" in printed
    assert "reloaded outputs identical: True" in printed
    config = json.loads((tmp_path / "mape_encoder_tiny" / "config.json").read_text())
    assert config["embed_dim"] == 64


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
