"""Small file-system helpers shared by the cache, the checkpoints, the metrics and the video targets.

Temporary names carry their writer: ``atomic_write`` writes ``.{name}.{pid}-{host}-{uuid}.tmp``
beside the target (``host``: :data:`HOST_TAG`). A writer that is killed leaves that file
behind; :func:`clean_stale_tmp`, called when a cache or run directory is opened, removes it
once its writer is gone (same machine, pid no longer running) or it is older than an hour.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("eegfm")

#: 8 hex digits naming this machine in temporary names: a folder shared by several machines
#: (NFS) is cleaned by pid only of the writers of the machine doing the cleaning.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]

#: Names of :func:`atomic_write`'s temporary files (also the pid-less ones of older versions).
ATOMIC_TMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-)?[0-9a-f]{32}\.tmp$")

#: errno values of a full disk or an exhausted quota.
DISK_FULL = tuple(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


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


def tmp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` that names this process (see :data:`ATOMIC_TMP`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{HOST_TAG}-{uuid.uuid4().hex}.tmp")


#: Free bytes below which a failed write is taken for a full disk (numpy and torch report a
#: full disk as "N requested and M written" without errno, or "unexpected pos").
LOW_SPACE_BYTES = 1 << 20


def out_of_space(err: BaseException, folder) -> bool:
    """Whether ``err``, raised while writing into ``folder``, means the disk (or quota) is full.

    True for an OSError whose errno is in :data:`DISK_FULL`, or for any OSError/RuntimeError
    raised while ``folder``'s file system has less than :data:`LOW_SPACE_BYTES` free (call it
    before removing the partial file, which holds the space).
    """
    if isinstance(err, OSError) and err.errno in DISK_FULL:
        return True
    if not isinstance(err, (OSError, RuntimeError)):
        return False
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def disk_full_error(err: BaseException, what: str, path, hint: str) -> OSError:
    """A one-line OSError naming ``path`` and what to do (errno of ``err`` if a disk-full one, else ENOSPC).

    Parameters
    ----------
    err : BaseException
        The original error (see :func:`out_of_space`).
    what : str
        What was being written, e.g. ``"checkpoint"``.
    path : str | os.PathLike
        The file or folder being written.
    hint : str
        What to do, e.g. ``"free space or set run_dir to a larger disk"``.
    """
    code = getattr(err, "errno", None)
    code = code if code in DISK_FULL else errno.ENOSPC
    reason = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
    return OSError(code, f"{reason} while writing {what} {path} ({hint})")


def atomic_write(path: str | os.PathLike, write: Callable, *, mode: str = "wb", newline: str | None = None,
                 what: str = "file", hint: str = "free space on that disk or write to another one") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    A crash leaves either the old file or the new one, never a half-written one; the temporary
    file is removed on error. A full disk (or quota) raises an OSError of the same errno that
    names ``path`` (as ``what``) and says what to do (``hint``). Returns ``path``.
    """
    path = Path(path)
    tmp = tmp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, newline=newline) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        full = out_of_space(err, path.parent)  # before unlinking: the partial file holds the space
        tmp.unlink(missing_ok=True)
        if full:
            raise disk_full_error(err, what, path, hint) from err
        raise
    fsync_dir(path.parent)
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; True where that cannot be told (Windows)."""
    if os.name == "nt" or pid <= 0:  # os.kill(pid, 0) terminates the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by another user
        return True
    return True


def clean_stale_tmp(folder, pattern: re.Pattern, *, max_age_s: float = 3600.0,
                    what: str = "temporary file") -> list[Path]:
    """Remove the leftovers of killed writers in ``folder``: entries whose name matches ``pattern``.

    A leftover is removed when its writer is gone (``pattern``'s ``pid`` group names no live
    process and its ``host`` group is this machine's :data:`HOST_TAG`), or when it was last
    modified ``max_age_s`` seconds ago or earlier (names without pid or host: only then).
    Files are unlinked, directories removed with their contents; each removal is logged.

    Parameters
    ----------
    folder : str | os.PathLike
        Searched (not recursively); a missing folder has nothing to clean.
    pattern : re.Pattern
        Matched against each name; optional named groups ``pid`` and ``host``.
    max_age_s : float
        Grace period for leftovers whose writer may still run; 0 removes all matches.
    what : str
        Name of the leftovers in the log.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time()
    removed = []
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        path = folder / name
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        pid, host = match.groupdict().get("pid"), match.groupdict().get("host")
        gone = pid is not None and host == HOST_TAG and not pid_alive(int(pid))
        if not gone and age < max_age_s:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        except OSError as err:
            logger.warning("could not remove stale %s %s (%s); delete it by hand", what, path, err)
            continue
        logger.info("removed stale %s %s (%s)", what, path,
                    f"writer pid {pid} is gone" if gone else f"last modified {age:.0f} s ago")
        removed.append(path)
    return removed
