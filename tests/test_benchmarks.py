"""The benchmark scripts must keep working (tiny sizes here; real sizes run on a GPU)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_encoder_throughput_runs_and_writes_a_report(tmp_path):
    bench = _load("encoder_throughput")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8",
                         "--warmup", "1", "--steps", "1", "--rounds", "1", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("encoder_throughput_*.json")).read_text())
    assert saved["results"] == report["results"]
    ours, labram = saved["results"]["eegfm.MAPEEncoder"], saved["results"]["braindecode.Labram"]
    assert ours["tokens_per_s"] > 0 and labram["tokens_per_s"] > 0
    assert saved["tokens_per_step"] == 2 * 8 * 4


def test_data_throughput_runs_and_writes_a_report(tmp_path, shared_data):
    bench = _load("data_throughput")
    report = bench.main(["--shared-data", str(shared_data), "--runs", "1", "--epochs", "1", "--repeats", "1",
                         "--workers", "1", "--batch-size", "32", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "data_throughput_w1.json").read_text())
    assert saved["stream_windows_per_s"] == report["stream_windows_per_s"]
    assert all(rate > 0 for rate in saved["stream_windows_per_s"].values())
    assert len(saved["preprocessing"]) == 2
    assert saved["stream_windows"]["eegfm"] == saved["stream_windows"]["braindecode"]


def test_pretrain_step_throughput_runs(tmp_path):
    bench = _load("encoder_throughput")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8", "--task",
                         "pretrain", "--num-codes", "32", "--warmup", "1", "--steps", "1", "--rounds", "1",
                         "--out", str(tmp_path)])
    assert report["results"]["eegfm.MaskedPretrainer step"]["tokens_per_s"] > 0
    assert (tmp_path / "pretrain_step_throughput_cpu_tiny_b2_fp32.json").exists()


def test_vq_lookup_memory_runs(tmp_path):
    bench = _load("vq_lookup_memory")
    report = bench.main(["--n", "20000", "--naive-n", "5000", "--k", "256", "--device", "cpu", "--out", str(tmp_path)])
    assert report["same_codes_at_naive_N"] is True
    assert report["cdist_distance_matrix_GiB_at_N"] == round(20000 * 256 * 4 / 2**30, 2)
