"""Small file-system helpers shared by the cache, the checkpoints, the metrics and the video targets."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (after a rename) to disk; a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable, *, mode: str = "wb", newline: str | None = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    A crash leaves either the old file or the new one, never a half-written one; the temporary
    file is removed on error. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, mode, newline=newline) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
