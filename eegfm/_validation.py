"""Argument checks shared by eegfm and eegfm_video: each message names the setting and the value.

The one place that spells "did you mean": an unknown name in any setting, config file, model
name, montage or command-line key is answered the same way, by :func:`did_you_mean` (a sentence
after the error) or :func:`with_guess` (an aside in a list of unknown names).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable

__all__ = ["check_option", "check_positive_int", "check_weight", "did_you_mean", "with_guess"]


def did_you_mean(name, choices: Iterable, *, n: int = 1, show: Callable[[str], str] = repr) -> str:
    """``" Did you mean 'x'?"`` (``'x' or 'y'`` for up to ``n``), or ``""`` when nothing is close.

    Parameters
    ----------
    name : object
        The unknown name (compared as ``str(name)``).
    choices : iterable of str
        The known names, in the order ties are broken.
    n : int
        How many close names to offer at most.
    show : callable
        How each offered name is written (default ``repr``; e.g. ``lambda k: f"--{k}"``).
    """
    close = difflib.get_close_matches(str(name), list(choices), n=n)
    return f" Did you mean {' or '.join(map(show, close))}?" if close else ""


def with_guess(name, choices: Iterable) -> str:
    """``"'name' (did you mean 'x'?)"``, or ``"'name'"`` when nothing is close: for lists of unknown keys."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def check_option(name: str, value, allowed: tuple[str, ...]) -> None:
    """``value`` must be one of ``allowed`` (with a "Did you mean ...?" hint)."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.{did_you_mean(value, allowed)}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """``value`` must be an int (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_weight(name: str, value) -> None:
    """``value`` must be a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
