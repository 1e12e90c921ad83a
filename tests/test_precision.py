"""amp="auto" picks bf16 only where a GPU computes it natively (eegfm.training.precision), on CPU
with the CUDA queries monkeypatched."""

import logging
from contextlib import nullcontext

import pytest
import torch

from eegfm.training import TrainConfig, Trainer
from eegfm.training.precision import autocast_factory, native_bf16, resolve_amp

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """Set the compute capability the CUDA queries report (a CUDA build, not ROCm)."""
    def set_capability(major: int, minor: int = 0):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.version, "hip", None)
        # the query that counts emulation says yes on every GPU here, as on a real V100 / T4
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)

    return set_capability


@pytest.mark.parametrize("capability, expected", [((7, 0), "no"), ((7, 5), "no"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_picks_bf16_only_where_it_is_native(gpu, capability, expected):
    gpu(*capability)  # V100, T4: emulated bf16 -> float32; A100, H100: bf16
    assert native_bf16(CUDA) is (expected == "bf16")
    assert resolve_amp("auto", CUDA) == expected
    assert resolve_amp("auto", "cuda") == expected


def test_rocm_counts_as_native(gpu, monkeypatch):
    gpu(7, 0)
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert native_bf16(CUDA) and resolve_amp("auto", CUDA) == "bf16"


def test_other_devices_run_auto_in_float32_and_explicit_choices_stand(gpu):
    gpu(9, 0)  # even beside a native GPU, a CPU / MPS device runs "auto" in float32
    for device in ("cpu", "mps", torch.device("cpu")):
        assert not native_bf16(device) and resolve_amp("auto", device) == "no"
    assert resolve_amp("bf16", "cpu") == "bf16" and resolve_amp("no", CUDA) == "no"
    assert resolve_amp("fp16", CUDA) == "fp16"


def test_explicit_bf16_on_an_emulating_gpu_is_kept_with_a_warning(gpu, caplog):
    gpu(7, 0)
    with caplog.at_level(logging.WARNING, logger="eegfm.training"):
        assert resolve_amp("bf16", CUDA) == "bf16"
    assert "amp='bf16' on cuda:0 is emulated (compute capability (7, 0) < 8.0)" in caplog.text


def test_errors_name_the_bad_setting():
    with pytest.raises(ValueError, match=r"amp='bf61' is not one of \('auto', 'bf16', 'fp16', 'no'\)$"):
        resolve_amp("bf61", "cpu")
    with pytest.raises(ValueError, match=r"amp='fp16' needs a CUDA device, got device=cpu; use amp='bf16' or 'no'"):
        resolve_amp("fp16", "cpu")


def test_autocast_factory_builds_what_resolve_amp_chose(gpu):
    gpu(7, 0)
    assert autocast_factory("auto", CUDA) == (nullcontext, None)  # emulated: float32, no scaler
    factory, scaler = autocast_factory("bf16", "cpu")
    assert scaler is None
    with factory():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_the_trainer_resolves_amp_with_the_shared_function(gpu, tmp_path):
    """Pre-training, fine-tuning and video co-training all build their autocast in Trainer._autocast."""
    class Model(torch.nn.Linear):
        def training_step(self, batch):
            return {"loss_sum": self(batch).sum(), "count": len(batch)}

    gpu(7, 5)
    trainer = Trainer(Model(2, 1), TrainConfig(run_dir=str(tmp_path)), lambda epoch, start: iter(()))
    trainer.device = CUDA  # what fit() resolves on a T4
    assert trainer._autocast() == (nullcontext, None)


@pytest.mark.parametrize("amx", [True, False])
def test_auto_keeps_float32_on_a_cpu_and_says_when_bf16_would_be_faster(amx, monkeypatch, caplog):
    import eegfm.training.precision as precision

    monkeypatch.setattr(precision, "cpu_has_amx", lambda: amx)
    with caplog.at_level(logging.INFO, logger="eegfm.training"):
        assert resolve_amp("auto", "cpu") == "no"
        assert resolve_amp("bf16", "cpu") == "bf16"
    hint = "this CPU has AMX: amp='bf16' trains about 1.6x faster than float32 here"
    assert (hint in caplog.text) is amx
    assert caplog.text.count("this CPU has AMX") == int(amx)  # said for 'auto' only


def test_cpu_has_amx_reads_the_cpu_flags(monkeypatch, tmp_path):
    import eegfm.training.precision as precision

    real = precision.Path
    for flags, expected in (("fpu avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", False)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "Path", lambda _: real(cpuinfo))
        precision.cpu_has_amx.cache_clear()
        assert precision.cpu_has_amx() is expected
    monkeypatch.setattr(precision, "Path", lambda _: real(tmp_path / "missing"))
    precision.cpu_has_amx.cache_clear()
    assert precision.cpu_has_amx() is False
    monkeypatch.undo()
    precision.cpu_has_amx.cache_clear()
