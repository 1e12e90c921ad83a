"""The figures of a training run, one function per figure, from plain arrays and metrics.csv rows.

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, no backend switch, nothing to close); save it with :func:`save_figure` or
``fig.savefig(path)``, or show it in a notebook. matplotlib is imported when a function is
called; without it the call raises one ``ImportError`` line saying ``pip install matplotlib``.

=============================  ====================================================
:func:`loss_curve`             training loss(es) over steps (metrics.csv)
:func:`codebook_curves`        codebook usage and perplexity over steps (tokenizer)
:func:`codebook_counts`        tokens per code, sorted (the final codebook)
:func:`amplitude_spectra`      true vs predicted Fourier amplitudes of a few patches
:func:`masked_accuracy_curves` masked-token accuracy vs baseline (or masked R^2) over steps
:func:`validation_curve`       validation figures per epoch, best epoch marked (finetune)
:func:`confusion_matrix`       confusion matrix with class names
:func:`montage_topography`     channels of each cap at their proportion coordinates
=============================  ====================================================

``eegfm tokenizer``, ``eegfm pretrain`` and ``eegfm finetune`` write the figures that apply to
``<run_dir>/plots/``.

>>> from eegfm import plots
>>> rows = plots.read_metrics("runs/tokenizer/metrics.csv")              # doctest: +SKIP
>>> plots.save_figure(plots.loss_curve(rows), "loss.png")                # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "amplitude_spectra",
    "codebook_counts",
    "codebook_curves",
    "confusion_matrix",
    "loss_curve",
    "masked_accuracy_curves",
    "montage_topography",
    "read_metrics",
    "require_matplotlib",
    "save_figure",
    "validation_curve",
]

#: The one-line remedy when matplotlib is missing.
INSTALL_HINT = "pip install matplotlib"

#: Validation figures drawn by :func:`validation_curve` when present: (key, label).
VALIDATION_METRICS = (("balanced_accuracy", "balanced accuracy"), ("auroc", "AUROC"), ("cohen_kappa", "Cohen's kappa"),
                      ("weighted_f1", "weighted F1"), ("r2", "R^2"))


def require_matplotlib():
    """``matplotlib.figure.Figure``; a one-line ImportError naming ``pip install matplotlib`` without it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"eegfm.plots needs matplotlib, which is not installed ({err}); {INSTALL_HINT}") from None
    return Figure


def _figure(width: float, height: float):
    return require_matplotlib()(figsize=(width, height), layout="constrained")


def save_figure(fig, path, *, dpi: int = 100) -> Path:
    """Save ``fig`` to ``path`` (parent folders made; the format from the suffix). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def read_metrics(path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as ``{column: float}`` (an empty cell is NaN); [] without the file."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items() if k is not None}
                for row in csv.DictReader(f)]


def _series(rows: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of column ``key`` where it is finite."""
    pairs = [(r["step"], r[key]) for r in rows if key in r and r.get("step") is not None
             and math.isfinite(float(r[key]))]
    steps = np.array([p[0] for p in pairs], dtype=np.float64)
    return steps, np.array([p[1] for p in pairs], dtype=np.float64)


