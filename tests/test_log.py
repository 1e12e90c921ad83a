"""eegfm.set_log_level and the CLI's --log-level / --quiet (MNE-style logging)."""

import logging
import subprocess
import sys

import pytest

import eegfm
from eegfm.cli.main import _pop_log_level, main


@pytest.fixture(autouse=True)
def restore_level():
    previous = logging.getLogger("eegfm").level
    yield
    logging.getLogger("eegfm").setLevel(previous)


def test_info_messages_print_by_default_and_warning_level_hides_them(capsys):
    eegfm.set_log_level("INFO")
    logging.getLogger("eegfm.data").info("recordings ready")
    assert "recordings ready" in capsys.readouterr().err
    previous = eegfm.set_log_level("warning")
    assert previous == logging.INFO
    logging.getLogger("eegfm.data").info("hidden")
    logging.getLogger("eegfm.data").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err


def test_bool_levels_and_one_handler():
    eegfm.set_log_level(False)
    assert logging.getLogger("eegfm").level == logging.WARNING
    eegfm.set_log_level(True)
    assert logging.getLogger("eegfm").level == logging.INFO
    eegfm.set_log_level("DEBUG")
    own = [h for h in logging.getLogger("eegfm").handlers if type(h).__name__ == "_StderrHandler"]
    assert len(own) == 1


def test_unknown_level_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL.*'LOUD'"):
        eegfm.set_log_level("LOUD")


def test_environment_variable_sets_the_level_on_import():
    code = "import logging, eegfm; print(logging.getLogger('eegfm').level)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"EEGFM_LOGGING_LEVEL": "ERROR", "PATH": ""}).stdout
    assert out.strip() == str(logging.ERROR)


def test_cli_flags_are_taken_out_wherever_they_are():
    assert _pop_log_level(["pretrain", "--quiet", "--train.steps=3"]) == (["pretrain", "--train.steps=3"], "WARNING")
    assert _pop_log_level(["--log-level", "debug", "pretrain"]) == (["pretrain"], "debug")
    assert _pop_log_level(["pretrain", "--log-level=ERROR"]) == (["pretrain"], "ERROR")
    assert _pop_log_level(["pretrain"]) == (["pretrain"], None)


def test_cli_bad_level_exits_2_with_one_line(capsys):
    assert main(["--log-level=LOUD", "pretrain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["eegfm: error: --log-level: log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL "
                   "(or True/False, or an int), got 'LOUD'"]


def test_cli_quiet_sets_warning(capsys):
    assert main(["--quiet", "--version"]) == 0
    assert logging.getLogger("eegfm").level == logging.WARNING
    assert capsys.readouterr().out.startswith("eegfm ")
