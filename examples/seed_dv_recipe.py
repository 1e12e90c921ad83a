"""SEED-DV recipe: EEGMirror's EEG-to-video results (Table 1) on your copy of SEED-DV.

SEED-DV is licensed (apply at https://bcmi.sjtu.edu.cn/home/eeg2video/); nothing here downloads
data. The models are the real ones, fetched from the Hugging Face Hub by id (or local copies):
BLIP large for captions, Stable Diffusion 1.5 (CLIP text encoder, VAE, UNet, scheduler),
ViT-B/16 and VideoMAE (Kinetics-400) for evaluation, and your pre-trained MAPEEncoder
(``eegfm pretrain`` writes ``<run_dir>/encoder``).

Steps (each skipped when its output exists, so the recipe resumes):

1. ``paired``: cut the subject's EEG into the 2-s segments of the 1400 clips
   (:func:`eegfm.datasets.seed_dv_clips`: blocks 1-6 train, block 7 test) and the
   block videos into the same clips, 6 frames at 3 fps, 288 x 512; written as a paired-clips
   directory (:class:`eegfm_video.paired_clips.PairedClips`, videos memory-mapped: about 3.7 GB);
2. ``targets``: BLIP captions of each clip's first frame, their CLIP text embeddings (77 x 768)
   and the VAE latents of the frames (6 x 4 x 36 x 64), cached once
   (:func:`eegfm_video.targets.precompute_targets`);
3. ``train``: co-training of the alignment module (pre-trained encoder + semantic decoder +
   6-layer Seq2Seq) and the inflated SD-1.5 UNet (``eegfm-video train``);
4. ``generate``: block 7's 200 clips from their EEG (DDIM 50 steps, CFG, Seq2Seq start with
   dynamic-aware noise) as frames, GIF and MP4 (``eegfm-video generate``);
5. ``evaluate``: SSIM and 2-/40-way top-1, frame-based (ViT-B/16) and video-based (VideoMAE),
   chance beside each (``eegfm-video evaluate``), printed beside the paper's Table 1.

    python examples/seed_dv_recipe.py --seed-dv /data/SEED-DV --subject 1 \\
        --encoder runs/pretrain/encoder --out runs/seed_dv/sub1

Video layout assumed: ``<seed-dv>/Video/<ordinal>_10min.mp4`` (``1st_10min.mp4`` ... ``7th_10min.mp4``),
one per block, time-aligned with the block's EEG (change with ``--video-dir`` and
``--video-pattern``). Any ``--key=value`` after ``--`` is passed to the ``train`` step
(e.g. ``-- --train.steps=50000 --train.lr=2e-4``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eegfm_video.evaluation.classifiers import DEFAULT_FRAME_CLASSIFIER, DEFAULT_VIDEO_CLASSIFIER
from eegfm_video.models.inflated_unet import SD15_MODEL_ID
from eegfm_video.targets import DEFAULT_CAPTION_MODEL

#: EEGMirror's Table 1 (full model) and EEG2Video's row, for comparison.
PAPER = {"EEGMirror": {"video 2-way": 0.821, "video 40-way": 0.172, "frame 2-way": 0.786, "frame 40-way": 0.154,
                       "SSIM": 0.261},
         "EEG2Video": {"video 2-way": 0.798, "video 40-way": 0.159, "frame 2-way": 0.774, "frame 40-way": 0.138,
                       "SSIM": 0.256}}
FPS, N_FRAMES, HEIGHT, WIDTH = 3, 6, 288, 512


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-dv", type=Path, required=True, help="SEED-DV folder (EEG/, meta_info/, Video/)")
    parser.add_argument("--subject", type=int, required=True, help="subject number (EEG/sub<N>.npy)")
    parser.add_argument("--session", type=int, default=1, help="session (files sub<N>_session<K>.npy)")
    parser.add_argument("--encoder", required=True, help="pre-trained MAPEEncoder: folder or Hub id")
    parser.add_argument("--out", type=Path, required=True, help="working folder (paired/, runs, generated/)")
    parser.add_argument("--video-dir", type=Path, default=None, help="default <seed-dv>/Video")
    parser.add_argument("--video-pattern", default="{ordinal}_10min.mp4",
                        help="file of block b: {block} = b, {ordinal} = 1st, 2nd, ...")
    parser.add_argument("--sd-model", default=SD15_MODEL_ID, help="Stable Diffusion 1.x (Hub id or folder)")
    parser.add_argument("--caption-model", default=DEFAULT_CAPTION_MODEL, help="BLIP captioner (Hub id or folder)")
    parser.add_argument("--frame-classifier", default=DEFAULT_FRAME_CLASSIFIER)
    parser.add_argument("--video-classifier", default=DEFAULT_VIDEO_CLASSIFIER)
    parser.add_argument("--device", default="auto", help="cuda | cpu | auto")
    parser.add_argument("--steps", type=int, default=20000, help="co-training steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="only validate the paths and stop")
    args, train_overrides = parser.parse_known_args(argv)
    args.train_overrides = [a for a in train_overrides if a != "--"]
    return args


def block_videos(args) -> dict[int, Path]:
    """Validate the SEED-DV folder; return the video file of each block (clear errors otherwise)."""
    root = args.seed_dv
    if not root.is_dir():
        raise SystemExit(f"--seed-dv {root} is not a directory: point it at your SEED-DV copy (EEG/, meta_info/, "
                         "Video/)")
    name = f"sub{args.subject}.npy" if args.session == 1 else f"sub{args.subject}_session{args.session}.npy"
    eeg_file = root / "EEG" / name
    if not eeg_file.is_file() and args.session == 1 and (root / "EEG" / f"sub{args.subject}_session1.npy").is_file():
        eeg_file = root / "EEG" / f"sub{args.subject}_session1.npy"
    if not eeg_file.is_file():
        raise SystemExit(f"{eeg_file} does not exist: --subject {args.subject} --session {args.session} needs "
                         "EEG/sub<N>.npy (or sub<N>_session<K>.npy), shape (7, 62, 104000)")
    labels = root / "meta_info" / "All_video_label.npy"
    if not labels.is_file():
        raise SystemExit(f"{labels} does not exist: SEED-DV's meta_info/All_video_label.npy (7 x 40) is needed")
    video_dir = args.video_dir or root / "Video"
    videos = {b: video_dir / args.video_pattern.format(block=b, ordinal=ordinal(b)) for b in range(1, 8)}
    missing = [str(p) for p in videos.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"block videos not found: {missing}; set --video-dir / --video-pattern "
                         f"(now {video_dir} / {args.video_pattern!r})")
    if not Path(args.encoder).is_dir() and "/" not in args.encoder:
        raise SystemExit(f"--encoder {args.encoder} is neither a folder nor a Hub id (owner/name)")
    return videos


def read_clip(video: Path, start_s: float) -> np.ndarray:
    """6 frames at 3 fps from ``start_s``, resized to 288 x 512: (6, 288, 512, 3) uint8."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(video), input_params=["-ss", f"{start_s:.3f}"],
                                        output_params=["-t", f"{N_FRAMES / FPS:.3f}", "-vf",
                                                       f"fps={FPS},scale={WIDTH}:{HEIGHT}"])
    try:
        next(reader)  # metadata
        frames = [np.frombuffer(f, np.uint8).reshape(HEIGHT, WIDTH, 3) for f, _ in zip(reader, range(N_FRAMES))]
    finally:
        reader.close()
    if len(frames) < N_FRAMES:
        raise SystemExit(f"{video}: only {len(frames)} frames at {start_s:.1f} s; is the video the block's full "
                         "recording?")
    return np.stack(frames)


