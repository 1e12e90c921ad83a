"""eegfm.progress: readable bars in log files, tqdm on terminals."""

import io

from tqdm.auto import tqdm as auto_tqdm

from eegfm import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_file_gets_plain_lines_not_carriage_returns():
    out = io.StringIO()
    for _ in progress.progress_bar(range(500), desc="train", file=out, mininterval=0.0):
        pass
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("train:") and "0/500" in lines[0]
    assert "500/500" in lines[-1]
    assert len(lines) == len(set(lines))  # no line printed twice


def test_log_file_default_interval_keeps_logs_short():
    out = io.StringIO()
    for _ in progress.progress_bar(range(10_000), desc="train", file=out):
        pass
    assert len(out.getvalue().splitlines()) <= 3  # start, (maybe one), end: not one per step


def test_terminal_gets_tqdm_auto():
    bar = progress.progress_bar(range(3), file=_Terminal())
    assert type(bar) is auto_tqdm
    bar.close()


def test_disabled_bar_prints_nothing_and_iterates():
    out = io.StringIO()
    assert list(progress.progress_bar(range(4), enabled=False, file=out)) == [0, 1, 2, 3]
    assert out.getvalue() == ""


def test_bar_figures_show_what_matters():
    from eegfm.training.engine import progress_figures

    shown = progress_figures({"loss": 1.23456, "lr": 1e-3, "accuracy_random": 0.2, "accuracy_channel": 0.4,
                              "baseline_accuracy": 0.05, "codebook_usage": 0.5, "codebook_perplexity": 123.4,
                              "grad_norm": 3.0})
    assert shown == {"loss": "1.235", "masked": "0.300", "baseline": "0.050", "codes used": "50%",
                     "perplexity": "123", "lr": "1.00e-03"}
    assert progress_figures({"loss": 2.0, "lr": 0.5}) == {"loss": "2", "lr": "5.00e-01"}
