"""What a training command leaves for people to read: the model card's facts and the plots.

:func:`card_recipe` writes the command that reruns a run (from its ``run_config.json``, and in
full, setting by setting, for a machine without that file); :func:`data_facts` and
:func:`caps_of` describe the recordings a run used; :func:`write_plots` saves the figures of
:mod:`eegfm.plots` into ``<run_dir>/plots/`` (skipped with one WARNING line when matplotlib is
missing).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..model_card import DataFacts
from .overrides import _show, config_to_dict
from .rundir import RUN_CONFIG

__all__ = ["PLOTS", "caps_of", "card_recipe", "changed_settings", "data_facts", "patch_spectra", "plots_line",
           "spectra_figure", "typed_command", "write_plots"]

#: The folder of a run directory that holds its figures.
PLOTS = "plots"

logger = logging.getLogger("eegfm.plots")


# ---------------------------------------------------------------------------- recipe
def typed_command(command: str, args) -> str:
    """The command line as typed: ``eegfm <command> [--config FILE] --key=value... [--overwrite]``."""
    parts = ["eegfm", command]
    if getattr(args, "config", None):
        parts += ["--config", str(args.config)]
    parts += list(getattr(args, "overrides", None) or [])
    if getattr(args, "overwrite", False):
        parts.append("--overwrite")
    return shlex.join(parts)


def _flat(values: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def changed_settings(config, default, *, skip: Sequence[str] = ()) -> list[str]:
    """``--key=value`` of every setting of the dataclass ``config`` that differs from ``default``'s.

    Values are written as the command line reads them (``true``, ``none``, ``a,b``); keys in
    ``skip`` (e.g. ``"train.resume"``) are left out.
    """
    now, before = _flat(config_to_dict(config)), _flat(config_to_dict(default))
    return [f"--{key}={_show(value)}" for key, value in now.items()
            if key not in skip and (key not in before or before[key] != value)]


def card_recipe(command: str, config, default, run_dir, *, typed: str | None = None,
                skip: Sequence[str] = ()) -> str:
    """The "Training recipe" of a run's model card (a bash block's lines).

    ``eegfm <command> --config <run_dir>/run_config.json``; the same settings in full (every
    setting that differs from the defaults), which rerun it on a machine without that file;
    and the command as typed (``typed``), when given.
    """
    full = shlex.join(["eegfm", command, *changed_settings(config, default, skip=skip)])
    lines = [f"# rerun with this run's settings (saved in the run directory, {RUN_CONFIG}):",
             shlex.join(["eegfm", command, "--config", str(Path(run_dir) / RUN_CONFIG)]),
             "# the same settings in full (every one that differs from the defaults):",
             full]
    if typed:
        lines += ["# as typed:", f"# {typed}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- data
def caps_of(entries) -> list[tuple[str, list[str], np.ndarray]]:
    """The distinct caps (channel lists) of cache entries, most recordings first.

    Returns
    -------
    list of (label, channel names, positions (n_channels, 2))
        ``label`` says how many channels and recordings, e.g. ``"64-channel cap (2 recordings)"``.
    """
    caps: dict[tuple, list] = {}
    for entry in entries:
        names = tuple(entry.meta["ch_names"])
        if names not in caps:
            caps[names] = [np.asarray(entry.meta["positions"], dtype=np.float64).reshape(-1, 2), 0]
        caps[names][1] += 1
    ordered = sorted(caps.items(), key=lambda item: (-item[1][1], -len(item[0])))
    return [(f"{len(names)}-channel cap ({n} recording{'s' if n != 1 else ''})", list(names), pos)
            for names, (pos, n) in ordered]


def _cap_words(names: Sequence[str], n: int, shown: int = 6) -> str:
    listed = " ".join(names[:shown]) + (" ..." if len(names) > shown else "")
    return f"{len(names)} channels ({listed}; {n} recording{'s' if n != 1 else ''})"


def data_facts(entries, spec: str) -> DataFacts:
    """:class:`DataFacts` of the cache entries a run used: hours, subjects, channel counts, caps.

    The sources are the datasets the recordings' metadata name, else the parts of ``spec``
    (``--data.sources``).
    """
    entries = list(entries)
    caps: dict[tuple, int] = {}
    for entry in entries:
        caps[tuple(entry.meta["ch_names"])] = caps.get(tuple(entry.meta["ch_names"]), 0) + 1
    words = [_cap_words(list(names), n) for names, n in sorted(caps.items(), key=lambda item: -item[1])]
    facts = DataFacts.from_corpus(entries, caps=words)
    if not facts.sources:
        facts.sources = [part.strip() for part in spec.split(";") if part.strip()]
    return facts


# ---------------------------------------------------------------------------- spectra of a few patches
#: Channels a spectrum plot prefers (the first one a recording has), else its first channel.
PREFERRED_CHANNELS = ("CZ", "C3", "C4", "PZ", "FZ", "OZ", "O1", "O2")


def _preferred_channel(names: Sequence[str], candidates: np.ndarray) -> int:
    """Index of the first preferred channel among ``candidates`` (bool (C,)), else the first candidate."""
    upper = [str(n).upper() for n in names]
    for wanted in PREFERRED_CHANNELS:
        if wanted in upper and candidates[upper.index(wanted)]:
            return upper.index(wanted)
    return int(np.flatnonzero(candidates)[0])


def patch_spectra(windows, entries, predict, *, patch_size: int, n: int = 4) -> dict | None:
    """True and predicted amplitude spectra of ``n`` patches, from ``n`` windows spread over the data.

    Parameters
    ----------
    windows : WindowDataset
    entries : sequence of CacheEntry
        The recordings ``windows`` was made of (channel names, for the labels).
    predict : callable
        ``predict(batch) -> (true, predicted, candidates)``: tensors of shape (B, C*K, F),
        (B, C*K, F) and bool (B, C*K) (the tokens whose prediction counts: all real tokens
        for a tokenizer, the masked ones for masked prediction).
    n : int
        Patches (one per window, windows evenly spaced over all of them).
    patch_size : int
        Samples per patch.

    Returns
    -------
    dict or None
        ``true``, ``predicted`` (n, F), ``freqs`` (F,) in Hz, ``labels`` (recording, channel,
        seconds); None when no window has a candidate token.
    """
    from .tokenizer import evaluation_windows

    indices = evaluation_windows(len(windows), n)
    if len(indices) == 0:
        return None
    batch = windows.read_batch(indices)
    true, predicted, candidates = (t.detach().float().cpu().numpy() if t.dtype.is_floating_point
                                   else t.detach().cpu().numpy() for t in predict(batch))
    n_chans = batch.x.shape[1]
    n_patches = batch.x.shape[2] // patch_size
    picked, labels = [], []  # (sample, token)
    for b, index in enumerate(indices):
        grid = candidates[b].reshape(n_chans, n_patches)
        if not grid.any():
            continue
        entry = windows.entry_of(int(index))
        names = list(entries[entry].meta["ch_names"])
        c = _preferred_channel(names, grid.any(axis=1))
        ks = np.flatnonzero(grid[c])
        k = int(ks[np.argmin(np.abs(ks - (n_patches - 1) / 2))])
        picked.append((b, c * n_patches + k))
        start = (int(windows[int(index)]["start"]) + k * patch_size) / windows.sfreq
        source = windows.sources[entry].rsplit(":", 1)[-1]
        labels.append(f"{source}, {names[c]}, {start:.1f}-{start + patch_size / windows.sfreq:.1f} s")
    if not picked:
        return None
    return {"true": np.stack([true[b, t] for b, t in picked]),
            "predicted": np.stack([predicted[b, t] for b, t in picked]),
            "freqs": np.fft.rfftfreq(patch_size, 1.0 / windows.sfreq), "labels": labels}


def spectra_figure(spectra: dict | None, title: str):
    """:func:`eegfm.plots.amplitude_spectra` of :func:`patch_spectra`'s dict; None for None."""
    from .. import plots

    if spectra is None:
        return None
    return plots.amplitude_spectra(spectra["true"], spectra["predicted"], freqs=spectra["freqs"],
                                   labels=spectra["labels"], title=title)


# ---------------------------------------------------------------------------- plots
def write_plots(run_dir, figures: Mapping[str, Callable[[], object]]) -> list[Path]:
    """Save each figure ``figures[name]()`` as ``<run_dir>/plots/<name>.png``; returns the paths.

    A maker returning None draws nothing (its data is missing). Without matplotlib, nothing
    is drawn and one WARNING line says how to install it.
    """
    from .. import plots

    try:
        plots.require_matplotlib()
    except ImportError as err:
        logger.warning("plots skipped: %s", err)
        return []
    folder = Path(run_dir) / PLOTS
    saved = []
    for name, make in figures.items():
        fig = make()
        if fig is not None:
            saved.append(plots.save_figure(fig, folder / f"{name}.png"))
    return saved


def plots_line(run_dir, saved: Sequence[Path]) -> str | None:
    """``plots: <run_dir>/plots/ (loss, codebook, ...)`` for an end summary; None when none was saved."""
    if not saved:
        return None
    return f"plots: {Path(run_dir) / PLOTS}/ ({', '.join(p.stem for p in saved)})"
