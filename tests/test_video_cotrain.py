"""Co-training (SPEC 6): loss decreases, only the intended parameters learn, condition dropout,
deterministic batches, exact resume, save -> load -> identical pipeline output, errors."""

import csv

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from eegfm import MAPEEncoder
from eegfm.training import TrainConfig, load_checkpoint
from eegfm.training.checkpoint import FrozenParameters
from eegfm_video.alignment import EEGAlignment
from eegfm_video.cotrain import VideoCoTrainer, cotrain, paired_batches
from eegfm_video.models import InflatedUNet, SemanticDecoder, Seq2SeqLatentDecoder
from eegfm_video.pipeline import EEG2VideoPipeline

N, C, T, F, LAT, WIDTH = 6, 3, 200, 3, 4, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads only cost here


def tiny_alignment(mode="learned", seed=0) -> EEGAlignment:
    torch.manual_seed(seed)
    return EEGAlignment.from_components(
        MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2),
        SemanticDecoder(encoder_dim=16, hidden_dim=32, num_blocks=1, seq_len=4, width=WIDTH),
        Seq2SeqLatentDecoder(encoder_dim=16, d_model=16, num_layers=1, num_heads=2, latent_height=LAT,
                             latent_width=LAT, num_frames=F),
        negative_embedding_mode=mode)


