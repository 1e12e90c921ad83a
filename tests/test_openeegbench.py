"""eegfm.finetune.openeegbench: an eegfm encoder in OpenEEGBench's ``benchmark()``, offline.

OpenEEGBench pulls its datasets from the Hugging Face Hub. Here a tiny dataset in its format
(braindecode's Hub format: a windowed ``BaseConcatDataset`` as zarr + BIDS sidecars, 100 Hz, µV)
is written from real PhysioNet MI recordings into a Hub cache, where OpenEEGBench's
``Dataset.load`` (``BaseConcatDataset.pull_from_hub`` at a pinned revision) finds it offline.
"""

import math
import sys

import pytest
import torch

pytest.importorskip("braindecode")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(embed_dim=32, depth=1, num_heads=2, patch_size=100)
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash: snapshot_download reads it from the cache


def _chs_info(names=("Fz", "Cz", "Pz", "Oz"), sfreq=100.0):
    import mne

    return mne.create_info(list(names), sfreq, "eeg")["chs"]


@pytest.mark.parametrize("freq", [3.0, 10.0, 27.0])
def test_resample_keeps_the_signal(freq):
    from eegfm.finetune.openeegbench import resample

    t100, t200 = torch.arange(300) / 100.0, torch.arange(600) / 200.0
    at100, at200 = torch.sin(2 * math.pi * freq * t100 + 0.3), torch.sin(2 * math.pi * freq * t200 + 0.3)
    up = resample(at100[None, None].repeat(2, 3, 1), 100.0, 200.0)
    assert up.shape == (2, 3, 600)
    assert (up[..., 10:-10] - at200[10:-10]).abs().max() < 0.05  # interior: band-limited interpolation
    down = resample(at200[None], 200.0, 100.0)
    assert down.shape == (1, 300) and (down[..., 5:-5] - at100[5:-5]).abs().max() < 0.05
    assert resample(at100, 100.0, 100.0) is at100
    assert resample(torch.randn(1, 250), 250.0, 200.0).shape == (1, 200)


def test_resampling_mirror_takes_the_datas_rate(tmp_path):
    from eegfm import MAPEEncoder
    from eegfm.finetune.braindecode import EEGMirror
    from eegfm.finetune.openeegbench import ResamplingEEGMirror

    # as OpenEEGBench builds it: signal arguments of the data (100 Hz), the encoder config in model_kwargs
    model = ResamplingEEGMirror(n_chans=4, n_times=300, n_outputs=3, sfreq=100.0, chs_info=_chs_info(),
                                encoder=dict(TINY))
    assert (model.sfreq, model.n_times, model.input_window_seconds, model.encoder_sfreq) == (100.0, 300, 3.0, 200.0)
    assert model(torch.randn(2, 4, 300)).shape == (2, 3)
    assert model(torch.randn(2, 4, 300), return_features=True)["features"].shape == (2, 4 * 6, 32)  # 600 samples
    mirror = EEGMirror(n_outputs=3, chs_info=_chs_info(), sfreq=200.0, encoder=dict(TINY))
    assert model.state_dict().keys() == mirror.state_dict().keys()  # same checkpoints as EEGMirror
    with pytest.raises(ValueError, match="n_times=300 different from"):
        ResamplingEEGMirror(n_outputs=2, chs_info=_chs_info(), n_times=300, input_window_seconds=2.0, sfreq=100.0)

    encoder = MAPEEncoder(**TINY)
    encoder.save_pretrained(tmp_path / "encoder")
    loaded = ResamplingEEGMirror.from_encoder(tmp_path / "encoder", n_outputs=2, chs_info=_chs_info(), n_times=300,
                                              sfreq=100.0)
    assert loaded.sfreq == 100.0
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in loaded.encoder.state_dict().items())
    at_encoder_rate = EEGMirror.from_encoder(encoder, n_outputs=2, chs_info=_chs_info(sfreq=200.0))
    at_encoder_rate.final_layer.load_state_dict(loaded.final_layer.state_dict())
    x = torch.randn(1, 4, 300)
    from eegfm.finetune.openeegbench import resample

    torch.testing.assert_close(loaded.eval()(x), at_encoder_rate.eval()(resample(x, 100.0, 200.0)))