def write_paired(args, videos: dict[int, Path], directory: Path) -> None:
    """Step 1: the subject's clips as a paired-clips directory (videos written through a memory map)."""
    from eegfm.datasets.paper import SEED_CHANNELS, SEED_DV_SFREQ, seed_dv_clips, seed_dv_clip_onset

    directory.mkdir(parents=True, exist_ok=True)
    clips = [c for c in seed_dv_clips(args.seed_dv, subjects=[args.subject]) if c.session == args.session]
    out = np.lib.format.open_memmap(directory / "videos.npy", mode="w+", dtype=np.uint8,
                                    shape=(len(clips), N_FRAMES, HEIGHT, WIDTH, 3))
    for i, clip in enumerate(clips):
        onset = seed_dv_clip_onset(clip.slot, clip.clip) / SEED_DV_SFREQ
        out[i] = read_clip(videos[clip.block], onset)
    out.flush()
    del out
    np.save(directory / "eeg.npy", np.stack([c.data for c in clips]).astype(np.float32))
    np.save(directory / "labels.npy", np.array([c.concept for c in clips], np.int64))
    np.save(directory / "split.npy", np.array([c.split for c in clips], np.str_))
    meta = {"ch_names": list(SEED_CHANNELS), "sfreq": SEED_DV_SFREQ,
            "clip_ids": [f"sub{c.subject}_s{c.session}_b{c.block}_slot{c.slot:02d}_clip{c.clip}" for c in clips],
            "class_names": [str(i) for i in range(40)]}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # nothing to run on: say what the recipe does and what it needs
        print(__doc__)
        print("Nothing run: pass --seed-dv, --subject, --encoder and --out (add --check to validate the paths).")
        return 0
    args = parse_args(argv)
    videos = block_videos(args)
    if args.check:
        print("paths OK:", {"eeg": str(args.seed_dv / "EEG"), "videos": {b: str(p) for b, p in videos.items()}})
        return 0
    import torch

    from eegfm_video import cli
    from eegfm_video.paired_clips import PairedClips
    from eegfm_video.targets import TargetConfig, precompute_targets

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    paired = args.out / "paired"
    if not (paired / "meta.json").is_file():
        print("[1/5] cutting EEG and videos into 2-s clips")
        write_paired(args, videos, paired)
    data = PairedClips.load(paired, mmap=True)
    print("[2/5] targets: BLIP captions, CLIP text embeddings, VAE latents (cached)")
    precompute_targets(data.clips(), paired / "targets",
                       TargetConfig(caption_model=args.caption_model, text_model=args.sd_model,
                                    vae_model=args.sd_model), device=device,
                       dtype=torch.float16 if device.startswith("cuda") else None)
    run_dir = args.out / "run"
    if not (run_dir / "pipeline" / "model_index.json").is_file():
        print("[3/5] co-training")
        train_cfg = cli.apply_overrides(cli.TrainVideoRun(), [
            f"--data={paired}", f"--encoder={args.encoder}", f"--sd_model={args.sd_model}",
            f"--batch_size={args.batch_size}", f"--train.steps={args.steps}", f"--train.run_dir={run_dir}",
            *args.train_overrides])
        cli.train(train_cfg)
    generated = args.out / "generated"
    if not (generated / "frames.npy").is_file():
        print("[4/5] generating block 7")
        cli.generate(cli.GenerateRun(pipeline=str(run_dir / "pipeline"), data=str(paired), split="test",
                                     out=str(generated), device=args.device))
    print("[5/5] evaluation (SPEC 7)")
    results = cli.evaluate(cli.EvaluateRun(generated=str(generated), data=str(paired),
                                           frame_classifier=args.frame_classifier,
                                           video_classifier=args.video_classifier, device=args.device))
    from eegfm_video.evaluation import format_results

    print(format_results(results))
    ours = {"video 2-way": results["video"]["2-way"]["mean"], "video 40-way": results["video"]["40-way"]["mean"],
            "frame 2-way": results["frame"]["2-way"]["mean"], "frame 40-way": results["frame"]["40-way"]["mean"],
            "SSIM": results["ssim"]["mean"]}
    print(f"{'':14}" + "".join(f"{k:>14}" for k in ours))
    for name, row in {**PAPER, f"this run (sub{args.subject})": ours}.items():
        print(f"{name:14}" + "".join(f"{row[k]:>14.3f}" for k in ours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
