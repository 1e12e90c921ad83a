"""Readers for EEG stored as text: OpenBCI GUI recordings and ARFF tables.

MNE reads neither, so these turn them into an ``mne.io.RawArray`` (volts, channel type
``eeg``) that every other part of :mod:`eegfm.data` accepts.

- :func:`read_openbci_txt`: the OpenBCI GUI text format (v5/v6 ``OpenBCI-RAW-*.txt``, and the
  older v4 layout without a column-name row). The rate and channel count come from the
  ``%`` header; the ``EXG Channel i`` columns (µV) become channels ``EXG0``.. unless the
  caller names the electrode sites (``ch_names=``). The file does not record where the
  electrodes were, so unnamed channels have no scalp position.
- :func:`read_arff`: Weka's ARFF (e.g. UCI "EEG Eye State"). Numeric attributes become
  channels named by the attribute; label attributes are returned beside the raw, one value
  per sample. ``scipy.io.arff`` parses the values; a first pass over the text checks the
  structure, because scipy silently drops extra values on a row and fails without a message
  when ``@DATA`` is missing. ARFF has no sampling rate, so ``sfreq`` is required.

Every error is one line that starts with the file's path.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np

__all__ = ["read_arff", "read_openbci_txt"]

_OPENBCI_RATE = re.compile(r"sample\s*rate\s*=\s*([0-9]*\.?[0-9]+)\s*hz", re.I)
_OPENBCI_NCHAN = re.compile(r"number\s+of\s+channels\s*=\s*([0-9]+)", re.I)
_OPENBCI_EXG = re.compile(r"^exg\s*channel\s*([0-9]+)$", re.I)


def _check_names(path, names: Sequence[str], n: int, what: str) -> list[str]:
    names = [str(c) for c in names]
    if len(names) != n:
        raise ValueError(f"{path}: {what} has {len(names)} names for {n} channels")
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise ValueError(f"{path}: {what} names channels more than once: {duplicates}")
    return names


def read_openbci_txt(path, ch_names: Sequence[str] | None = None, *, verbose=None) -> mne.io.RawArray:
    """Read an OpenBCI GUI text recording (``%`` header, then CSV rows).

    The header must state ``Sample Rate = <f> Hz`` and ``Number of channels = <N>``. In the
    v5/v6 format one column-name row follows (``Sample Index, EXG Channel 0, ..., EXG Channel
    N-1, Accel Channel 0, ..., Timestamp, ...``) and the EXG columns are found by name; a file
    without that row (GUI v4) has the N EXG columns right after the sample index. Accelerometer,
    aux, timestamp and marker columns are not read. Lines starting with ``%`` anywhere and
    blank lines are skipped.

    Parameters
    ----------
    path : str | Path
        The ``.txt`` (or ``.csv``) file written by the OpenBCI GUI.
    ch_names : sequence of str, optional
        The electrode site of each EXG column, in order (``ch_names[i]`` names ``EXG Channel
        i``), e.g. ``["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]``; then eegfm's montage
        code finds their positions. Default: ``EXG0`` .. ``EXG{N-1}``, which have no position
        (:class:`~eegfm.data.EEGCorpus` skips such a recording, naming the channels, unless
        it is given ``positions=``).
    verbose : bool | str | int | None
        MNE verbosity of the ``RawArray`` constructor (default quiet).

    Returns
    -------
    mne.io.RawArray
        N channels of type ``eeg``, data of shape (N, T) in volts (the file's µV × 1e-6),
        ``sfreq`` from the header; T is the number of data rows.

    Raises
    ------
    ValueError
        The rate or channel count is missing from the header, an EXG column is missing, a
        row has too few values or a value that is not a number (the line is named), there
        are no data rows, or ``ch_names`` has the wrong length or repeats a name.
    """
    path = Path(path)
    rate = n_channels = None
    rows: list[tuple[int, str]] = []  # (1-based line number, text)
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if text.startswith("%"):
                if rate is None and (m := _OPENBCI_RATE.search(text)):
                    rate = float(m.group(1))
                if n_channels is None and (m := _OPENBCI_NCHAN.search(text)):
                    n_channels = int(m.group(1))
            elif text:
                rows.append((lineno, text))
    if rate is None or not 0 < rate < np.inf:
        raise ValueError(f"{path}: no 'Sample Rate = <rate> Hz' line (> 0) in the '%' header; "
                         "is this an OpenBCI GUI text file?")
    if not n_channels:
        raise ValueError(f"{path}: no 'Number of channels = <N>' line (N > 0) in the '%' header; "
                         "is this an OpenBCI GUI text file?")
    names = [f"EXG{i}" for i in range(n_channels)] if ch_names is None else \
        _check_names(path, ch_names, n_channels, "ch_names")
    if not rows:
        raise ValueError(f"{path}: no data rows after the '%' header")
    first = [c.strip() for c in rows[0][1].split(",")]
    if first[0] and (first[0][0].isdigit() or first[0][0] in "+-."):  # v4: no column-name row
        columns = list(range(1, n_channels + 1))
    else:
        found = {int(m.group(1)): i for i, c in enumerate(first) if (m := _OPENBCI_EXG.match(c))}
        missing = [i for i in range(n_channels) if i not in found]
        if missing:
            raise ValueError(f"{path}: the column-name row (line {rows[0][0]}) has no 'EXG Channel {missing[0]}' "
                             f"column although the header says {n_channels} channels")
        columns = [found[i] for i in range(n_channels)]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path}: no data rows after the column-name row")
    need = max(columns) + 1
    data = np.empty((len(rows), n_channels), dtype=np.float64)  # (T, N) µV
    for t, (lineno, text) in enumerate(rows):
        values = text.split(",")
        if len(values) < need:
            raise ValueError(f"{path}: line {lineno} has {len(values)} values, "
                             f"expected at least {need} (sample index + {n_channels} EXG channels)")
        try:
            data[t] = [float(values[c]) for c in columns]
        except ValueError:
            bad = next(values[c].strip() for c in columns if not _is_float(values[c]))
            raise ValueError(f"{path}: line {lineno}: EXG value {bad!r} is not a number") from None
    info = mne.create_info(names, rate, ch_types="eeg", verbose=False)
    return mne.io.RawArray(data.T * 1e-6, info, verbose=False if verbose is None else verbose)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_ARFF_ATTRIBUTE = re.compile(r"^@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.+?)\s*$", re.I)
#: Default label attributes: names ending in one of these words (``eyeDetection``, ``class``, ...).
LABEL_NAME = re.compile(r"(detection|label|labels|class|target|state)$", re.I)


def _arff_fields(text: str) -> list[str]:
    if "'" not in text and '"' not in text:
        return text.split(",")
    quote = "'" if "'" in text else '"'
    return next(csv.reader([text], quotechar=quote, skipinitialspace=True))


def _arff_structure(path, text: str):
    """Check an ARFF file's layout; return the attributes [(name, type)] and data rows' line numbers."""
    attributes, data_line = [], None
    lines = text.splitlines()
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if data_line is None:
            low = stripped.lower()
            if low.startswith("@attribute"):
                m = _ARFF_ATTRIBUTE.match(stripped)
                if m is None:
                    raise ValueError(f"{path}: line {lineno}: cannot read the @ATTRIBUTE line {stripped!r}")
                name, kind = m.group(1).strip("'\""), m.group(2)
                if kind.lower().startswith(("relational", "string")):
                    raise ValueError(f"{path}: line {lineno}: {kind.split()[0]} attribute {name!r} is not supported")
                attributes.append((name, kind))
            elif low.startswith("@data"):
                data_line = lineno
            elif not low.startswith(("@relation", "@end")):
                hint = "" if stripped.startswith("@") else " (is the @DATA line missing?)"
                raise ValueError(f"{path}: line {lineno}: expected @RELATION, @ATTRIBUTE or @DATA, "
                                 f"got {stripped[:40]!r}{hint}")
            continue
        if stripped.startswith("{"):
            raise ValueError(f"{path}: line {lineno}: sparse ARFF rows ({{index value, ...}}) are not supported")
        n = len(_arff_fields(stripped))
        if n != len(attributes):
            raise ValueError(f"{path}: line {lineno} has {n} values, expected {len(attributes)} "
                             f"(one per @ATTRIBUTE)")
    if data_line is None:
        raise ValueError(f"{path}: no @DATA line; is this an ARFF file?")
    if not attributes:
        raise ValueError(f"{path}: no @ATTRIBUTE lines before @DATA (line {data_line})")
    names = [name for name, _ in attributes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: attributes named more than once: {duplicates}")
    return attributes, data_line, lines


def _first_bad_value(path, lines, data_line, numeric):
    """Line and value of the first non-numeric entry in a numeric column (only on scipy's error path)."""
    for lineno, line in enumerate(lines[data_line:], data_line + 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        fields = _arff_fields(stripped)
        for i in numeric:
            value = fields[i].strip().strip("'\"")
            if value != "?" and not _is_float(value):
                return f"{path}: line {lineno}: value {value!r} of a numeric attribute is not a number"
    return None


def _label_values(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind in "SU":  # nominal: integers stay integers, other values strings
        values = np.char.decode(column, "utf-8") if column.dtype.kind == "S" else column
        try:
            return values.astype(np.int64)
        except ValueError:
            return values.astype(str)
    return np.asarray(column, dtype=np.float64)


def read_arff(path, *, sfreq: float, label_columns: Sequence[str] | None = None, scale: float = 1e-6,
              verbose=None) -> tuple[mne.io.RawArray, dict[str, np.ndarray]]:
    """Read an ARFF table of EEG samples (one row per sample, one attribute per channel).

    Numeric attributes become channels named by their attribute names, in file order;
    label attributes are returned separately, never as channels. Lines starting with ``%``,
    blank lines and CRLF line endings are fine; a missing value ``?`` in a channel is NaN
    (which :func:`~eegfm.data.preprocess` refuses, naming the channel).

    Parameters
    ----------
    path : str | Path
        The ``.arff`` file.
    sfreq : float
        Sampling rate in Hz; ARFF does not store one (UCI "EEG Eye State": 128).
    label_columns : sequence of str, optional
        Attributes that are labels, not channels. Default: every attribute whose name ends in
        ``Detection``, ``label(s)``, ``class``, ``target`` or ``state`` (any case; e.g.
        ``eyeDetection``). Non-numeric (nominal, date) attributes are always labels.
    scale : float
        Multiplies the channel values to give volts (default 1e-6: the file is in µV).
    verbose : bool | str | int | None
        MNE verbosity of the ``RawArray`` constructor (default quiet).

    Returns
    -------
    raw : mne.io.RawArray
        C channels of type ``eeg``, data of shape (C, T) in volts, T = the number of data rows.
    labels : dict of str to np.ndarray
        One array of shape (T,) per label attribute, in file order, aligned with the samples:
        int64 for nominal labels whose values are all integers (``eyeDetection``: 0 = open,
        1 = closed), str for other nominal labels, float64 for numeric ones.

    Raises
    ------
    ValueError
        No ``@DATA`` or no ``@ATTRIBUTE`` line, a row whose number of values differs from the
        number of attributes, a non-numeric value in a channel, sparse rows, string or
        relational attributes (the line is named), no data rows, no numeric channel, a
        ``label_columns`` name that is not an attribute, or ``sfreq`` not > 0.

    Notes
    -----
    Labels are returned beside the raw rather than as a stim channel so that they keep their
    values and type (nominal strings stay strings), and so the raw holds only signals.
    """
    from scipy.io import arff

    path = Path(path)
    if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float, np.integer, np.floating)) \
            or not 0 < sfreq < np.inf:
        raise ValueError(f"{path}: sfreq must be a finite rate in Hz > 0 (ARFF stores none), got {sfreq!r}")
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        text = f.read()
    attributes, data_line, lines = _arff_structure(path, text)
    names = [name for name, _ in attributes]
    if label_columns is None:
        labels = [name for name in names if LABEL_NAME.search(name)]
    else:
        labels = [str(c) for c in label_columns]
        unknown = [c for c in labels if c not in names]
        if unknown:
            raise ValueError(f"{path}: label_columns {unknown} are not attributes; the attributes are {names}")
    try:
        table, meta = arff.loadarff(io.StringIO(text))
    except Exception as err:  # scipy's errors name neither the file nor the line
        numeric = [i for i, (_, kind) in enumerate(attributes) if kind.lower() in ("numeric", "real", "integer")]
        raise ValueError(_first_bad_value(path, lines, data_line, numeric)
                         or f"{path}: scipy.io.arff cannot read it: {type(err).__name__}: {err}") from None
    if len(table) == 0:
        raise ValueError(f"{path}: no data rows after @DATA (line {data_line})")
    kinds = dict(zip(meta.names(), meta.types()))
    labels += [name for name in meta.names() if kinds[name] != "numeric" and name not in labels]
    channels = [name for name in meta.names() if name not in labels]
    if not channels:
        raise ValueError(f"{path}: no numeric attribute left as a channel (labels: {labels})")
    data = np.stack([np.asarray(table[name], dtype=np.float64) for name in channels]) * scale  # (C, T) V
    info = mne.create_info(channels, float(sfreq), ch_types="eeg", verbose=False)
    raw = mne.io.RawArray(data, info, verbose=False if verbose is None else verbose)
    return raw, {name: _label_values(table[name]) for name in meta.names() if name in labels}
