"""The benchmark scripts must keep working (tiny sizes here; real sizes run on a GPU)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    return load_script(f"benchmarks/{name}.py")


@pytest.fixture(scope="module", autouse=True)
def gpu_check_tiny(request, tmp_path_factory):
    """``benchmarks/gpu_check.sh --tiny``, started in the background when this module starts (if its
    test was collected): a chain of one-thread subprocesses that would leave the second core idle,
    so it runs while the in-process tests of this module do; its test (last in the module) waits
    for it. Yields (process, output folder, stdout file, stderr file), or None when not collected."""
    wanted = any(item.module is request.module and item.originalname == "test_gpu_check_tiny_runs_every_step_on_cpu"
                 for item in request.session.items)
    if not wanted:
        yield None
        return
    folder = tmp_path_factory.mktemp("gpu_check")
    out_dir, logs = folder / "out", folder / "logs"
    out_dir.mkdir()
    logs.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    with open(logs / "stdout", "w") as stdout, open(logs / "stderr", "w") as stderr:
        proc = subprocess.Popen(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny", str(out_dir)],
                                env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=True)
    try:
        yield proc, out_dir, logs / "stdout", logs / "stderr"
    finally:
        if proc.poll() is None:  # its test did not run (or failed before waiting): stop the whole chain
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_encoder_throughput_runs_and_writes_a_report(tmp_path):
    bench = _load("encoder_throughput")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8",
                         "--warmup", "1", "--steps", "1", "--rounds", "1", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("encoder_throughput_*.json")).read_text())
    assert saved["results"] == report["results"]
    ours, labram = saved["results"]["eegfm.MAPEEncoder"], saved["results"]["braindecode.Labram"]
    assert ours["tokens_per_s"] > 0 and labram["tokens_per_s"] > 0
    assert saved["tokens_per_step"] == 2 * 8 * 4
    assert "the last block on the CLS token alone" in saved["what"]["eegfm"]
    full = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8", "--warmup", "1",
                       "--steps", "1", "--rounds", "1", "--full-last-block", "--out", str(tmp_path)])
    assert "every token through every block" in full["what"]["eegfm"]
    assert (tmp_path / "encoder_fulllast_throughput_cpu_tiny_b2_fp32.json").exists()


def test_encoder_throughput_counts_flops_with_the_cpus_fused_attention(tmp_path):
    import torch
    from torch.utils import flop_counter

    bench = _load("encoder_throughput")
    q = torch.randn(2, 3, 5, 8, requires_grad=True)
    k, v = torch.randn(2, 3, 7, 8, requires_grad=True), torch.randn(2, 3, 7, 8, requires_grad=True)
    attention_only = bench.step_flops(torch.nn.Identity(), lambda _: torch.nn.functional.scaled_dot_product_attention(
        q, k, v).sum())
    shapes = (q.shape, k.shape, v.shape)
    assert attention_only == flop_counter.sdpa_flop_count(*shapes) + flop_counter.sdpa_backward_flop_count(
        q.shape, *shapes) > 0  # without the mapping the CPU kernel counts 0
    args = ["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "8", "--warmup", "1", "--steps",
            "1", "--rounds", "1", "--flops", "--out", str(tmp_path)]
    cls_only = bench.main(args)["results"]
    full = bench.main(args + ["--full-last-block"])["results"]
    assert 0 < cls_only["eegfm.MAPEEncoder"]["gflop_per_sample"] < full["eegfm.MAPEEncoder"]["gflop_per_sample"]
    assert cls_only["braindecode.Labram"]["gflop_per_sample"] == full["braindecode.Labram"]["gflop_per_sample"] > 0


def _tiny_pretrain_step(bench, tmp_path, monkeypatch, *flags):
    """Run encoder_throughput's tiny pre-training step with ``flags``; returns eegfm's model as built."""
    built = []
    build = bench.build_models
    monkeypatch.setattr(bench, "build_models", lambda *a: built.append(build(*a)) or built[-1])
    bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--n-chans", "4", "--task", "pretrain",
                "--single-pass", "--cached-codes", "--num-codes", "16", "--warmup", "1", "--steps", "1", "--rounds",
                "1", *flags, "--out", str(tmp_path)])
    return built[0][0]


def test_encoder_throughput_sets_every_patch_embedder_of_the_pretrainer(tmp_path, monkeypatch):
    """--embedder / --checkpoint-embedder reach each NeuralPatchEmbedder of eegfm's model (named in the file)."""
    bench = _load("encoder_throughput")
    ours = _tiny_pretrain_step(bench, tmp_path, monkeypatch, "--embedder", "matmul", "--checkpoint-embedder")
    embedders = [m for m in ours.modules() if isinstance(m, bench.NeuralPatchEmbedder)]
    assert embedders and all(m.conv_impl == "matmul" and m.checkpoint_convs for m in embedders)
    name = "pretrain_step_single_cached_vs_labram_masked_matmulembedder_ckptembedder_throughput_cpu_tiny_b2_fp32.json"
    assert (tmp_path / name).exists()


