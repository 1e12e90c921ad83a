"""python -m eegfm.fix_torchaudio: removes torchaudio's compiled extensions only when they cannot load."""

import subprocess
import sys

import pytest

from eegfm import fix_torchaudio


@pytest.fixture
def lib(tmp_path, monkeypatch):
    """A fake ``torchaudio/lib`` with two compiled extensions and one other file."""
    lib = tmp_path / "torchaudio" / "lib"
    lib.mkdir(parents=True)
    for name in ("_torchaudio.so", "libtorchaudio.so", "keep.py"):
        (lib / name).write_text("")
    monkeypatch.setattr(fix_torchaudio, "torchaudio_lib_dir", lambda: lib)
    return lib


def _imports(monkeypatch, results):
    """``_import_ok`` answers from ``results``: module -> list of (ok, last error line), in call order."""
    calls = []

    def fake(module):
        calls.append(module)
        return results[module].pop(0)

    monkeypatch.setattr(fix_torchaudio, "_import_ok", fake)
    return calls


OSERR = "OSError: Could not load this library: /x/torchaudio/lib/_torchaudio.so"


def test_removes_the_unloadable_extensions_then_checks_braindecode(lib, monkeypatch, capsys):
    calls = _imports(monkeypatch, {"torchaudio": [(False, OSERR)], "braindecode": [(True, "")]})
    assert fix_torchaudio.main([]) == 0
    assert sorted(p.name for p in lib.iterdir()) == ["keep.py"]
    assert calls == ["torchaudio", "braindecode"]
    out = capsys.readouterr().out
    assert f"removed 2 files from {lib}" in out and "import braindecode: ok" in out


def test_dry_run_removes_nothing(lib, monkeypatch, capsys):
    _imports(monkeypatch, {"torchaudio": [(False, OSERR)]})
    assert fix_torchaudio.main(["--dry-run"]) == 0
    assert len(list(lib.iterdir())) == 3
    assert "would remove 2 files" in capsys.readouterr().out


def test_a_working_torchaudio_is_never_touched(lib, monkeypatch, capsys):
    _imports(monkeypatch, {"torchaudio": [(True, "")], "braindecode": [(True, "")]})
    assert fix_torchaudio.main([]) == 0
    assert len(list(lib.iterdir())) == 3


def test_another_torchaudio_failure_is_left_alone(lib, monkeypatch, capsys):
    _imports(monkeypatch, {"torchaudio": [(False, "ImportError: cannot import name 'x'")]})
    assert fix_torchaudio.main([]) == 1
    assert len(list(lib.iterdir())) == 3
    assert "fails for another reason, left alone" in capsys.readouterr().err


def test_braindecode_still_failing_is_reported(lib, monkeypatch, capsys):
    _imports(monkeypatch, {"torchaudio": [(False, OSERR)], "braindecode": [(False, "ImportError: boom")]})
    assert fix_torchaudio.main([]) == 1
    assert "import braindecode still fails: ImportError: boom" in capsys.readouterr().err


def test_nothing_to_fix_without_torchaudio(monkeypatch, capsys):
    monkeypatch.setattr(fix_torchaudio, "torchaudio_lib_dir", lambda: None)
    assert fix_torchaudio.main([]) == 0
    assert "torchaudio is not installed" in capsys.readouterr().out


def test_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "eegfm.fix_torchaudio", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m eegfm.fix_torchaudio [-h] [--dry-run]")