def tiny_unet(seed=0) -> InflatedUNet:
    torch.manual_seed(seed)
    return InflatedUNet.from_unet2d(UNet2DConditionModel(
        sample_size=LAT, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        cross_attention_dim=WIDTH, attention_head_dim=8, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")))


def scheduler():
    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def data(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"eeg": torch.randn(N, C, T, generator=g) * 20, "positions": torch.rand(C, 2, generator=g) * 100,
            "text_embeddings": torch.randn(N, 4, WIDTH, generator=g),
            "latents": torch.randn(N, F, 4, LAT, LAT, generator=g)}


def train_config(tmp_path, steps, **kw) -> TrainConfig:
    return TrainConfig(**{"steps": steps, "lr": 3e-3, "min_lr": 3e-3, "warmup_steps": 1, "weight_decay": 0.0,
                          "log_every": 1, "checkpoint_every": steps, "run_dir": str(tmp_path / "run"),
                          "progress": False, "device": "cpu", **kw})


def fixed_seed_loss(model, batch, seed=123) -> float:
    torch.manual_seed(seed)  # the same noise, timesteps and dropout draws
    with torch.no_grad():
        out = model.training_step(batch)
    return float(out["loss_sum"] / out["count"])


# --------------------------------------------------------------------------- learning
def test_loss_decreases_on_a_tiny_batch(tmp_path):
    batch = data()
    model = VideoCoTrainer(tiny_alignment(), tiny_unet(), scheduler(), cond_drop_prob=0.2)
    before = fixed_seed_loss(model, batch)
    model, summary = cotrain(model.alignment, model.unet, scheduler(), paired_batches(batch, N, shuffle=False),
                             train_config(tmp_path, 20), cond_drop_prob=0.2)
    after = fixed_seed_loss(model, batch)
    assert summary["steps"] == 20
    assert after < 0.7 * before
    with open(tmp_path / "run" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 20 and {"loss_diffusion", "loss_text", "loss_low", "softclip"} <= set(rows[0])
    assert float(rows[-1]["loss_low"]) < float(rows[0]["loss_low"])
    assert float(rows[-1]["loss_text"]) < float(rows[0]["loss_text"])


def test_gradients_reach_exactly_the_intended_parameters():
    model = VideoCoTrainer(tiny_alignment(mode="fixed"), tiny_unet(), scheduler(), cond_drop_prob=0.5)
    torch.manual_seed(0)
    out = model.training_step(data())
    out["loss_sum"].backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    expected = {n for n, p in model.named_parameters()
                if (n.startswith("alignment.") and n != "alignment.negative_embedding")
                or (n.startswith("unet.") and (".temporal_attn." in n or ".attn1.to_q." in n or ".attn2.to_q." in n))}
    assert with_grad == expected
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for n, p in model.named_parameters()
                                                             if n in expected}
    # the UNet's trainable subset is SPEC 6's: to_q of attn1/attn2 + the temporal attentions (with zero-init outputs)
    assert any(".temporal_attn.to_out." in n for n in with_grad)
    assert not any(".attn1.to_k." in n or ".ff." in n or "conv_in" in n for n in with_grad)


def test_frozen_parts_stay_unchanged_trainable_parts_move(tmp_path):
    alignment, unet = tiny_alignment(mode="learned"), tiny_unet()
    before = {n: p.detach().clone() for n, p in [*alignment.named_parameters(prefix="alignment"),
                                                   *unet.named_parameters(prefix="unet")]}
    model, _ = cotrain(alignment, unet, scheduler(), paired_batches(data(), N, shuffle=False),
                       train_config(tmp_path, 5, weight_decay=0.05), cond_drop_prob=0.5)
    trainable = {id(p) for p in model.trainable_parameters()}
    for name, param in model.named_parameters():
        if id(param) in trainable:
            assert not torch.equal(param, before[name]), name
        else:
            assert torch.equal(param, before[name]), name
    assert "alignment.negative_embedding" in {n for n, p in model.named_parameters() if id(p) in trainable}


def test_condition_dropout_feeds_the_negative_embedding():
    model = VideoCoTrainer(tiny_alignment(), tiny_unet(), scheduler(), cond_drop_prob=0.5)
    with torch.no_grad():
        model.alignment.negative_embedding.fill_(7.0)
    seen = []
    hook = model.unet.register_forward_hook(lambda module, args, output: seen.append(args[2].detach().clone()))
    batch = {k: v.repeat(8, *([1] * (v.ndim - 1))) if k != "positions" else v for k, v in data().items()}  # 48 clips
    torch.manual_seed(0)
    with torch.no_grad():
        condition = model.alignment(batch["eeg"], batch["positions"], latents=batch["latents"]).text_embeddings
        model.diffusion_loss(condition, batch["latents"])
    hook.remove()
    fed = seen[0]  # (48, 4, 16)
    dropped = (fed == 7.0).all(dim=(1, 2))
    assert 0 < int(dropped.sum()) < 48
    torch.testing.assert_close(fed[~dropped], condition[~dropped])


def test_v_prediction_target_is_the_velocity():
    sched = DDPMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction")
    model = VideoCoTrainer(tiny_alignment(), tiny_unet(), sched, cond_drop_prob=0.0)
    batch = data()
    torch.manual_seed(3)
    with torch.no_grad():
        loss = model.diffusion_loss(batch["text_embeddings"], batch["latents"])
    torch.manual_seed(3)  # replay the draws: noise, then timesteps
    x0 = batch["latents"].transpose(1, 2)
    noise = torch.randn_like(x0)
    t = torch.randint(0, 1000, (N,))
    with torch.no_grad():
        pred = model.unet(sched.add_noise(x0, noise, t), t, batch["text_embeddings"]).sample
    torch.testing.assert_close(loss, torch.mean((pred - sched.get_velocity(x0, noise, t)) ** 2))


# --------------------------------------------------------------------------- batches, resume, saving
def test_paired_batches_are_deterministic_in_epoch_and_start():
    batches = paired_batches(data(), 2, seed=4)
    full = list(batches(3, 0))
    assert len(full) == 3 and all(b["eeg"].shape == (2, C, T) for b in full)
    assert all(torch.equal(a["eeg"], b["eeg"]) for a, b in zip(full[1:], batches(3, 1)))
    assert not torch.equal(full[0]["eeg"], next(iter(batches(4, 0)))["eeg"])  # a new order each epoch
    rows = torch.cat([b["eeg"] for b in full])
    assert sorted(rows[:, 0, 0].tolist()) == sorted(data()["eeg"][:, 0, 0].tolist())  # every clip once
    assert full[0]["positions"].shape == (C, 2)


def test_resume_continues_exactly(tmp_path):
    def run(directory, steps, resume=False):
        return cotrain(tiny_alignment(), tiny_unet(), scheduler(), paired_batches(data(), 2, seed=1),
                       train_config(directory, steps, checkpoint_every=2, resume=resume, lr=1e-3, min_lr=1e-4,
                                    warmup_steps=2))[0]

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoints_hold_the_trained_parameters_and_the_frozen_hash_only(tmp_path):
    model, _ = cotrain(tiny_alignment(mode="fixed"), tiny_unet(), scheduler(), paired_batches(data(), N),
                       train_config(tmp_path, 4, checkpoint_every=1, keep_checkpoints=2))
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt", "step_0000003.pt", "step_0000004.pt"]
    state = load_checkpoint(ckpts / "last.pt")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert set(state["model"]) == trained | {n for n, _ in model.named_buffers()}
    assert "unet.unet.conv_in.weight" in frozen and "alignment.negative_embedding" in frozen  # fixed: not trained
    assert state["frozen_sha256"] == FrozenParameters(model).sha256()
    whole = tmp_path / "whole.pt"  # the same checkpoint with the frozen weights, as before
    torch.save({**state, "model": model.state_dict()}, whole)
    frozen_bytes = sum(p.numel() * p.element_size() for p in frozen.values())
    assert whole.stat().st_size - (ckpts / "last.pt").stat().st_size >= frozen_bytes > 0


def test_resuming_with_another_frozen_unet_is_one_clear_error(tmp_path):
    first, _ = cotrain(tiny_alignment(), tiny_unet(), scheduler(), paired_batches(data(), N),
                       train_config(tmp_path, 2))
    saved = FrozenParameters(first).sha256()
    other = VideoCoTrainer(tiny_alignment(), tiny_unet(seed=1), scheduler())
    other_sha = FrozenParameters(other).sha256()
    with pytest.raises(ValueError, match=rf"its frozen parameters have sha256 {saved[:16]} but this model's have "
                                         rf"{other_sha[:16]}; build the model from the same pre-trained weights"):
        cotrain(tiny_alignment(), tiny_unet(seed=1), scheduler(), paired_batches(data(), N),
                train_config(tmp_path, 4, resume=True))


def test_save_load_gives_the_identical_pipeline_output(tmp_path):
    model, _ = cotrain(tiny_alignment(), tiny_unet(), scheduler(), paired_batches(data(), N, shuffle=False),
                       train_config(tmp_path, 3))
    for directory in (tmp_path / "saved", tmp_path / "run" / "model"):  # save_pretrained, and the Trainer's copy
        if directory.name == "saved":
            model.save_pretrained(directory)
        assert sorted(p.name for p in directory.iterdir()) == ["alignment", "cotrain_config.json", "unet"]
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 16), norm_num_groups=8).eval()
    ddim = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    trained = EEG2VideoPipeline(model.alignment.eval(), model.unet.eval(), vae, ddim)
    loaded = EEG2VideoPipeline(EEGAlignment.from_pretrained(tmp_path / "saved" / "alignment"),
                               InflatedUNet.from_pretrained(tmp_path / "saved" / "unet"), vae, ddim)
    eeg = data()["eeg"][:2]
    positions = data()["positions"]
    kwargs = dict(num_inference_steps=3, strength=0.7, guidance_scale=2.0, output_type="np")
    for pipe in (trained, loaded):
        pipe.set_progress_bar_config(disable=True)
    first = trained(eeg, positions, generator=torch.Generator().manual_seed(0), **kwargs).frames
    second = loaded(eeg, positions, generator=torch.Generator().manual_seed(0), **kwargs).frames
    assert first.shape == (2, F, 2 * LAT, 2 * LAT, 3) and np.array_equal(first, second)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cond_drop_prob=1.0), r"cond_drop_prob must be a number in \[0, 1\), got 1.0"),
        (dict(diffusion_weight=-1), r"diffusion_weight must be a non-negative finite number, got -1"),
        (dict(unet_trainable="defualt"), r"unet_trainable must be one of \('default', 'temporal', 'all'\), got "
                                         r"'defualt'. Did you mean 'default'\?"),
        (dict(unet_lr_scale=0), r"unet_lr_scale must be a positive number, got 0"),
    ],
)
def test_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VideoCoTrainer(tiny_alignment(), tiny_unet(), scheduler(), **kwargs)


