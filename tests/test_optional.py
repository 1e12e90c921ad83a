"""eegfm._optional: one-line ImportErrors when braindecode is missing or its torchaudio cannot load."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from eegfm import _optional
from eegfm._optional import import_braindecode

SO = "/venv/lib/python3.11/site-packages/torchaudio/lib/_torchaudio.so"


def _raising(err):
    def fake_import(name):
        raise err
    return fake_import


def _versions(monkeypatch, torch="2.13.0+cpu", torchaudio="2.11.1"):
    monkeypatch.setattr(_optional, "_installed", {"torch": torch, "torchaudio": torchaudio}.get)


def test_imports_the_module_when_it_works():
    assert import_braindecode("json").dumps([1]) == "[1]"


def test_missing_braindecode_names_the_extra(monkeypatch):
    monkeypatch.setattr(_optional, "import_module", _raising(ModuleNotFoundError(
        "No module named 'braindecode'", name="braindecode")))
    with pytest.raises(ImportError) as info:
        import_braindecode("braindecode.models.base", needed_by="EEGMirror")
    assert str(info.value) == "EEGMirror needs braindecode, which is not installed: pip install 'eegfm[data]'"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_missing_dependency_of_braindecode_is_not_blamed_on_torch(monkeypatch):
    monkeypatch.setattr(_optional, "import_module", _raising(ModuleNotFoundError(
        "No module named 'torchaudio'", name="torchaudio")))
    with pytest.raises(ImportError) as info:
        import_braindecode(needed_by="EEGMirror")
    assert str(info.value) == ("EEGMirror needs braindecode, whose dependency torchaudio is not installed: "
                               "pip install 'eegfm[data]'")


def test_unloadable_torchaudio_says_why_and_how_to_fix(monkeypatch):
    _versions(monkeypatch)
    monkeypatch.setattr(_optional, "import_module", _raising(OSError(f"Could not load this library: {SO}")))
    with pytest.raises(ImportError) as info:
        import_braindecode("braindecode.models.base", needed_by="EEGMirror")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"EEGMirror needs braindecode, whose import of torchaudio 2.11.1 failed (OSError: Could not load this "
        f"library: {SO}) because that torchaudio was built for another torch than the installed 2.13.0+cpu: ")
    assert "pip install torchaudio==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in message
    assert "python -m eegfm.fix_torchaudio" in message
    assert isinstance(info.value.__cause__, OSError)


def test_torchaudio_remedy_for_a_torch_without_local_version(monkeypatch):
    _versions(monkeypatch, torch="2.5.1")
    monkeypatch.setattr(_optional, "import_module", _raising(ImportError(f"{SO}: undefined symbol: _ZN3c10")))
    with pytest.raises(ImportError, match=r"install the torchaudio built for torch 2\.5\.1 "
                                          r"\(pip install torchaudio==2\.5\.1\) or, if there is none"):
        import_braindecode()


def test_torchaudio_failure_found_in_the_traceback(monkeypatch):
    """An error whose message does not name torchaudio, raised from inside torchaudio's files."""
    _versions(monkeypatch)
    namespace = {}
    exec(compile("def load():\n    raise OSError('libc10_cuda.so: cannot open shared object file')\n",
                 "/site-packages/torchaudio/_extension/utils.py", "exec"), namespace)

    def fake_import(name):
        namespace["load"]()

    monkeypatch.setattr(_optional, "import_module", fake_import)
    with pytest.raises(ImportError, match=r"whose import of torchaudio 2\.11\.1 failed \(OSError: libc10_cuda\.so"):
        import_braindecode()


def test_other_failures_keep_their_first_line(monkeypatch):
    monkeypatch.setattr(_optional, "import_module", _raising(ImportError("cannot import name 'x' from 'skorch'\nmore")))
    with pytest.raises(ImportError) as info:
        import_braindecode(needed_by="EEGMirror")
    assert str(info.value) == ("EEGMirror needs braindecode, whose import failed (ImportError: cannot import name 'x' "
                               "from 'skorch'): reinstall it with pip install 'eegfm[data]'")


def test_eegfm_finetune_braindecode_raises_the_one_line_error(monkeypatch):
    _versions(monkeypatch)
    monkeypatch.setattr(_optional, "import_module", _raising(OSError(f"Could not load this library: {SO}")))
    monkeypatch.delitem(sys.modules, "eegfm.finetune.braindecode", raising=False)
    with pytest.raises(ImportError, match=r"^eegfm\.finetune\.braindecode needs braindecode, whose import of "
                                          r"torchaudio 2\.11\.1 failed \(OSError: Could not load this library"):
        importlib.import_module("eegfm.finetune.braindecode")


def test_a_broken_torchaudio_in_a_fresh_interpreter(tmp_path):
    """End to end: a torchaudio whose import raises torch's OSError, found before the real one."""
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent(f"""
        raise OSError("Could not load this library: {fake}/lib/_torchaudio.so")
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", "from eegfm.finetune.braindecode import EEGMirror"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: eegfm.finetune.braindecode needs braindecode, whose import of torchaudio ")
    assert "built for another torch" in last and "python -m eegfm.fix_torchaudio" in last
