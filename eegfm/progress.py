"""Progress bars that suit where the output goes.

On a terminal or in a notebook, :func:`progress_bar` is ``tqdm.auto.tqdm``. When stderr is a
file or a pipe (``nohup``, a batch scheduler, CI), a redrawn bar would write one ever-longer
line of carriage returns; there it prints a plain line (``desc: 120/2000 [...]``) at most once
every :data:`LOG_INTERVAL_S` seconds, plus the last one, so logs stay readable.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm as _plain_tqdm

#: seconds between two progress lines when stderr is not a terminal
LOG_INTERVAL_S = 30.0


class _Lines:
    """A stream wrapper that drops tqdm's bare cursor writes (``"\\n"``, ``"\\r"``) so that only
    the full lines written by :meth:`_LineTqdm.display` remain."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str):
        if text.strip():
            self.stream.write(text)

    def flush(self):
        getattr(self.stream, "flush", lambda: None)()


class _LineTqdm(_plain_tqdm):
    """tqdm that writes each refresh as its own newline-terminated line (for log files)."""

    def __init__(self, iterable=None, **kwargs):
        kwargs["file"] = _Lines(kwargs.get("file") or sys.stderr)
        super().__init__(iterable, **kwargs)

    def display(self, msg=None, pos=None):  # noqa: D102 - tqdm's hook
        line = (msg if msg is not None else self.__str__()).strip()
        if line and line != getattr(self, "_last_line", None):
            self._last_line = line
            self.fp.write(line + "\n")
            self.fp.flush()
        return True


def _interactive(stream) -> bool:
    if "ipykernel" in sys.modules:  # a notebook: tqdm.auto draws a widget
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar over ``iterable`` (or with ``total=``), shaped for the output it writes to.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over (as ``tqdm(iterable)``).
    enabled : bool
        False: a disabled bar (iterates, prints nothing).
    **kwargs
        Passed to tqdm (``desc``, ``total``, ``initial``, ``unit``, ``postfix`` ...).

    Returns
    -------
    tqdm.tqdm
        ``tqdm.auto.tqdm`` on a terminal or in a notebook; elsewhere a bar that prints a plain
        line at most every :data:`LOG_INTERVAL_S` s (``TQDM_MININTERVAL`` overrides it).
    """
    stream = kwargs.get("file") or sys.stderr
    if not enabled:
        return _plain_tqdm(iterable, disable=True, **kwargs)
    if _interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    kwargs.setdefault("mininterval", float(os.environ.get("TQDM_MININTERVAL", LOG_INTERVAL_S)))
    kwargs.pop("dynamic_ncols", None)
    kwargs.setdefault("ncols", 120)
    kwargs.setdefault("ascii", True)
    return _LineTqdm(iterable, **kwargs)