def test_checkpoint_and_benchmark_kwargs(tmp_path):
    from eegfm import MAPEEncoder
    from eegfm.finetune.openeegbench import ResamplingEEGMirror, benchmark_kwargs, save_checkpoint

    encoder = MAPEEncoder(**TINY)
    encoder.save_pretrained(tmp_path / "encoder")
    kwargs = benchmark_kwargs(tmp_path / "encoder", checkpoint_dir=tmp_path / "ckpt")
    assert kwargs["model_cls"] == "eegfm.finetune.openeegbench.ResamplingEEGMirror"
    assert kwargs["head_module_name"] == "final_layer"
    assert save_checkpoint(encoder, tmp_path / "ckpt") == tmp_path / "ckpt" / kwargs["checkpoint_path"].split("/")[-1]
    state = torch.load(kwargs["checkpoint_path"], weights_only=True)
    model = ResamplingEEGMirror(n_outputs=2, chs_info=_chs_info(), sfreq=100.0, **kwargs["model_kwargs"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and missing == ["final_layer.weight", "final_layer.bias"]
    names = {name for name, _ in model.named_modules()}
    assert all(any(n.endswith("." + m) for n in names) for m in kwargs["peft_target_modules"] + kwargs["peft_ff_modules"])
    with torch.no_grad():
        encoder.norm.weight.add_(1.0)
    assert save_checkpoint(encoder, tmp_path / "ckpt") != save_checkpoint(MAPEEncoder(**TINY), tmp_path / "ckpt")
    assert len(list((tmp_path / "ckpt").glob("eegfm-*.pth"))) == 3  # different weights: different file


def test_missing_open_eeg_bench_says_what_to_install(monkeypatch, tmp_path):
    from eegfm.finetune.openeegbench import benchmark

    monkeypatch.setitem(sys.modules, "open_eeg_bench", None)  # import open_eeg_bench -> ModuleNotFoundError
    with pytest.raises(ImportError, match=r"needs open-eeg-bench, which is not installed: pip install 'eegfm\[benchmark\]'"):
        benchmark(tmp_path / "no-encoder-needed-yet")


def _tiny_physionet_in_hub_format(shared_data, snapshot):
    """Subjects 1-3, run 4 (imagined left/right fist): 3 s windows at 100 Hz in µV, written as
    OpenEEGBench's datasets are (braindecode's ``push_to_hub`` layout, without the upload)."""
    import braindecode
    import mne
    from braindecode.datasets import BaseConcatDataset, RawDataset
    from braindecode.preprocessing import create_windows_from_events
    from mne.datasets import eegbci

    recordings = []
    for subject in (1, 2, 3):
        [path] = eegbci.load_data(subject, [4], path=shared_data / "eegbci", update_path=False, verbose=False)
        raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
        eegbci.standardize(raw)
        raw.set_montage("standard_1005", verbose=False)
        raw.resample(100.0, verbose=False)
        raw.apply_function(lambda x: x * 1e6)  # OpenEEGBench's datasets hold µV
        recordings.append(RawDataset(raw, description={"subject": subject, "run": "04"}))
    windows = create_windows_from_events(BaseConcatDataset(recordings), trial_start_offset_samples=0,
                                         trial_stop_offset_samples=0, window_size_samples=300,
                                         window_stride_samples=300, on_last_window="drop",
                                         mapping={"T1": 0, "T2": 1}, preload=True)
    lock = {"format": "zarr", "pipeline_name": "braindecode", "compression": "blosc", "compression_level": 5,
            "chunk_size": 5_000_000, "braindecode_version": braindecode.__version__,
            **windows._get_format_info_inline()}
    windows._build_local_cache(snapshot, lock)  # what push_to_hub uploads
    return len(windows)


@pytest.mark.real_data
def test_benchmark_runs_offline_on_a_tiny_local_dataset(shared_data, tmp_path, monkeypatch):
    pytest.importorskip("open_eeg_bench")
    pytest.importorskip("zarr")
    import huggingface_hub.constants
    from open_eeg_bench.dataset import Dataset, PredefinedSplitter
    from open_eeg_bench.experiment import run_many

    from eegfm import MAPEEncoder
    from eegfm.finetune.openeegbench import benchmark, benchmark_kwargs

    cache = tmp_path / "hub"
    n_windows = _tiny_physionet_in_hub_format(
        shared_data, cache / "datasets--eegfm-test--tiny-physionet" / "snapshots" / REVISION)
    assert n_windows == 45
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    local = Dataset(hf_id="eegfm-test/tiny-physionet", revision=REVISION, n_classes=2,
                    splitter=PredefinedSplitter(metadata_key="subject", train_values=[1], val_values=[2],
                                                test_values=[3]))

    encoder = MAPEEncoder(**TINY)
    encoder.save_pretrained(tmp_path / "encoder")
    # OpenEEGBench builds the model and loads the checkpoint itself: the weights are the encoder's
    _, train, _, _, info = local.setup(normalization=_no_normalization())
    assert (info["sfreq"], info["n_times"], info["n_chans"], len(train)) == (100.0, 300, 64, 15)
    from open_eeg_bench.backbone import PretrainedBackbone

    kwargs = benchmark_kwargs(tmp_path / "encoder", checkpoint_dir=tmp_path / "ckpt")
    backbone = PretrainedBackbone.model_validate({k: kwargs[k] for k in (
        "model_cls", "checkpoint_path", "model_kwargs", "head_module_name", "peft_target_modules", "peft_ff_modules")})
    model = backbone.build(**info)
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in model.encoder.state_dict().items())

    # benchmark() itself, with the local dataset in place of its Hub datasets and 2 epochs
    strategies = ["frozen", "lora", "ia3", "adalora", "dora", "oft", "full_finetune", "two_stages", "ridge_probe"]
    experiments = benchmark(tmp_path / "encoder", checkpoint_dir=tmp_path / "ckpt", datasets=["physionet"],
                            finetuning_strategies=strategies, n_seeds=1, infra={"folder": str(tmp_path / "exca")},
                            only_return_configs=True)
    assert len(experiments) == len(strategies)
    experiments = [exp.infra.clone_obj({"dataset": local, **({} if exp.training.kind == "ridge" else
                                                             {"training": {"max_epochs": 2, "batch_size": 5}})})
                   for exp in experiments]
    results = run_many(experiments, collect_all=True)
    assert results["status"].tolist() == ["completed"] * len(strategies), results.get("exception")
    # OpenEEGBench's names for "full_finetune" and the ridge probe (frozen encoder + flatten head)
    assert results["finetuning"].tolist() == [*strategies[:6], "full", "two_stages", "frozen"]
    assert results["head"].tolist() == ["linear"] * 8 + ["flatten"]
    assert results["test_balanced_accuracy"].between(0, 1).all()
    stats = dict(zip(results["finetuning"], results["adapter_stats"]))
    assert 0 < stats["lora"]["trainable_params"] < stats["full"]["trainable_params"] == stats["full"]["total_params"]
    assert (results["backbone"] == "ResamplingEEGMirror").all()


def _no_normalization():
    from open_eeg_bench.normalization import NoNormalization

    return NoNormalization()