@pytest.mark.parametrize("flag,value,attribute", [("--decoder-depth", "1", "decoder_depth"),
                                                   ("--visible-blocks", "1", "visible_blocks")])
def test_encoder_throughput_builds_the_pretrainer_it_names(tmp_path, monkeypatch, flag, value, attribute):
    """--decoder-depth / --visible-blocks reach eegfm's MaskedPretrainer and the file name."""
    bench = _load("encoder_throughput")
    assert getattr(_tiny_pretrain_step(bench, tmp_path, monkeypatch, flag, value), attribute) == int(value)
    short = {"decoder_depth": "decoder", "visible_blocks": "visible"}[attribute]
    assert (tmp_path / f"pretrain_step_single_cached_{short}1_vs_labram_masked_throughput_cpu_tiny_b2_fp32.json").exists()


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
    assert (tmp_path / "pretrain_step_vs_labram_masked_throughput_cpu_tiny_b2_fp32.json").exists()


# Labram's masked step indexes the masked tokens (as LaBraM does): dynamo resumes after that graph
# break with a non-leaf input and touches its .grad (torch's own warning)
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning")
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
    name = "pretrain_step_single_cached_vs_labram_masked_compiled_labramcompiled_throughput_cpu_tiny_b2_fp32_check.json"
    assert (tmp_path / name).exists()


def test_padded_pretrain_step_vs_labram_masked_step_reports_sizes_and_memory(tmp_path):
    """--padded: mixed caps, real tokens counted; the Labram arm is the LaBraM-style masked step;
    Labram's real width is reported (braindecode ignores embed_dim at tiny size); --memory runs
    each arm in a subprocess and reports its peak RSS growth."""
    bench = _load("encoder_throughput")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--batch-size", "3", "--padded", "--caps", "3,5,8",
                         "--task", "pretrain", "--single-pass", "--cached-codes", "--num-codes", "32", "--warmup", "1",
                         "--steps", "1", "--rounds", "1", "--memory", "--out", str(tmp_path)])
    assert report["tokens_per_step"] == (3 + 5 + 8) * 4
    ours, labram = report["results"]["eegfm.MaskedPretrainer step"], report["results"]["braindecode.Labram"]
    assert ours["width"] == 64 and labram["width"] == 200 and "(asked 64)" in report["what"]["labram_size"]
    assert ours["peak_memory_GiB"] >= 0 and labram["peak_memory_GiB"] >= 0
    assert report["what"]["braindecode.Labram"].startswith("LaBraM-style masked step")
    assert "zero-padded to 8 channels" in report["what"]["batch"]
    assert (tmp_path / "pretrain_step_single_cached_vs_labram_masked_padded_throughput_cpu_tiny_b3_fp32.json").exists()


