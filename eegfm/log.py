"""How much eegfm says, the way MNE does it.

eegfm's modules log to the ``"eegfm"`` logger (``eegfm.data``, ``eegfm.pretrain``, ...). On import
that logger gets one handler that prints plain messages to stderr, at the level of the
``EEGFM_LOGGING_LEVEL`` environment variable (default ``INFO``), so that what the data
pipeline and the trainers report is shown without any set-up. Change it with
:func:`set_log_level` (``"WARNING"`` to keep only warnings) or, on the command line, with
``eegfm --log-level=WARNING ...`` / ``--quiet``. Records still propagate to the root logger
(pytest's ``caplog`` and an application's own handlers see them); an application that prints
the root logger itself can silence this handler with ``set_log_level("WARNING")``.
"""

from __future__ import annotations

import logging
import os
import sys

#: the logger every eegfm module logs under
LOGGER_NAME = "eegfm"
#: environment variable read for the level on import
ENV_LEVEL = "EEGFM_LOGGING_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (so redirection and pytest's capture see it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    def emit(self, record):
        self.stream = sys.stderr  # not setStream(): it would flush the previous stream, which may be closed
        super().emit(record)


def _level_number(level) -> int:
    if level is None:
        level = os.environ.get(ENV_LEVEL, "INFO")
    if isinstance(level, bool):
        return logging.INFO if level else logging.WARNING
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)} (or True/False, or an int), got {level!r}")
    return getattr(logging, name)


def set_log_level(level: str | int | bool | None = None) -> int:
    """Set how much eegfm prints.

    Parameters
    ----------
    level : {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} | int | bool | None
        True means ``"INFO"``, False ``"WARNING"``; None reads ``EEGFM_LOGGING_LEVEL``
        (default ``"INFO"``). Case-insensitive.

    Returns
    -------
    int
        The previous level of the ``"eegfm"`` logger (give it back to restore it).

    Raises
    ------
    ValueError
        An unknown level name.
    """
    number = _level_number(level)
    logger = logging.getLogger(LOGGER_NAME)
    previous = logger.level
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(number)
    return previous
