"""End-to-end check of eegfm_video on a synthetic paired set, on a CPU (the issue's acceptance check).

The whole chain, trained on tiny models built from config objects (nothing downloads):

1. data: :func:`eegfm_video.synthetic.make_synthetic_clips`: 3 shapes x 2 motion directions =
   6 classes, 6 frames of 32 x 32 per clip, paired with 8-channel EEG at 200 Hz (2 s) whose
   spectrum depends on the shape (rhythm frequency) and the motion (lateralisation); a train and
   a test split;
2. a tiny ``AutoencoderKL`` (32 x 32 -> 4 x 8 x 8, 3 levels) trained on the train frames (the stand-in for
   Stable Diffusion's pre-trained VAE), its ``scaling_factor`` set to 1 / std of the latents;
3. targets through :func:`eegfm_video.targets.precompute_targets`: captions of each clip's first
   frame and their text embeddings (no BLIP / CLIP offline: :class:`ShapeCaptioner` names the
   shape from its colour, "a red square", and :class:`CaptionEmbedder` gives each caption a fixed
   random (4, 32) embedding), VAE latents of every frame;
4. co-training (:func:`eegfm_video.cotrain.cotrain`, eegfm's Trainer) of a tiny MAPEEncoder +
   SemanticDecoder + Seq2Seq decoder and an inflated tiny ``UNet2DConditionModel``. There is
   no pre-trained image UNet here, so the whole UNet is trained (``unet_trainable="all"``; the
   default subset assumes Stable Diffusion's weights);
5. generation of the test clips from their EEG with :class:`EEG2VideoPipeline` (DDIM, CFG,
   Seq2Seq start with dynamic-aware noise), saved as PNG/GIF beside the ground truth;
6. evaluation: a small video CNN (:class:`TorchClassifier`) trained on the real synthetic train
   videos classifies the generated test clips (accuracy, chance 1/6) and gives the N-way top-1
   scores of :func:`evaluate_clips` (video-based; frame-based with a shape classifier), chance
   beside each, and SSIM. Controls: the same classifier on the real test clips and on their VAE
   reconstructions (upper bounds), and on clips generated from the EEG of other test clips
   (shuffled pairing: what is left when the EEG does not match).

    python benchmarks/video_e2e_synthetic.py               # about 5-10 min on 2 CPU cores
    python benchmarks/video_e2e_synthetic.py --quick       # a smoke run, about a minute

Writes ``benchmarks/results/video_e2e_synthetic/video_e2e_synthetic.json`` (with the command,
the configuration, timings and the figures) and ``samples.png`` / ``samples.gif`` (generated vs
ground truth for a few test clips).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results" / "video_e2e_synthetic"


@dataclass
class E2EConfig:
    n_train_per_class: int = 40  # synthetic clips per class (6 classes)
    n_test_per_class: int = 8
    size: int = 32  # frame side in pixels (latents: size / 4 with the tiny 3-level VAE)
    n_frames: int = 6
    vae_steps: int = 400  # tiny VAE pre-training steps (the stand-in for SD's VAE)
    vae_batch: int = 32  # frames per VAE step
    cotrain_steps: int = 500  # co-training steps
    batch_size: int = 12  # clips per co-training step
    lr: float = 1e-3
    embed_dim: int = 64  # tiny MAPEEncoder width
    text_seq_len: int = 4  # "text embedding" tokens (77 for CLIP)
    text_width: int = 32  # and width (768 for CLIP), = the UNet's cross_attention_dim
    inference_steps: int = 25
    guidance_scale: float = 3.0
    strength: float = 0.8
    shared_noise_share: float = 0.3
    classifier_steps: int = 300
    seed: int = 0
    threads: int = 1  # torch threads: 1 is far faster than 2 on a shared 2-core machine


# ---------------------------------------------------------------------------- tiny models
def tiny_vae(seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                         block_out_channels=(16, 32, 32), norm_num_groups=8, sample_size=32)


def tiny_unet2d(cross_attention_dim: int, sample_size: int, seed: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))


def sd_scheduler(kind: str = "ddim"):
    """Stable Diffusion 1.x's noise schedule (scaled linear betas, 1000 steps)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    config = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  clip_sample=False, steps_offset=1)
    if kind == "ddim":
        return DDIMScheduler(**config, set_alpha_to_one=False)
    return DDPMScheduler(**config)