def test_labram_masked_step_heads_only_the_masked_tokens():
    bench = _load("encoder_throughput")
    import torch
    from torch import nn

    class Tokens(nn.Module):  # stands in for Labram: patch tokens = the patch's first sample, width 1
        embed_dim = 1

        def forward(self, x, ch_names, return_patch_tokens):
            assert return_patch_tokens and len(ch_names) == x.shape[1]
            return x.view(len(x), -1, 2)[..., :1]

    step = bench.LabramMasked(Tokens(), num_codes=3)
    x = torch.arange(1.0, 9.0).view(1, 2, 4)  # 2 channels x 2 patches of 2 samples
    mask = torch.tensor([[[True, False], [False, True]]])
    codes = torch.tensor([[0, -1, -1, 2]])  # only the masked tokens' codes are read
    loss = step(x, mask, codes, ["C3", "C4"])
    logits = step.head(torch.zeros(2, 1))  # masked patches are zeroed before the model
    assert torch.allclose(loss, nn.functional.cross_entropy(logits, torch.tensor([0, 2])))


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


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_step_on_cpu(gpu_check_tiny):
    """benchmarks/gpu_check.sh --tiny: every command of the GPU check at tiny size on the CPU (the
    CUDA tests are only collected), a JSON per benchmark and an all-passed summary. (Started by
    the gpu_check_tiny fixture when the module started; this test is last so that it overlaps the rest.)"""
    proc, tmp_path, stdout, stderr = gpu_check_tiny
    try:
        returncode = proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("benchmarks/gpu_check.sh --tiny took more than 600 s")
    out, err = stdout.read_text(), stderr.read_text()
    assert returncode == 0, out[-3000:] + err[-3000:]
    summary = json.loads((tmp_path / "gpu_check_summary.json").read_text())
    assert summary["passed"] and [s["step"] for s in summary["steps"]] == [
        "cuda_tests", "encoder_step", "encoder_step_full_last", "encoder_step_padded", "pretrain_step", "pretrain_step_padded",
        "pretrain_step_visible", "pretrain_step_visible_padded", "vq_lookup_memory", "video_unet_step", "profile",
        "encoder_step_compiled", "conv_block_memory"]
    assert len(list(tmp_path.glob("*_throughput_cpu_tiny_b3_bf16.json"))) == 7
    assert len(list(tmp_path.glob("pretrain_step_single_cached_visible1_*_cpu_tiny_b3_bf16.json"))) == 2
    assert (tmp_path / "gpu_profile_cpu_tiny_b2.json").exists()
    assert (tmp_path / "encoder_compiled_labramcompiled_throughput_cpu_tiny_b2_fp32.json").exists()
    assert (tmp_path / "vq_lookup_memory_cpu.json").exists() and (tmp_path / "video_unet_step_cpu_tiny_fp32.json").exists()
    assert (tmp_path / "conv_block_memory_cpu.json").exists()
    assert "test_attention_kernels.py::test_cuda_masked_bf16_base_heads_run_on_a_fused_kernel" in out


def test_attention_bias_step_times_both_constructions_and_restores_the_library(capsys):
    import eegfm.models.encoder as encoder_module

    before = encoder_module.distance_bias
    report = _load("attention_bias_step").main(["--rounds", "1", "--steps", "1", "--batch-size", "1"])
    assert set(report["median_step_ms"]) == {"plain", "distance_bias"}
    assert all(ms > 0 for ms in report["median_step_ms"].values())
    assert report["ratio_plain_over_distance_bias"] > 0
    assert encoder_module.distance_bias is before
    assert '"ratio_plain_over_distance_bias"' in capsys.readouterr().out


def test_patch_embed_chunks_times_both_arms_gives_equal_outputs_and_restores_the_library(tmp_path, capsys):
    import eegfm.modules.patch_embed as patch_embed

    before = patch_embed.CPU_CHUNK_PATCHES
    out = tmp_path / "chunks.json"
    report = _load("patch_embed_chunks").main(["--rounds", "1", "--batch-size", "5", "--base-batch-size", "1",
                                               "--out", str(out)])
    assert set(report["models"]) == {"mi", "base"}
    mi = report["models"]["mi"]
    assert mi["patches"] == 5 * 64 * 8 > before  # the mi batch is chunked
    for figures in report["models"].values():
        assert set(figures["median_ms_per_window"]) == {"chunked", "one_call"}
        assert all(ms > 0 for ms in figures["median_ms_per_window"].values())
        assert figures["max_abs_difference"] == 0.0
    assert patch_embed.CPU_CHUNK_PATCHES == before
    assert json.loads(out.read_text()) == report
    assert '"ratio_one_call_over_chunked"' in capsys.readouterr().out


