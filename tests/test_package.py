"""The package as a user meets it: imports, public API (the examples: tests/test_examples.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_eegfm_does_not_import_braindecode_or_torchaudio():
    code = "import sys, eegfm, eegfm_video; print(sorted(m for m in ('braindecode', 'torchaudio', 'moabb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api():
    import eegfm

    for name in ("MAPEEncoder", "NeuralTokenizer", "MaskedPretrainer", "proportion_coordinates", "pad_recordings", "create_model", "list_models",
                 "UnknownChannelError", "ModelLoadError", "__version__"):
        assert hasattr(eegfm, name), name
    assert eegfm.__version__.startswith("0.")


def test_braindecode_imports_beside_cpu_torch():
    """The setup's torchaudio fix must leave braindecode importable (benchmarks use it)."""
    out = subprocess.run([sys.executable, "-c", "import braindecode.models"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_eegfm_video_imports_lazily_and_exports_its_api():
    code = ("import sys, eegfm_video; assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules; "
            "names = eegfm_video.__all__[1:]; [getattr(eegfm_video, n) for n in names]; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) >= 30


def _package_files():
    """Every module of the installed eegfm and eegfm_video, except eegfm/cli (checked by its own tests)."""
    import eegfm
    import eegfm_video

    files = []
    for package in (eegfm, eegfm_video):
        root = Path(package.__file__).parent
        files += [p for p in sorted(root.rglob("*.py"))
                  if not p.relative_to(root.parent).as_posix().startswith("eegfm/cli/")]
    return files


# What a pip user does not have: the repository's spec sections and example scripts.
_NOT_SHIPPED = ("SPEC ", "examples/")


def test_user_facing_text_names_only_what_a_pip_user_has():
    """Docstrings, help texts and error messages (every string literal; comments may keep SPEC notes)."""
    import ast

    found = []
    for path in _package_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [f"{path.name}:{node.lineno}: {word!r}" for word in _NOT_SHIPPED if word in node.value]
    assert len(_package_files()) > 50
    assert not found, found


def test_eegfm_video_help_names_only_what_a_pip_user_has(capsys):
    from eegfm_video.cli import main

    for argv in (["--help"], ["train", "--help"], ["generate", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert text.startswith("usage: eegfm-video")
        assert not [word for word in _NOT_SHIPPED if word in text], argv