def train_vae(vae, frames: np.ndarray, steps: int, batch: int, seed: int) -> dict:
    """Train the autoencoder on frames (N, H, W, 3) uint8: L1 + MSE reconstruction + a small KL."""
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    vae.train()
    losses = []
    for _ in range(steps):
        x = x_all[rng.choice(len(x_all), batch, replace=False)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    vae.eval()
    with torch.no_grad():
        means = torch.cat([vae.encode(x_all[i:i + 256]).latent_dist.mean for i in range(0, len(x_all), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / means.std()))
    return {"first_loss": losses[0], "last_loss": float(np.mean(losses[-20:])),
            "scaling_factor": vae.config.scaling_factor}


class ClipCNN(nn.Module):
    """A small CNN over a clip's frames stacked on the channel axis: (B, F, 3, H, W) -> logits."""

    def __init__(self, n_frames: int, n_classes: int, *, frames_as_batch: bool = False):
        super().__init__()
        c_in = 3 if frames_as_batch else 3 * n_frames
        self.frames_as_batch = frames_as_batch
        self.net = nn.Sequential(
            nn.Conv2d(c_in, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.GELU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.frames_as_batch:
            x = x.flatten(1, 2)  # (B, F*3, H, W)
        return self.net(x)


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> nn.Module:
    """Train on uint8 inputs (N, ..., H, W, 3) with noise + blur augmentation (generated clips are soft)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.from_numpy(x).movedim(-1, -3).float() / 255.0  # (N, ..., 3, H, W)
    labels = torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(inputs), (32,), generator=gen)
        batch = inputs[idx]
        shape = batch.shape
        flat = batch.reshape(-1, *shape[-3:])
        if torch.rand((), generator=gen) < 0.5:  # random blur
            flat = F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, 1)
        flat = flat + 0.05 * torch.randn(flat.shape, generator=gen)
        loss = F.cross_entropy(model(flat.reshape(shape)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


# ---------------------------------------------------------------------------- the chain
def run_chain(cfg: E2EConfig, out_dir: Path, *, work_dir: Path | None = None, log=print) -> dict:
    """Run the whole chain; returns the report.

    ``out_dir`` receives ``samples.png`` / ``samples.gif``; ``work_dir`` (default ``out_dir``) the
    target cache (``targets/``) and the training run (``run/``: checkpoints, metrics.csv).
    """
    from eegfm import MAPEEncoder
    from eegfm.training import TrainConfig
    from eegfm_video.alignment import EEGAlignment
    from eegfm_video.cotrain import cotrain, paired_batches
    from eegfm_video.evaluation import TorchClassifier, evaluate_clips, format_results
    from eegfm_video.io import save_gif
    from eegfm_video.models import InflatedUNet, SemanticDecoder, Seq2SeqLatentDecoder
    from eegfm_video.pipeline import EEG2VideoPipeline
    from eegfm_video.synthetic import CaptionEmbedder, ShapeCaptioner, make_synthetic_clips
    from eegfm_video.targets import TargetConfig, VaeFrameEncoder, precompute_targets

    torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir if work_dir is None else Path(work_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name):
        nonlocal t0
        timings[name] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()

    # 1. data
    data = make_synthetic_clips(cfg.n_train_per_class, cfg.n_test_per_class, n_frames=cfg.n_frames, size=cfg.size,
                                seed=cfg.seed)
    train, test = data.subset("train"), data.subset("test")
    n_classes = len(data.class_names)
    log(f"[1/6] synthetic set: {len(train)} train / {len(test)} test clips, {n_classes} classes "
        f"{data.class_names}, EEG {data.eeg.shape[1:]} at {data.sfreq:g} Hz, videos {data.videos.shape[1:]}")
    lap("data_s")

    # 2. VAE
    vae = tiny_vae(cfg.seed)
    vae_info = train_vae(vae, train.videos.reshape(-1, *train.videos.shape[2:]), cfg.vae_steps, cfg.vae_batch,
                         cfg.seed)
    log(f"[2/6] tiny VAE: loss {vae_info['first_loss']:.3f} -> {vae_info['last_loss']:.3f}, "
        f"scaling_factor {vae_info['scaling_factor']:.3f}")
    lap("vae_s")

    # 3. targets (through the cache, as for real data)
    embedder = CaptionEmbedder(cfg.text_seq_len, cfg.text_width, seed=cfg.seed)
    targets = precompute_targets(
        data.clips(), work_dir / "targets",
        TargetConfig(caption_model="synthetic/shape-captioner", text_model="synthetic/caption-embedder",
                     vae_model="synthetic/tiny-vae"),
        captioner=ShapeCaptioner(), text_embedder=embedder, vae_encoder=VaeFrameEncoder(vae), overwrite=True,
        mmap=False, progress=False)
    rows = {clip_id: i for i, clip_id in enumerate(targets.clip_ids)}
    train_rows = [rows[c] for c in train.clip_ids]
    log(f"[3/6] targets: captions {sorted(set(targets.captions))}, text {targets.text_embeddings.shape[1:]}, "
        f"latents {targets.latents.shape[1:]}")
    lap("targets_s")

    # 4. co-training
    torch.manual_seed(cfg.seed)
    latent_hw = cfg.size // 2 ** (len(vae.config.block_out_channels) - 1)
    encoder = MAPEEncoder(patch_size=50, embed_dim=cfg.embed_dim, depth=2, num_heads=4, sfreq=data.sfreq)
    semantic = SemanticDecoder(encoder_dim=cfg.embed_dim, hidden_dim=128, num_blocks=1, seq_len=cfg.text_seq_len,
                               width=cfg.text_width)
    seq2seq = Seq2SeqLatentDecoder(encoder_dim=cfg.embed_dim, d_model=128, num_layers=2, num_heads=4,
                                   latent_height=latent_hw, latent_width=latent_hw, num_frames=cfg.n_frames)
    alignment = EEGAlignment.from_components(encoder, semantic, seq2seq)
    unet = InflatedUNet.from_unet2d(tiny_unet2d(cfg.text_width, latent_hw, cfg.seed))
    batches = paired_batches({"eeg": train.eeg, "positions": data.positions(),
                              "text_embeddings": targets.text_embeddings[train_rows],
                              "latents": targets.latents[train_rows]}, cfg.batch_size, seed=cfg.seed)
    train_cfg = TrainConfig(steps=cfg.cotrain_steps, lr=cfg.lr, min_lr=cfg.lr / 20,
                            warmup_steps=max(cfg.cotrain_steps // 20, 1), weight_decay=0.01, grad_clip=1.0,
                            log_every=max(cfg.cotrain_steps // 10, 1), checkpoint_every=cfg.cotrain_steps,
                            seed=cfg.seed, run_dir=str(work_dir / "run"), metrics="csv", progress=False, device="cpu")
    _, summary = cotrain(alignment, unet, sd_scheduler("ddpm"), batches, train_cfg, unet_trainable="all",
                         cond_drop_prob=0.1)
    curve = _read_curve(work_dir / "run" / "metrics.csv")
    log(f"[4/6] co-training: {cfg.cotrain_steps} steps, loss {curve[0]['loss']:.3f} -> {curve[-1]['loss']:.3f} "
        f"(diffusion {curve[0]['loss_diffusion']:.3f} -> {curve[-1]['loss_diffusion']:.3f}, "
        f"low {curve[0]['loss_low']:.3f} -> {curve[-1]['loss_low']:.3f})")
    lap("cotrain_s")

    # 5. generation
    pipe = EEG2VideoPipeline(alignment.eval(), unet.eval(), vae.eval(), sd_scheduler("ddim"))
    pipe.set_progress_bar_config(disable=True)
    eeg, positions = torch.from_numpy(test.eeg), torch.from_numpy(data.positions())
    sampling = dict(num_inference_steps=cfg.inference_steps, guidance_scale=cfg.guidance_scale,
                    strength=cfg.strength, shared_noise_share=cfg.shared_noise_share)
    generated = pipe(eeg, positions, generator=torch.Generator().manual_seed(cfg.seed), **sampling).frames
    shuffle = np.random.default_rng(cfg.seed).permutation(len(test))
    while len(test) > 1 and (test.labels[shuffle] == test.labels).all():
        shuffle = np.roll(shuffle, 1)
    shuffled = pipe(eeg[shuffle], positions, generator=torch.Generator().manual_seed(cfg.seed), **sampling).frames
    with torch.no_grad():
        recon = pipe.decode_latents(torch.from_numpy(targets.latents[[rows[c] for c in test.clip_ids]])
                                    .transpose(1, 2)).numpy()
    log(f"[5/6] generated {generated.shape} in {time.perf_counter() - t0:.1f} s "
        f"({cfg.inference_steps} DDIM steps x strength {cfg.strength}, CFG {cfg.guidance_scale})")
    lap("generate_s")

    # 6. evaluation
    video_net = train_classifier(ClipCNN(cfg.n_frames, n_classes), train.videos, train.labels, cfg.classifier_steps,
                                 cfg.seed)
    shape_labels = train.labels // 2  # 3 shapes, one per frame
    frame_net = train_classifier(ClipCNN(1, n_classes // 2, frames_as_batch=True),
                                 train.videos.reshape(-1, cfg.size, cfg.size, 3), np.repeat(shape_labels, cfg.n_frames),
                                 cfg.classifier_steps, cfg.seed + 1)
    video_clf = TorchClassifier(video_net, ndim=5, device="cpu")
    frame_clf = TorchClassifier(frame_net, ndim=4, device="cpu")

    def accuracy(clips, labels):
        return float((video_clf(clips).argmax(1) == labels).mean())

    acc = {"generated": accuracy(generated, test.labels), "real_test": accuracy(test.videos, test.labels),
           "vae_reconstruction": accuracy(recon, test.labels),
           "generated_from_shuffled_eeg": accuracy(shuffled, test.labels), "chance": 1.0 / n_classes}
    n_ways = tuple(n for n in (2, n_classes) if n >= 2)
    protocol = dict(n_trials=100, seed=cfg.seed, n_gt_classes=1)
    ev_video = evaluate_clips(generated, test.videos, None, video_clf, n_ways=n_ways, **protocol)
    ev_frame = evaluate_clips(generated, test.videos, frame_clf, None, n_ways=(2, n_classes // 2), **protocol)
    ev_shuffled = evaluate_clips(shuffled, test.videos, None, video_clf, n_ways=n_ways, **protocol)
    ev_protocol = evaluate_clips(generated, test.videos, None, video_clf, n_ways=(2,), n_trials=100, seed=cfg.seed,
                                 n_gt_classes=3)
    evaluation = {"ssim": _no_lists(evaluate_clips(generated, test.videos)["ssim"]),
                  "ssim_shuffled_eeg": _no_lists(evaluate_clips(shuffled, test.videos)["ssim"]),
                  "ssim_vae_reconstruction": _no_lists(evaluate_clips(recon, test.videos)["ssim"]),
                  "video": _no_lists(ev_video["video"]), "frame_shape": _no_lists(ev_frame["frame"]),
                  "video_shuffled_eeg": _no_lists(ev_shuffled["video"]),
                  "video_spec7_protocol_top3_gt": _no_lists(ev_protocol["video"])}
    log("[6/6] classifier accuracy on the test clips (chance {chance:.3f}): generated {generated:.3f}, "
        "from shuffled EEG {generated_from_shuffled_eeg:.3f}, real {real_test:.3f}, VAE reconstruction "
        "{vae_reconstruction:.3f}".format(**acc))
    log(format_results({**ev_video, "ssim": evaluate_clips(generated, test.videos)["ssim"],
                        "frame": ev_frame["frame"]}))
    lap("evaluate_s")

    _save_samples(out_dir, test, generated, save_gif)
    return {"config": dataclasses.asdict(cfg), "vae": vae_info,
            "cotrain": {"summary": {k: v for k, v in summary.items() if k != "run_dir"}, "curve": curve},
            "accuracy": acc, "evaluation": evaluation, "sampling": sampling, "timings_s": timings}


def _no_lists(block: dict) -> dict:
    """Drop per-clip lists (kept short in the JSON)."""
    if "per_clip" in block:
        return {k: v for k, v in block.items() if k != "per_clip"}
    return {k: _no_lists(v) if isinstance(v, dict) else v for k, v in block.items()}


def _read_curve(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    keep = ("step", "loss", "loss_diffusion", "loss_text", "loss_low", "softclip")
    return [{k: (int(float(r[k])) if k == "step" else round(float(r[k]), 4)) for k in keep if k in r} for r in rows]


def _save_samples(out_dir: Path, test, generated: np.ndarray, save_gif) -> None:
    """samples.png: per class one test clip, ground truth row above the generated row; samples.gif."""
    import imageio.v3 as iio

    picks = [int(np.flatnonzero(test.labels == c)[0]) for c in np.unique(test.labels)]
    rows = []
    for i in picks:
        rows.append(np.concatenate(list(test.videos[i]), axis=1))
        rows.append(np.concatenate(list(generated[i]), axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    iio.imwrite(out_dir / "samples.png", np.concatenate(rows, axis=0))
    pairs = np.concatenate([np.concatenate([test.videos[i], generated[i]], axis=1) for i in picks], axis=2)
    save_gif(pairs, out_dir / "samples.gif", fps=3)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (few steps): checks the chain runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    for f in dataclasses.fields(E2EConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None)
    args = parser.parse_args(argv)
    cfg = E2EConfig()
    if args.quick:
        cfg = dataclasses.replace(cfg, n_train_per_class=8, n_test_per_class=2, vae_steps=60, cotrain_steps=40,
                                  inference_steps=5, classifier_steps=40)
    cfg = dataclasses.replace(cfg, **{f.name: getattr(args, f.name) for f in dataclasses.fields(E2EConfig)
                                      if getattr(args, f.name) is not None})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="video_e2e_") as work:  # targets + checkpoints: not results
        report = run_chain(cfg, args.out, work_dir=Path(work))
    import diffusers

    report = {
        "benchmark": "video_e2e_synthetic",
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/video_e2e_synthetic.py",
                                                                  *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "device": f"cpu ({platform.processor() or platform.machine()}), {cfg.threads} threads",
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "total_s": round(time.perf_counter() - start, 1),
        "notes": ("Text targets are fixed random embeddings of first-frame captions made from the shape colour "
                  "(no BLIP/CLIP offline). N-way scores use the classifier's top-1 class on the ground truth as "
                  "the GT class (n_gt_classes=1: 6 classes are too few for SPEC 7's top-3); the SPEC 7 protocol "
                  "(top-3 GT classes, 2-way, chance 0.75) is reported too. The whole tiny UNet is trained (no "
                  "pre-trained image model exists for the synthetic frames)."),
        **report,
    }
    path = args.out / "video_e2e_synthetic.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {report['total_s']} s -> {path}")
    return report


if __name__ == "__main__":
    main()