def test_batch_errors_name_the_key():
    model = VideoCoTrainer(tiny_alignment(), tiny_unet(), scheduler())
    batch = data()
    with pytest.raises(ValueError, match=r"batch must be a dict with keys \('eeg', 'positions', 'text_embeddings', "
                                         r"'latents'\).*got \['eeg', 'positions', 'text_embeddings'\]"):
        model.training_step({k: v for k, v in batch.items() if k != "latents"})
    with pytest.raises(ValueError, match=r"batch\['latents'\] must have shape \(6, frames, 4, 4, 4\), got "
                                         r"\(6, 3, 4, 8, 8\)"):
        model.training_step({**batch, "latents": torch.zeros(N, F, 4, 8, 8)})
    with pytest.raises(ValueError, match=r"batch\['text_embeddings'\] must have shape \(6, 4, 16\), got \(6, 77, 16\)"):
        model.training_step({**batch, "text_embeddings": torch.zeros(N, 77, WIDTH)})
    with pytest.raises(ValueError, match=r"data is missing \['latents'\]"):
        paired_batches({k: v for k, v in batch.items() if k != "latents"}, 2)
    with pytest.raises(ValueError, match=r"batch_size=8 is larger than the 6 clips and drop_last=True: no batch"):
        paired_batches(batch, 8)


def test_width_must_match_the_unet():
    unet = InflatedUNet.from_unet2d(UNet2DConditionModel(
        sample_size=LAT, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        cross_attention_dim=8, attention_head_dim=8, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")))
    with pytest.raises(ValueError, match=r"the semantic decoder's width=16 must equal the UNet's cross_attention_dim=8"):
        VideoCoTrainer(tiny_alignment(), unet, scheduler())