def _columns(rows: Sequence[Mapping]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


# ---------------------------------------------------------------------------- training curves
def loss_curve(rows: Sequence[Mapping[str, float]], *, title: str = "training loss"):
    """Training loss over optimizer steps.

    Parameters
    ----------
    rows : sequence of dict
        metrics.csv rows (:func:`read_metrics`): ``step`` and ``loss``, and any other
        ``*_loss`` column (drawn thinner, e.g. the tokenizer's ``amplitude_loss``).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x "step", y "loss" (log scale when the losses span more than 20x).
    """
    keys = [k for k in _columns(rows) if k == "loss" or k.endswith("_loss")]
    if "loss" not in keys:
        raise ValueError(f"the metrics rows have no 'loss' column (columns: {', '.join(_columns(rows)) or 'none'})")
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    values = []
    for key in ["loss", *[k for k in keys if k != "loss"]]:
        steps, v = _series(rows, key)
        ax.plot(steps, v, marker="." if len(v) < 30 else None, lw=2.0 if key == "loss" else 1.0, label=key,
                zorder=3 if key == "loss" else 2)  # the total on top of its parts
        values.extend(v.tolist())
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    return fig


def codebook_curves(rows: Sequence[Mapping[str, float]], *, final: Mapping | None = None,
                    num_codes: int | None = None):
    """Codebook usage and perplexity over steps (of each logged batch).

    Parameters
    ----------
    rows : sequence of dict
        metrics.csv rows with ``step``, ``codebook_usage`` (share of codes used, 0-1) and
        ``codebook_perplexity``.
    final : dict, optional
        The final codebook's :func:`eegfm.modules.quantizer.code_usage` (``usage``,
        ``perplexity``, and ``windows`` if known), drawn as dashed lines.
    num_codes : int, optional
        Codebook size K, the perplexity's ceiling (drawn dotted).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes titled "codebook usage" (y "share of codes used") and "codebook perplexity"
        (y "perplexity"), x "step".
    """
    fig = _figure(9.0, 3.4)
    ax_usage, ax_ppl = fig.subplots(1, 2)
    where = f"final codebook ({final['windows']} windows)" if final and "windows" in final else "final codebook"
    for ax, key, field, label, title in ((ax_usage, "codebook_usage", "usage", "share of codes used",
                                         "codebook usage"),
                                        (ax_ppl, "codebook_perplexity", "perplexity", "perplexity",
                                         "codebook perplexity")):
        steps, v = _series(rows, key)
        ax.plot(steps, v, marker="." if len(v) < 30 else None, label="training batches")
        if final is not None and final.get(field) is not None:
            ax.axhline(float(final[field]), color="tab:red", ls="--", lw=1, label=where)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_usage.set_ylim(0, 1.05)
    if num_codes:
        ax_ppl.axhline(num_codes, color="grey", ls=":", lw=1, label=f"K = {num_codes} (all codes equally)")
    ax_ppl.set_ylim(bottom=0)
    ax_ppl.legend(fontsize=7)
    return fig


def codebook_counts(counts, *, title: str = "codebook"):
    """How often each code was used, sorted, on a log scale.

    Parameters
    ----------
    counts : array-like of int, shape (K,)
        Tokens assigned to each code.
    title : str
        Says what was counted; ``": U/K codes used, perplexity P"`` is appended.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x "code (sorted by use)", y "tokens assigned".
    """
    from .modules.quantizer import code_usage

    counts = np.sort(np.asarray(counts, dtype=np.float64).ravel())[::-1]
    fig = _figure(7.0, 3.5)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(counts)), np.maximum(counts, 0.5), width=1.0, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("tokens assigned")
    usage = code_usage(counts)
    ax.set_title(f"{title}: {usage['codes_used']}/{usage['num_codes']} codes used, "
                 f"perplexity {usage['perplexity']:.1f}", fontsize=9)
    return fig


