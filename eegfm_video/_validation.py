"""Argument validators shared by eegfm_video: each message names the argument and the value."""

from __future__ import annotations

import difflib
import math

__all__ = ["check_option", "check_positive_int", "check_weight"]


def check_option(name: str, value, allowed: tuple[str, ...]) -> None:
    """``value`` must be one of ``allowed`` (with a "Did you mean ...?" hint)."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.{hint}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """``value`` must be an int (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_weight(name: str, value) -> None:
    """``value`` must be a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
