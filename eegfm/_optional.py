"""Optional dependencies, imported where they are used, with an error that says what to run.

``import eegfm`` needs none of them. braindecode (``eegfm[data]``) imports torchaudio, whose
compiled library fails to load when the torchaudio wheel was built for another torch (or for
CUDA beside a CPU-only torch); :func:`import_braindecode` turns that failure, and a missing
braindecode, into one ``ImportError`` line: what failed, why, and the command that fixes it.
"""

from __future__ import annotations

import traceback
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

__all__ = ["DATA_EXTRA", "braindecode_import_error", "import_braindecode"]

#: The install command of the extra that brings braindecode, MOABB and mne-bids.
DATA_EXTRA = "pip install 'eegfm[data]'"

#: The command that removes torchaudio's unloadable compiled extensions (eegfm/fix_torchaudio.py).
FIX_TORCHAUDIO = "python -m eegfm.fix_torchaudio"


def _installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _from_torchaudio(err: BaseException) -> bool:
    """Whether ``err`` was raised while torchaudio loaded (its message or a frame names torchaudio)."""
    if "torchaudio" in str(err):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    return any("torchaudio" in frame.filename.replace("\\", "/").split("/") for frame in frames)


def _torchaudio_remedy() -> str:
    """``pip install torchaudio==<torch's version>`` (from the CPU index for a CPU torch), or the fix module."""
    torch_version = _installed("torch") or "?"
    base, _, local = torch_version.partition("+")
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    return (f"install the torchaudio built for torch {torch_version} (pip install torchaudio=={base}{index}) or, "
            f"if there is none, run {FIX_TORCHAUDIO} (removes torchaudio's compiled extensions; braindecode "
            "uses only its pure-Python parts)")


def braindecode_import_error(err: BaseException, needed_by: str) -> ImportError:
    """The one-line ``ImportError`` for a failed ``import braindecode...``.

    Parameters
    ----------
    err : ImportError | OSError
        What the import raised.
    needed_by : str
        What needs braindecode, named at the start of the message (e.g. ``"EEGMirror"``).

    Returns
    -------
    ImportError
        Its message says what failed, why and what to run.
    """
    first_line = (str(err).strip().splitlines() or [""])[0]
    missing = (err.name or "?").split(".")[0] if isinstance(err, ModuleNotFoundError) else None
    if missing == "braindecode":
        message = f"{needed_by} needs braindecode, which is not installed: {DATA_EXTRA}"
    elif missing:
        message = f"{needed_by} needs braindecode, whose dependency {missing} is not installed: {DATA_EXTRA}"
    elif _from_torchaudio(err):
        torchaudio = _installed("torchaudio") or "?"
        message = (f"{needed_by} needs braindecode, whose import of torchaudio {torchaudio} failed "
                   f"({type(err).__name__}: {first_line}) because that torchaudio was built for another torch than "
                   f"the installed {_installed('torch') or '?'}: {_torchaudio_remedy()}")
    else:
        message = (f"{needed_by} needs braindecode, whose import failed ({type(err).__name__}: {first_line}): "
                   f"reinstall it with {DATA_EXTRA}")
    return ImportError(message)


def import_braindecode(module: str = "braindecode", needed_by: str = "eegfm") -> ModuleType:
    """Import braindecode (or one of its modules), with an install hint when that fails.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"braindecode.models.base"``.
    needed_by : str
        What needs it, named in the error (e.g. ``"eegfm.finetune.braindecode"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        One line: braindecode is not installed (``pip install 'eegfm[data]'``), or torchaudio
        cannot load its compiled library because it was built for another torch (install the
        matching torchaudio, or run ``python -m eegfm.fix_torchaudio``), or another failure with
        its first line.
    """
    try:
        return import_module(module)
    except (ImportError, OSError) as err:
        raise braindecode_import_error(err, needed_by) from err