def masked_accuracy_curves(rows: Sequence[Mapping[str, float]], *, target: str = "codes",
                           evaluation: Mapping | None = None):
    """Masked-token accuracy per strategy vs the most-frequent-code baseline over steps (or masked R^2).

    Parameters
    ----------
    rows : sequence of dict
        metrics.csv rows of ``eegfm pretrain``: ``step``, ``accuracy_<strategy>`` (accuracy, or
        R^2 with a regression target) and ``baseline_accuracy``.
    target : {"codes", "spectrum", "signal", "spectrum_slow"}
        Codes: y is the accuracy and the baseline is drawn; the regression targets: y is the
        masked R^2 and 0 (predicting the mean) is the baseline.
    evaluation : dict, optional
        The final evaluation (``accuracy`` or ``masked_r2`` ``{strategy: value}``, and
        ``baseline_accuracy``), drawn as markers after the last step.

    Returns
    -------
    matplotlib.figure.Figure
        One axes titled "masked-token accuracy" (y "accuracy") or "masked R^2" (y "R^2"),
        x "step".
    """
    from .models.pretrainer import PRETRAIN_TARGETS

    if target not in PRETRAIN_TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, PRETRAIN_TARGETS))}, got {target!r}")
    spectrum = target != "codes"  # an R^2
    names = [k.removeprefix("accuracy_") for k in _columns(rows) if k.startswith("accuracy_")]
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    last = max((r["step"] for r in rows), default=0)
    final = dict((evaluation or {}).get("masked_r2" if spectrum else "accuracy") or {})
    for i, name in enumerate(names):
        steps, v = _series(rows, f"accuracy_{name}")
        color = f"C{i}"
        ax.plot(steps, v, color=color, marker="." if len(v) < 30 else None, label=name)
        if name in final:
            ax.plot([last], [final[name]], color=color, marker="*", ms=10, ls="none")
    if spectrum:
        ax.axhline(0.0, color="black", ls="--", lw=1, label="predicting the mean (0)")
    else:
        steps, v = _series(rows, "baseline_accuracy")
        ax.plot(steps, v, color="black", ls="--", lw=1, label="most-frequent-code baseline")
        if evaluation and evaluation.get("baseline_accuracy") is not None:
            ax.plot([last], [evaluation["baseline_accuracy"]], color="black", marker="*", ms=10, ls="none")
    if final:
        ax.plot([], [], color="grey", marker="*", ms=10, ls="none", label="final evaluation")
    ax.set_xlabel("step")
    ax.set_ylabel("R^2" if spectrum else "accuracy")
    ax.set_title("masked R^2" if spectrum else "masked-token accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def validation_curve(history: Sequence[Mapping], *, best_epoch: int | None = None, monitor: str | None = None,
                     title: str = "validation subjects"):
    """Validation figures after every epoch of fine-tuning, the chosen epoch marked.

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch, ``{"epoch": e, "balanced_accuracy": ..., "auroc": ..., ...}``
        (``evaluation.json``'s ``history``). Drawn: those of :data:`VALIDATION_METRICS` present.
    best_epoch : int, optional
        Marked by a vertical line.
    monitor : str, optional
        The metric the epoch was chosen on (drawn thicker).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x "epoch", y "score"; a second axes (y "loss") when the history holds ``loss``.
    """
    if not history:
        raise ValueError("history is empty: no epoch was validated")
    epochs = np.array([h["epoch"] for h in history], dtype=np.float64)
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    keys = [(k, label) for k, label in VALIDATION_METRICS if any(k in h for h in history)]
    if monitor and monitor not in {k for k, _ in keys} and any(monitor in h for h in history):
        keys.append((monitor, monitor))
    for key, label in keys:
        values = np.array([float(h.get(key, math.nan)) for h in history])
        ax.plot(epochs, values, marker="o", ms=4, lw=2.5 if key == monitor else 1.2, label=label)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"chosen epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------- predictions
