"""Health reports that do not look like success when the model collapsed: ``eegfm tokenizer``
measures the final codebook on windows encoded after training (not the counts of the whole run,
k-means start included) and warns when it collapsed."""

import json
import logging

import numpy as np
import pytest
import torch

import eegfm.cli.tokenizer as tokenizer_cli
from eegfm.cli.main import main
from eegfm.cli.tokenizer import evaluation_windows

TINY = ["--data.sources=sample", "--data.batch_size=8", "--data.l_freq=0.5", "--data.stride_seconds=2",
        "--train.warmup_steps=2", "--train.log_every=2", "--train.progress=false", "--train.steps=4",
        "--train.checkpoint_every=4", "--model.embed_dim=32", "--model.depth=1", "--model.num_heads=2",
        "--model.num_codes=32", "--model.code_dim=8", "--model.decoder_depth=1"]


def test_evaluation_windows_are_a_fixed_evenly_spaced_sample():
    assert evaluation_windows(10, 4).tolist() == [0, 3, 6, 9]
    assert evaluation_windows(5, 512).tolist() == [0, 1, 2, 3, 4]  # fewer windows than asked: all of them
    assert evaluation_windows(5, 0).tolist() == [] and evaluation_windows(0, 8).tolist() == []
    picked = evaluation_windows(1000, 512)
    assert len(np.unique(picked)) == 512 and picked[0] == 0 and picked[-1] == 999


@pytest.fixture
def collapse_after_training(monkeypatch):
    """Every code the same vector once training ends: each patch then gets code 0 (argmax takes the first)."""
    fit = tokenizer_cli.Trainer.fit

    def fit_then_collapse(self):
        out = fit(self)
        codebook = self.model.quantizer.codebook
        with torch.no_grad():
            codebook.copy_(codebook[:1].expand_as(codebook).clone())
        return out

    monkeypatch.setattr(tokenizer_cli.Trainer, "fit", fit_then_collapse)


def test_a_collapsed_codebook_is_reported_and_warned_about(tmp_path, capsys, caplog, collapse_after_training):
    run = tmp_path / "tok"
    with caplog.at_level(logging.WARNING, logger="eegfm.tokenizer"):
        assert main(["tokenizer", *TINY, f"--data.cache_dir={tmp_path / 'cache'}", f"--train.run_dir={run}"]) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((run / "evaluation.json").read_text())
    c = evaluation["codebook"]
    assert (c["usage"], c["perplexity"], c["codes_used"], c["num_codes"]) == (1 / 32, 1.0, 1, 32)
    assert c["collapsed"] is True and c["windows"] == 28 and c["tokens"] > 0  # 2-s hop: 28 windows of 4 s
    assert c["measured_on"].startswith("the final codebook: 28 of the 28 windows (evenly spaced) encoded after "
                                       "training") and "not held out" in c["measured_on"]
    # the counts of the run (k-means start included) saw many codes: kept apart, labelled as such
    training = evaluation["codebook_training"]
    assert training["usage"] > 1 / 32 and "k-means-initialised first batch included" in training["measured_on"]
    logged = [r.getMessage() for r in caplog.records if r.name == "eegfm.tokenizer"]
    assert len(logged) == 1 and logged == evaluation["warnings"]
    assert logged[0].startswith("the codebook collapsed: on 28 of the 28 windows encoded after training, the ")
    assert "take 1 of the 32 codes (3.1%; under 5% counts as collapsed), perplexity 1.00" in logged[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["codebook"] == c and summary["warnings"] == logged
    lines = out[out.index("tokenizer: "):].splitlines()
    assert lines[1] == ("codebook: final codebook on 28 windows encoded after training uses 1 of 32 codes (3.1%), "
                        f"perplexity 1.0; {c['dead']} dead, {c['restarts']} restarts, COLLAPSED")
    assert lines[2] == f"WARNING: {logged[0]}"
    assert (run / "codebook_usage.png").stat().st_size > 1000


def test_the_final_codebook_check_can_be_skipped(tmp_path, capsys):
    run = tmp_path / "tok"
    assert main(["tokenizer", *TINY, "--eval_windows=0", f"--data.cache_dir={tmp_path / 'cache'}",
                 f"--train.run_dir={run}"]) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["codebook"] is None and evaluation["warnings"] == []
    assert "codebook: final codebook not measured (--eval_windows=0); over all training steps (k-means start " \
           "included)" in out
    assert main(["tokenizer", "--eval_windows=-1"]) == 2
    assert "--eval_windows must be >= 0" in capsys.readouterr().err
