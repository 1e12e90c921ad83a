"""Open a ``.npy`` file as a read-only memory map, safely from many threads at once.

``np.load(path, mmap_mode="r")`` parses the file's header with :func:`ast.literal_eval`. On
CPython 3.11 the AST constructor keeps its recursion depth in state shared by all threads,
so two threads parsing at once can fail with ``SystemError: AST constructor recursion depth
mismatch`` (python/cpython#106905; seen in this project's CI). The window loader opens recordings from reading threads while the main thread
opens others (code caches, recordings), so it hit exactly that. :func:`open_npy_map` reads
the simple headers ``np.save`` writes for plain arrays (``descr``, ``fortran_order``,
``shape``) with a regular expression instead, and falls back to ``np.load`` under one
process-wide lock for anything else (structured dtypes, unknown versions).
"""

from __future__ import annotations

import os
import re
import struct
import threading

import numpy as np

__all__ = ["open_npy_map"]

_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(
    r"\{\s*'descr':\s*'(?P<descr>[<>|=]?[a-zA-Z]\d*)',\s*'fortran_order':\s*(?P<fortran>True|False),"
    r"\s*'shape':\s*\((?P<shape>[\d,\s]*)\),?\s*\}\s*$"
)
_FALLBACK_LOCK = threading.Lock()


def _parse_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...], bool, int] | None:
    """(dtype, shape, fortran order, data offset) of a plain array's header, or None if not one."""
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC) + 2)
        if len(head) < len(_MAGIC) + 2 or head[:len(_MAGIC)] != _MAGIC:
            return None
        major = head[len(_MAGIC)]
        size = {1: 2, 2: 4, 3: 4}.get(major)
        field = fh.read(size) if size else b""
        if len(field) != size:  # an unknown version or a truncated file: np.load says what is wrong
            return None
        (length,) = struct.unpack("<H" if size == 2 else "<I", field)
        header = fh.read(length)
        offset = fh.tell()
    if len(header) != length:
        return None
    match = _HEADER.match(header.decode("utf-8" if major == 3 else "latin1", errors="replace"))
    if match is None:
        return None
    dtype = np.dtype(match["descr"])
    if dtype.hasobject:
        return None
    shape = tuple(int(s) for s in match["shape"].replace(" ", "").split(",") if s)
    return dtype, shape, match["fortran"] == "True", offset


def open_npy_map(path: str | os.PathLike) -> np.ndarray:
    """The array in the ``.npy`` file ``path``, memory-mapped read-only, as ``np.load(path, mmap_mode="r")``.

    Safe to call from many threads at once (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``np.save``.

    Returns
    -------
    numpy.ndarray
        A read-only ``np.memmap`` with the file's dtype and shape.
    """
    parsed = _parse_header(path)
    if parsed is None:
        with _FALLBACK_LOCK:  # np.load's header parser is not thread-safe on CPython 3.11
            return np.load(path, mmap_mode="r", allow_pickle=False)
    dtype, shape, fortran, offset = parsed
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
