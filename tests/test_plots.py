"""eegfm.plots: every figure renders (Agg, through savefig) with the titles and labels a reader expects."""

import io
import logging
import sys

import numpy as np
import pytest

from eegfm import plots, proportion_coordinates

ROWS = [{"step": 2.0, "loss": 1.2, "amplitude_loss": 1.0, "commitment_loss": 0.2, "codebook_usage": 0.9,
         "codebook_perplexity": 20.0, "accuracy_random": 0.05, "accuracy_channel": 0.04, "baseline_accuracy": 0.1},
        {"step": 4.0, "loss": 0.9, "amplitude_loss": 0.8, "commitment_loss": float("nan"), "codebook_usage": 0.7,
         "codebook_perplexity": 14.0, "accuracy_random": 0.15, "accuracy_channel": 0.12, "baseline_accuracy": 0.1}]


def rendered(fig) -> bytes:
    """The figure as PNG bytes (drawn by Agg), checked to be a real image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_read_metrics(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,grad_norm\n2,1.5,0.3\n4,1.25,\n")
    assert plots.read_metrics(path)[0] == {"step": 2.0, "loss": 1.5, "grad_norm": 0.3}
    assert np.isnan(plots.read_metrics(path)[1]["grad_norm"])
    assert plots.read_metrics(tmp_path / "none.csv") == []


def test_loss_curve():
    fig = plots.loss_curve(ROWS, title="tokenizer loss")
    rendered(fig)
    [ax] = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("tokenizer loss", "step", "loss")
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "amplitude_loss", "commitment_loss"]
    assert ax.get_lines()[0].get_ydata().tolist() == [1.2, 0.9]
    assert len(ax.get_lines()[2].get_xdata()) == 1  # the NaN row is left out
    with pytest.raises(ValueError, match="no 'loss' column"):
        plots.loss_curve([{"step": 1, "lr": 0.1}])


def test_codebook_curves_and_counts():
    fig = plots.codebook_curves(ROWS, final={"usage": 0.5, "perplexity": 11.0, "windows": 28}, num_codes=32)
    rendered(fig)
    usage, perplexity = fig.axes
    assert (usage.get_title(), usage.get_ylabel(), usage.get_xlabel()) == ("codebook usage", "share of codes used",
                                                                           "step")
    assert (perplexity.get_title(), perplexity.get_ylabel()) == ("codebook perplexity", "perplexity")
    assert usage.get_lines()[0].get_ydata().tolist() == [0.9, 0.7]
    labels = [t.get_text() for t in perplexity.get_legend().get_texts()]
    assert "final codebook (28 windows)" in labels and "K = 32 (all codes equally)" in labels
    fig = plots.codebook_counts([0, 5, 50, 1], title="final codebook")
    rendered(fig)
    [ax] = fig.axes
    assert ax.get_title() == "final codebook: 3/4 codes used, perplexity 1.5"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("code (sorted by use)", "tokens assigned")


def test_masked_accuracy_curves_codes_and_spectrum():
    evaluation = {"accuracy": {"random": 0.2, "channel": 0.1}, "baseline_accuracy": 0.12}
    fig = plots.masked_accuracy_curves(ROWS, evaluation=evaluation)
    rendered(fig)
    [ax] = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("masked-token accuracy", "step", "accuracy")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"random", "channel", "most-frequent-code baseline", "final evaluation"} <= set(labels)
    fig = plots.masked_accuracy_curves(ROWS, target="spectrum", evaluation={"masked_r2": {"random": 0.3}})
    rendered(fig)
    [ax] = fig.axes
    assert (ax.get_title(), ax.get_ylabel()) == ("masked R^2", "R^2")
    assert "predicting the mean (0)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError,
            match=r"^target must be one of 'codes', 'spectrum', 'signal', 'spectrum_slow', got 'fft'$"):
        plots.masked_accuracy_curves(ROWS, target="fft")


def test_validation_curve():
    history = [{"epoch": 1, "balanced_accuracy": 0.4, "auroc": 0.6, "confusion_matrix": [[1]]},
               {"epoch": 2, "balanced_accuracy": 0.6, "auroc": float("nan")}]
    fig = plots.validation_curve(history, best_epoch=2, monitor="balanced_accuracy", title="validation subjects 7")
    rendered(fig)
    [ax] = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("validation subjects 7", "epoch", "score")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["balanced accuracy", "AUROC", "chosen epoch 2"]
    with pytest.raises(ValueError, match="history is empty"):
        plots.validation_curve([])


def test_amplitude_spectra():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4, 51))
    freqs = np.fft.rfftfreq(100, 1 / 200)
    fig = plots.amplitude_spectra(true, true + 0.1, freqs=freqs, labels=[f"Cz, patch {i}" for i in range(4)])
    rendered(fig)
    axes = visible(fig)
    assert len(axes) == 4 and [ax.get_title() for ax in axes] == [f"Cz, patch {i}" for i in range(4)]
    assert all(ax.get_xlabel() == "frequency (Hz)" and ax.get_ylabel() == "amplitude (z-scored)" for ax in axes)
    assert [line.get_label() for line in axes[0].get_lines()] == ["true", "predicted"]
    assert axes[0].get_lines()[0].get_xdata()[-1] == 100.0
    fig = plots.amplitude_spectra(true[:3], true[:3])  # no frequencies: bins
    assert len(visible(fig)) == 3 and visible(fig)[0].get_xlabel() == "rfft bin"
    with pytest.raises(ValueError, match="must have the same shape"):
        plots.amplitude_spectra(true, true[:, :10])


def test_confusion_matrix_with_class_names():
    names = ["rest", "arithmetic", "motor imagery (imagined left/right fist)"]
    fig = plots.confusion_matrix([[8, 0, 0], [6, 2, 0], [0, 0, 0]], names, title="test subjects")
    rendered(fig)
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("test subjects", "predicted class", "true class")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rest", "arithmetic", "motor imagery (imagined~"]
    assert [t.get_text() for t in ax.texts] == ["8", "0", "0", "6", "2", "0", "0", "0", "0"]
    with pytest.raises(ValueError, match="must be square"):
        plots.confusion_matrix([[1, 2]])
    with pytest.raises(ValueError, match="2 class names for a 3x3 matrix"):
        plots.confusion_matrix(np.eye(3), ["a", "b"])


def test_montage_topography_labels_every_channel():
    ten_twenty = ["Fp1", "Fp2", "F3", "F4", "C3", "Cz", "C4", "P3", "P4", "O1", "O2", "T3", "T4"]
    small = ["Fz", "Cz", "Pz"]
    fig = plots.montage_topography([("13-channel cap", ten_twenty, proportion_coordinates(ten_twenty)),
                                    ("3-channel cap", small, proportion_coordinates(small))], title="caps")
    rendered(fig)
    first, second = visible(fig)
    assert first.get_title() == "13-channel cap: 13 channels" and second.get_title() == "3-channel cap: 3 channels"
    assert first.get_xlabel() == "x_p (left -> right ear)" and first.get_ylabel() == "y_p (nasion -> inion)"
    assert [t.get_text() for t in first.texts] == ten_twenty
    cz = next(t for t in second.texts if t.get_text() == "Cz")
    assert np.allclose(cz.xy, (50, 50), atol=1e-6)  # Cz at the centre
    assert first.get_ylim()[0] > first.get_ylim()[1]  # nasion (y_p = 0) at the top
    with pytest.raises(ValueError, match="2 channel names for 3 positions"):
        plots.montage_topography([("x", ["a", "b"], np.zeros((3, 2)))])


def test_save_figure_makes_the_folder(tmp_path):
    path = plots.save_figure(plots.loss_curve(ROWS), tmp_path / "plots" / "loss.png")
    assert path.stat().st_size > 2000


def test_without_matplotlib_one_line_error_and_runs_skip_plots(tmp_path, monkeypatch, caplog):
    from eegfm.cli.report import write_plots

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import matplotlib.figure fails
    with pytest.raises(ImportError, match=r"eegfm.plots needs matplotlib.*; pip install matplotlib$"):
        plots.loss_curve(ROWS)
    with caplog.at_level(logging.WARNING, logger="eegfm.plots"):
        assert write_plots(tmp_path, {"loss": lambda: plots.loss_curve(ROWS)}) == []
    [record] = caplog.records
    assert record.getMessage().startswith("plots skipped: eegfm.plots needs matplotlib")
    assert "pip install matplotlib" in record.getMessage() and not (tmp_path / "plots").exists()
