"""The benchmark scripts must keep working (tiny sizes here; real sizes run on a GPU)."""

import importlib.util
import json
from pathlib import Path

import pytest

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


def test_pretrain_step_throughput_compiled_runs(tmp_path):
    """--compile / --compile-labram wire torch.compile into both steps (aot_eager here: the
    graphs are built and run; the inductor path is timed in benchmarks/results)."""
    bench = _load("encoder_throughput")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8", "--task",
                         "pretrain", "--single-pass", "--cached-codes", "--num-codes", "32", "--warmup", "1",
                         "--steps", "1", "--rounds", "1", "--compile", "--compile-labram", "--compile-backend",
                         "aot_eager", "--tag", "check", "--out", str(tmp_path)])
    results = report["results"]
    assert results["eegfm.MaskedPretrainer step"]["compiled"] and results["braindecode.Labram"]["compiled"]
    assert all(r["tokens_per_s"] > 0 and r["first_step_s"] > 0 for r in results.values())
    name = "pretrain_step_single_cached_compiled_labramcompiled_throughput_cpu_tiny_b2_fp32_check.json"
    assert (tmp_path / name).exists()


def test_vq_lookup_memory_runs(tmp_path):
    bench = _load("vq_lookup_memory")
    report = bench.main(["--n", "20000", "--naive-n", "5000", "--k", "256", "--device", "cpu", "--out", str(tmp_path)])
    assert report["same_codes_at_naive_N"] is True
    assert report["cdist_distance_matrix_GiB_at_N"] == round(20000 * 256 * 4 / 2**30, 2)


@pytest.mark.slow
# braindecode's own EEGNet default (the benchmark keeps it, as its published results used it)
@pytest.mark.filterwarnings("ignore:Parameter 'final_layer_with_constraint=False' is deprecated:DeprecationWarning")
def test_mental_arithmetic_runs_every_model_and_ablation(tmp_path, shared_data):
    bench = _load("mental_arithmetic")
    report = bench.main(["--shared-data", str(shared_data), "--subjects", "02-04", "--test-subjects", "04",
                         "--seeds", "0", "--tokenizer-steps", "2", "--pretrain-steps", "2", "--finetune-epochs", "1",
                         "--baseline-epochs", "1", "--embed-dim", "16", "--heads", "2", "--depth", "1",
                         "--num-codes", "16", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")])
    assert report["split"]["test_subjects"] == ["04"] and report["split"]["train_subjects"] == ["02", "03"]
    assert set(report["results"]) == {
        "eegfm_pretrained", "eegfm_scratch", "braindecode_eegnet", "braindecode_shallow",
        "eegfm_pretrained_mape_mask25", "eegfm_pretrained_mape_mask75", "eegfm_pretrained_sincos1d_mask50",
        "eegfm_scratch_sincos1d"}
    for r in report["results"].values():
        assert 0 <= r["balanced_accuracy"]["mean"] <= 1 and 0 <= r["auroc"]["mean"] <= 1
    assert set(report["channel_drop"]["eegfm_pretrained"]) == {"0%", "30%", "50%"}
    assert report["partial"] is False
    assert (tmp_path / "out" / "mental_arithmetic.png").is_file() and (tmp_path / "out" / "channel_drop.png").is_file()
    with pytest.raises(SystemExit, match=r"subjects \['99'\] are not in the dataset"):
        bench.main(["--shared-data", str(shared_data), "--subjects", "02,99"])


@pytest.mark.slow
# MOABB's results store calls h5py in a way h5py now deprecates
@pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype is deprecated")
def test_moabb_evaluation_runs_eegfm_beside_classic_pipelines(tmp_path, shared_data):
    from eegfm import MAPEEncoder

    bench = _load("moabb_physionet")
    MAPEEncoder(embed_dim=16, depth=1, num_heads=2, patch_size=100).save_pretrained(tmp_path / "encoder")
    report = bench.main(["--shared-data", str(shared_data), "--encoder", str(tmp_path / "encoder"), "--epochs", "1",
                         "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")])
    names = [r["pipeline"] for r in report["results"]]
    assert names == ["eegfm pre-trained (EEGMirror)", "eegfm pre-trained, linear probe",
                     "eegfm from scratch (EEGMirror)", "CSP+LDA", "TS+LR"]
    assert all(0 <= r["score"] <= 1 and r["samples"] == 45 for r in report["results"])
    assert (tmp_path / "out" / "moabb_physionet.png").is_file()
    with pytest.raises(SystemExit, match="cannot load the pre-trained encoder"):
        bench.main(["--shared-data", str(shared_data), "--encoder", str(tmp_path / "missing")])