def amplitude_spectra(true, predicted, *, freqs=None, labels: Sequence[str] | None = None,
                      title: str = "Fourier amplitudes of patches"):
    """True vs predicted (z-scored) Fourier amplitude spectra of a few patches, one axes each.

    Parameters
    ----------
    true, predicted : array-like, shape (n_patches, n_bins)
        Target and prediction of each patch (e.g. :class:`eegfm.NeuralTokenizer`'s ``target``
        and ``amplitude``).
    freqs : array-like, shape (n_bins,), optional
        Frequency of each bin in Hz (``np.fft.rfftfreq(patch_size, 1 / sfreq)``); default: bin index.
    labels : sequence of str, optional
        Title of each axes (which channel, window and time the patch is).
    title : str
        Title of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per patch (at most 3 columns; 2 x 2 for four): x "frequency (Hz)" (or "rfft bin"),
        y "amplitude (z-scored)", lines "true" and "predicted".
    """
    true, predicted = np.atleast_2d(np.asarray(true, float)), np.atleast_2d(np.asarray(predicted, float))
    if true.shape != predicted.shape:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} must have the same shape "
                         "(n_patches, n_bins)")
    n = len(true)
    if n == 0:
        raise ValueError("no patches to draw")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} patches")
    x = np.arange(true.shape[1]) if freqs is None else np.asarray(freqs, float)
    cols = 2 if n == 4 else min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(3.3 * cols, 2.6 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_visible(False)
            continue
        ax.plot(x, true[i], color="black", lw=1.5, label="true")
        ax.plot(x, predicted[i], color="tab:orange", lw=1.5, ls="--", label="predicted")
        ax.set_title(labels[i] if labels is not None else f"patch {i}", fontsize=8)
        ax.set_xlabel("frequency (Hz)" if freqs is not None else "rfft bin", fontsize=8)
        ax.set_ylabel("amplitude (z-scored)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def confusion_matrix(matrix, class_names: Sequence[str] | None = None, *, title: str = "confusion matrix"):
    """A confusion matrix: counts in the cells, colour by the share of each true class.

    Parameters
    ----------
    matrix : array-like of int, shape (n_classes, n_classes)
        Rows: true class; columns: predicted class.
    class_names : sequence of str, optional
        Class names in index order (tick labels; default: the indices).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x "predicted class", y "true class".
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (n_classes, n_classes), got shape {m.shape}")
    n = len(m)
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}x{n} matrix")
    names = [name if len(name) <= 24 else name[:23] + "~" for name in names]
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    size = 2.8 + 0.55 * n
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), names, rotation=30 if n > 2 else 0, ha="right" if n > 2 else "center", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return fig


# ---------------------------------------------------------------------------- montages
def montage_topography(caps: Sequence[tuple[str, Sequence[str], object]], *, title: str | None = None):
    """Channels of each cap at their proportion coordinates (:func:`eegfm.proportion_coordinates`).

    Seen from above, nose up: ``x_p`` from the left ear (0) to the right (100), ``y_p`` from
    the nasion (0, top) to the inion (100); the 10-20 ring (radius 40 around Cz) is drawn.

    Parameters
    ----------
    caps : sequence of (title, channel names, positions)
        One axes each; ``positions`` is array-like of shape (n_channels, 2), ``(x_p, y_p)``.
    title : str, optional
        Title of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per cap, titled ``"<title>: <n> channels"``, x "x_p (left -> right ear)",
        y "y_p (nasion -> inion)", every channel labelled.
    """
    caps = list(caps)
    if not caps:
        raise ValueError("no cap to draw")
    cols = min(len(caps), 3)
    rows = math.ceil(len(caps) / cols)
    fig = _figure(4.2 * cols, 4.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[len(caps):]:
        ax.set_visible(False)
    for ax, (name, channels, positions) in zip(axes, caps):
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        channels = [str(c) for c in channels]
        if len(channels) != len(pos):
            raise ValueError(f"{name}: {len(channels)} channel names for {len(pos)} positions")
        angle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(50 + 40 * np.cos(angle), 50 + 40 * np.sin(angle), color="grey", lw=1, ls="--")  # 10-20 ring
        ax.plot(50 + 48 * np.cos(angle), 50 + 48 * np.sin(angle), color="black", lw=1.2)  # head
        ax.plot([45, 50, 55], [3.5, -3, 3.5], color="black", lw=1.2)  # nose (y_p = 0 is the nasion)
        ax.scatter(pos[:, 0], pos[:, 1], s=14, color="tab:blue", zorder=3)
        fontsize = 7 if len(channels) <= 32 else 5
        for (x, y), label in zip(pos, channels):
            ax.annotate(label, (x, y), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=fontsize)
        ax.set_xlim(-5, 105)
        ax.set_ylim(108, -8)  # nasion at the top
        ax.set_aspect("equal")
        ax.set_xlabel("x_p (left -> right ear)", fontsize=8)
        ax.set_ylabel("y_p (nasion -> inion)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{name}: {len(channels)} channels", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