def test_gpu_profile_times_both_cudnn_settings_and_writes_one_table_per_arm(tmp_path, capsys):
    import torch

    report = _load("gpu_profile").main(["--device", "cpu", "--size", "tiny", "--batch-size", "2", "--seconds", "2",
                                        "--warmup", "1", "--steps", "1", "--rounds", "1", "--profile-steps", "1",
                                        "--top", "5", "--unet", "--out", str(tmp_path)])
    arms = {"eegfm.MAPEEncoder", "braindecode.Labram", "eegfm step, conv embedder", "eegfm step, matmul embedder",
            "eegfm step, conv embedder checkpointed", "eegfm step, matmul embedder checkpointed",
            "eegfm step, matmul embedder written out", "patch embedder, conv (fwd+bwd)",
            "patch embedder, matmul (fwd+bwd)", "patch embedder, matmul written out (fwd+bwd)"}
    assert set(report["encoder"]["step_ms"]) == set(report["encoder"]["tables"]) == arms
    for ms in report["encoder"]["step_ms"].values():
        assert set(ms) == {"cudnn_benchmark_off", "cudnn_benchmark_on"} and all(v > 0 for v in ms.values())
    assert report["encoder"]["embedder_conv_vs_matmul_max_abs_difference"] < 1e-4
    assert set(report["encoder"]["peak_memory_GiB"]) == set()  # CUDA only
    assert all("Self CPU" in table for table in report["encoder"]["tables"].values())
    assert set(report["unet"]["tables"]) == {"unet2d", "inflated"}
    assert torch.backends.cudnn.benchmark is False  # the setting is restored
    saved = json.loads((tmp_path / "gpu_profile_cpu_tiny_b2.json").read_text())
    assert saved["encoder"]["step_ms"] == report["encoder"]["step_ms"]
    assert "== encoder: braindecode.Labram" in capsys.readouterr().out


def test_conv_block_memory_reports_every_arm_and_restores_the_library(tmp_path):
    import eegfm.modules.patch_embed as patch_embed

    out = tmp_path / "conv_block_memory.json"
    report = _load("conv_block_memory").main(["--batch-size", "2", "--rounds", "1", "--threads", "1",
                                              "--out", str(out)])
    arms = report["arms"]
    assert set(arms) == {"conv", "conv checkpointed", "matmul", "matmul written out", "matmul checkpointed"}
    assert report["patches"] == 2 * 64 * 4
    # what each keeps: checkpointed the least, ConvNormGELU about a sixth of the written-out blocks
    assert arms["matmul checkpointed"]["saved_GiB"] == arms["conv checkpointed"]["saved_GiB"]
    assert arms["matmul checkpointed"]["saved_GiB"] < arms["matmul"]["saved_GiB"]
    assert 5 * arms["matmul"]["saved_GiB"] < arms["matmul written out"]["saved_GiB"]
    assert arms["matmul"]["max_abs_difference"]["output"] == 0.0  # the same forward, bit for bit
    assert arms["matmul written out"]["max_abs_difference"]["gradients_relative"] == 0.0
    assert all(a["max_abs_difference"]["gradients_relative"] < 0.05 for a in arms.values())
    assert all(a["median_ms"] > 0 for a in arms.values())
    assert patch_embed.LEAN_CONV_BLOCKS is True
    assert json.loads(out.read_text()) == report


def test_padding_packing_times_both_arms_with_the_same_loss_and_restores_the_library(tmp_path, capsys):
    import eegfm.modules.packing as packing

    out = tmp_path / "packing.json"
    report = _load("padding_packing").main(["--size", "tiny", "--batch-size", "3", "--seconds", "2", "--rounds", "1",
                                            "--out", str(out)])
    assert set(report["steps"]) == {"encoder", "pretrain"}
    assert report["real_token_share"] == round((19 + 32 + 64) / (3 * 64), 3)
    for figures in report["steps"].values():
        assert set(figures["median_ms"]) == {"packed", "unpacked"} and all(ms > 0 for ms in figures["median_ms"].values())
        assert figures["loss_difference"] < 1e-5
    assert packing.PACK_ON_CPU is True
    assert json.loads(out.read_text()) == report
    assert '"ratio_unpacked_over_packed"' in capsys.readouterr().out


def test_cpu_bf16_step_times_four_arms_and_restores_the_attention_setting(tmp_path):
    import eegfm.modules.transformer as transformer

    before = transformer.CPU_HALF_ATTENTION_IN_FP32
    report = _load("cpu_bf16_step").main(["--size", "tiny", "--batch-size", "2", "--n-chans", "4", "--seconds", "1",
                                          "--patch-size", "50", "--steps", "1", "--rounds", "1", "--out", str(tmp_path)])
    arms = {"eegfm bf16, attention fp32", "eegfm bf16, attention bf16", "eegfm fp32", "Labram bf16"}
    assert set(report["step_ms"]) == set(report["tokens_per_s"]) == arms
    assert all(ms > 0 for ms in report["step_ms"].values())
    assert report["time_over_eegfm_bf16_attention_fp32"]["eegfm bf16, attention fp32"] == 1.0
    assert transformer.CPU_HALF_ATTENTION_IN_FP32 is before
    saved = json.loads(next(tmp_path.glob("cpu_bf16_step_classify_tiny_b2_t*.json")).read_text())
    assert saved["step_ms"] == report["step_ms"]
