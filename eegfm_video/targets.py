"""Alignment targets of each video clip, precomputed once and cached on disk (EEGMirror 3.2).

Three kinds, each from a pretrained model (real ids by default, any of them replaceable by a
local directory with the same layout):

- ``captions``: BLIP's caption of each clip's first frame
  (``Salesforce/blip-image-captioning-large``), one ``str`` per clip;
- ``text_embeddings``: the last hidden state of SD 1.x's CLIP text encoder on the caption,
  padded to 77 tokens (``stable-diffusion-v1-5/stable-diffusion-v1-5``, the maintained copy of the deleted ``runwayml`` repo; subfolders ``text_encoder`` and
  ``tokenizer``), ``(77, 768)`` per clip;
- ``latents``: SD's VAE latents of every frame, the posterior mean (or a seeded sample) times
  ``scaling_factor`` (same repo, subfolder ``vae``), ``(F, 4, H/8, W/8)`` per clip.

The cache is a directory with one ``.npy`` per kind (``captions.npy`` of unicode strings,
``text_embeddings.npy`` and ``latents.npy`` of float32; no pickles) and a ``manifest.json``
recording the clip ids and, per kind, the model ids and options that produced it.
:func:`precompute_targets` reuses a kind when the manifest says it was made for the same clip
ids with the same models and options, and recomputes it otherwise (text embeddings follow
their captions). Every file is written atomically (temporary file, then :func:`os.replace`);
a kind's manifest entry is dropped before its file is replaced, so an interrupted run never
leaves a file described by a stale entry. The key is clip ids + models + options, not the
pixels: pass ``overwrite=True`` after changing the frames of a clip id.

The models are frozen teachers: each runs in the dtype it was loaded in (float32 unless
``dtype=`` says otherwise) with autocast turned off, so that a caller's bf16 / fp16 autocast
never changes the targets. The models are only loaded when a kind must be computed. ``captioner=``, ``text_embedder=``
and ``vae_encoder=`` take ready callables instead (a stub in tests, a model already on a GPU);
the ids in :class:`TargetConfig` still name them in the manifest.

Example
-------
>>> targets = precompute_targets(clips, "cache/seed-dv-targets", device="cuda")  # doctest: +SKIP
>>> targets.captions[0], targets.text_embeddings.shape, targets.latents.shape     # doctest: +SKIP
('a man riding a horse ...', (1400, 77, 768), (1400, 6, 4, 36, 64))
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eegfm._fsutil import atomic_write, fsync_dir
from eegfm._validation import check_option, check_positive_int, did_you_mean


__all__ = [
    "DEFAULT_CAPTION_MODEL",
    "DEFAULT_SD_MODEL",
    "BlipCaptioner",
    "ClipTextEmbedder",
    "TargetConfig",
    "TargetCacheError",
    "VaeFrameEncoder",
    "VideoTargets",
    "load_blip_captioner",
    "load_cached_targets",
    "load_clip_text_embedder",
    "load_vae_encoder",
    "precompute_targets",
]

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-large"
DEFAULT_SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
KINDS = ("captions", "text_embeddings", "latents")
LATENT_MODES = ("mean", "sample")


class TargetCacheError(RuntimeError):
    """A target cache directory is missing, incomplete, or was made with other models/clips."""


def _model_key(model_id: str | os.PathLike) -> str:
    """How a model is named in the manifest: a local directory by its absolute path, else the id."""
    text = os.fspath(model_id)
    return str(Path(text).resolve()) if os.path.isdir(text) else text


def _outside_autocast(device: torch.device) -> torch.autocast:
    """Autocast off on ``device``: a frozen teacher computes in its own dtype whatever the caller entered."""
    return torch.autocast(torch.device(device).type, enabled=False)


# ---------------------------------------------------------------------------- frames
def _as_frames(frames, clip_id=None) -> np.ndarray:
    """Validate and return frames as a (F, H, W, 3) uint8 array."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    where = f" of clip {clip_id!r}" if clip_id is not None else ""
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
        raise ValueError(f"frames{where} must have shape (frames, height, width, 3) (RGB), got {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"frames{where} must be uint8 RGB in [0, 255], got dtype {array.dtype}")
    return array


# ---------------------------------------------------------------------------- captions
class BlipCaptioner:
    """Caption images with BLIP: a callable ``images -> list[str]``.

    Parameters
    ----------
    model : transformers.BlipForConditionalGeneration
    processor : transformers.BlipProcessor
    max_new_tokens : int
        Longest caption, in tokens.
    num_beams : int
        Beam search width (1 = greedy).
    batch_size : int
        Images per forward pass.
    """

    def __init__(self, model, processor, *, max_new_tokens: int = 30, num_beams: int = 1, batch_size: int = 16):
        check_positive_int("max_new_tokens", max_new_tokens)
        check_positive_int("num_beams", num_beams)
        check_positive_int("batch_size", batch_size)
        self.model, self.processor = model, processor
        self.max_new_tokens, self.num_beams, self.batch_size = max_new_tokens, num_beams, batch_size

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[str]:
        """Caption each image.

        Parameters
        ----------
        images : sequence of np.ndarray, each shape (H, W, 3) uint8

        Returns
        -------
        list of str
            One caption per image, special tokens removed.
        """
        param = next(self.model.parameters())
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [np.asarray(image) for image in images[start:start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            with _outside_autocast(param.device):
                ids = self.model.generate(pixel_values=pixels.to(param.device, param.dtype),
                                          max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)
            captions += [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return captions


def load_blip_captioner(
    model_id: str | os.PathLike = DEFAULT_CAPTION_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    max_new_tokens: int = 30,
    num_beams: int = 1,
    batch_size: int = 16,
) -> BlipCaptioner:
    """Load a BLIP captioning model and its processor (``from_pretrained``) as a :class:`BlipCaptioner`.

    Parameters
    ----------
    model_id : str | os.PathLike
        Hub id or local directory holding both the model and the processor files.
    device, dtype
        Where the model runs (dtype None keeps the saved one).
    max_new_tokens, num_beams, batch_size
        See :class:`BlipCaptioner`.
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(model_id)
    model = BlipForConditionalGeneration.from_pretrained(model_id).to(device=device, dtype=dtype).eval()
    return BlipCaptioner(model, processor, max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size)


# ---------------------------------------------------------------------------- text embeddings
class ClipTextEmbedder:
    """CLIP text embeddings as Stable Diffusion 1.x conditions on them: ``captions -> (N, L, W)``.

    Each caption is tokenised, padded (and truncated) to ``tokenizer.model_max_length`` tokens
    (77), and run through the text encoder without an attention mask, as SD 1.x's pipeline
    does; the result is the last hidden state (after the final LayerNorm).

    Parameters
    ----------
    text_encoder : transformers.CLIPTextModel
    tokenizer : transformers.CLIPTokenizer
    batch_size : int
        Captions per forward pass.
    """

    def __init__(self, text_encoder, tokenizer, *, batch_size: int = 64):
        check_positive_int("batch_size", batch_size)
        self.text_encoder, self.tokenizer, self.batch_size = text_encoder, tokenizer, batch_size
        self.max_length = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))

    @torch.no_grad()
    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        """Embed captions.

        Parameters
        ----------
        captions : sequence of str, length N

        Returns
        -------
        torch.Tensor, shape (N, L, W), float32 on the CPU
            ``(N, 77, 768)`` for SD 1.x.
        """
        device = next(self.text_encoder.parameters()).device
        out = []
        for start in range(0, len(captions), self.batch_size):
            ids = self.tokenizer(list(captions[start:start + self.batch_size]), padding="max_length",
                                 max_length=self.max_length, truncation=True, return_tensors="pt").input_ids
            with _outside_autocast(device):
                out.append(self.text_encoder(ids.to(device))[0].float().cpu())  # last_hidden_state
        return torch.cat(out) if out else torch.empty(0, self.max_length, self.text_encoder.config.hidden_size)


def load_clip_text_embedder(
    model_id: str | os.PathLike = DEFAULT_SD_MODEL,
    *,
    subfolder: str = "text_encoder",
    tokenizer_subfolder: str = "tokenizer",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int = 64,
) -> ClipTextEmbedder:
    """Load a Stable Diffusion repo's CLIP text encoder and tokenizer as a :class:`ClipTextEmbedder`.

    Parameters
    ----------
    model_id : str | os.PathLike
        Hub id or local directory of a diffusers SD 1.x layout.
    subfolder, tokenizer_subfolder : str
        Where the text encoder and the tokenizer are in it.
    device, dtype, batch_size
        Where the encoder runs; captions per forward pass.
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model_id, subfolder=tokenizer_subfolder)
    encoder = CLIPTextModel.from_pretrained(model_id, subfolder=subfolder).to(device=device, dtype=dtype).eval()
    return ClipTextEmbedder(encoder, tokenizer, batch_size=batch_size)


# ---------------------------------------------------------------------------- latents
class VaeFrameEncoder:
    """Encode RGB frames with a diffusers ``AutoencoderKL``: ``(F, H, W, 3) uint8 -> (F, C, H/s, W/s)``.

    Pixels map to [-1, 1]; the latent is the posterior mean (``latent_mode="mean"``) or a
    sample from it (``"sample"``, reproducible from ``seed``), times the VAE's
    ``scaling_factor`` (0.18215 for SD 1.x): the scale the UNet and
    :class:`~eegfm_video.models.Seq2SeqLatentDecoder` work in. ``s`` is the VAE's downsampling
    factor, ``2 ** (len(block_out_channels) - 1)`` (8 for SD).

    Parameters
    ----------
    vae : diffusers.AutoencoderKL
    latent_mode : {"mean", "sample"}
    seed : int
        Seed of the sampling generator (``latent_mode="sample"``), set once per encoder.
    batch_size : int
        Frames per forward pass.
    """

    def __init__(self, vae, *, latent_mode: str = "mean", seed: int = 0, batch_size: int = 8):
        check_option("latent_mode", latent_mode, LATENT_MODES)
        check_positive_int("batch_size", batch_size)
        self.vae, self.latent_mode, self.batch_size = vae, latent_mode, batch_size
        self.scaling_factor = float(vae.config.scaling_factor)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        param = next(vae.parameters())
        self.generator = torch.Generator(device=param.device).manual_seed(seed)

    @torch.no_grad()
    def __call__(self, frames) -> torch.Tensor:
        """Encode one clip's frames.

        Parameters
        ----------
        frames : np.ndarray or torch.Tensor, shape (F, H, W, 3) uint8
            RGB frames; H and W divisible by the VAE's downsampling factor.

        Returns
        -------
        torch.Tensor, shape (F, C, H/s, W/s), float32 on the CPU
            Scaled latents, ``(F, 4, H/8, W/8)`` for SD.
        """
        frames = _as_frames(frames)
        height, width = frames.shape[1:3]
        if height % self.downsample or width % self.downsample:
            raise ValueError(f"frames height and width must be divisible by the VAE's downsampling factor "
                             f"{self.downsample}, got {height} x {width}; resize the video (SEED-DV: 288 x 512)")
        param = next(self.vae.parameters())
        out = []
        for start in range(0, len(frames), self.batch_size):
            pixels = torch.from_numpy(frames[start:start + self.batch_size]).permute(0, 3, 1, 2)  # (b, 3, H, W)
            pixels = pixels.to(param.device, torch.float32) / 127.5 - 1.0
            with _outside_autocast(param.device):
                posterior = self.vae.encode(pixels.to(param.dtype)).latent_dist
            latent = posterior.mean if self.latent_mode == "mean" else posterior.sample(generator=self.generator)
            out.append((latent * self.scaling_factor).float().cpu())
        return torch.cat(out)


def load_vae_encoder(
    model_id: str | os.PathLike = DEFAULT_SD_MODEL,
    *,
    subfolder: str | None = "vae",
    latent_mode: str = "mean",
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
) -> VaeFrameEncoder:
    """Load a diffusers ``AutoencoderKL`` (``from_pretrained``) as a :class:`VaeFrameEncoder`.

    Parameters
    ----------
    model_id : str | os.PathLike
        Hub id or local directory of a diffusers SD layout (or of a bare VAE with ``subfolder=None``).
    subfolder : str | None
        Where the VAE is in it.
    latent_mode, seed, batch_size
        See :class:`VaeFrameEncoder`.
    device, dtype
        Where the VAE runs.
    """
    check_option("latent_mode", latent_mode, LATENT_MODES)
    from diffusers import AutoencoderKL

    # dtype at load time: diffusers keeps the modules it must keep in float32 there
    vae = AutoencoderKL.from_pretrained(model_id, subfolder=subfolder, torch_dtype=dtype).to(device).eval()
    return VaeFrameEncoder(vae, latent_mode=latent_mode, seed=seed, batch_size=batch_size)


# ---------------------------------------------------------------------------- config + cache
@dataclass(frozen=True)
class TargetConfig:
    """Which models and options make the targets; what the cache manifest records per kind.

    Every ``*_model`` is a Hugging Face Hub id or a local directory with the same layout.
    """

    caption_model: str = DEFAULT_CAPTION_MODEL  # BLIP captioner of each clip's first frame
    caption_max_new_tokens: int = 30  # longest caption, in tokens
    caption_num_beams: int = 1  # beam search width (1 = greedy)
    text_model: str = DEFAULT_SD_MODEL  # SD 1.x repo of the CLIP text encoder + tokenizer
    text_encoder_subfolder: str = "text_encoder"
    tokenizer_subfolder: str = "tokenizer"
    vae_model: str = DEFAULT_SD_MODEL  # SD repo of the VAE
    vae_subfolder: str | None = "vae"
    latent_mode: str = "mean"  # posterior "mean" or a seeded "sample"
    seed: int = 0  # seed of latent_mode="sample"

    def __post_init__(self):
        check_option("latent_mode", self.latent_mode, LATENT_MODES)
        check_positive_int("caption_max_new_tokens", self.caption_max_new_tokens)
        check_positive_int("caption_num_beams", self.caption_num_beams)

    def to_dict(self) -> dict:
        """JSON-safe dict of every field."""
        return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping) -> TargetConfig:
        """Build from a dict; an unknown key is an error that names it."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in fields]
        if unknown:
            raise ValueError(f"unknown TargetConfig keys {unknown}; known: {fields}.{did_you_mean(unknown[0], fields)}")
        return cls(**values)

    def key(self, kind: str) -> dict:
        """What identifies ``kind`` ("captions" | "text_embeddings" | "latents") in the manifest."""
        check_option("kind", kind, KINDS)
        captions = {"caption_model": _model_key(self.caption_model),
                    "caption_max_new_tokens": self.caption_max_new_tokens,
                    "caption_num_beams": self.caption_num_beams}
        if kind == "captions":
            return captions
        if kind == "text_embeddings":
            return {**captions, "text_model": _model_key(self.text_model),
                    "text_encoder_subfolder": self.text_encoder_subfolder,
                    "tokenizer_subfolder": self.tokenizer_subfolder}
        key = {"vae_model": _model_key(self.vae_model), "vae_subfolder": self.vae_subfolder,
               "latent_mode": self.latent_mode}
        return {**key, "seed": self.seed} if self.latent_mode == "sample" else key


@dataclass
class VideoTargets:
    """Cached alignment targets of ``N`` clips, in ``clip_ids`` order.

    Attributes
    ----------
    clip_ids : list of str, length N
    captions : list of str, length N
        BLIP caption of each clip's first frame.
    text_embeddings : np.ndarray, shape (N, L, W) float32
        CLIP text embeddings of the captions, ``(N, 77, 768)`` for SD 1.x (memory-mapped).
    latents : np.ndarray, shape (N, F, C, h, w) float32
        Scaled VAE latents of every frame, ``(N, 6, 4, 36, 64)`` for SEED-DV (memory-mapped).
    scaling_factor : float or None
        The VAE scaling factor already applied to ``latents`` (None when a ``vae_encoder``
        callable without a ``scaling_factor`` attribute made them).
    directory : Path
        The cache directory.
    """

    clip_ids: list[str]
    captions: list[str]
    text_embeddings: np.ndarray
    latents: np.ndarray
    scaling_factor: float | None
    directory: Path

    def __len__(self) -> int:
        return len(self.clip_ids)

    def index(self, clip_id: str) -> int:
        """Row of ``clip_id`` in the arrays."""
        try:
            return self.clip_ids.index(clip_id)
        except ValueError:
            raise KeyError(f"clip {clip_id!r} is not in the targets of {self.directory}") from None


def _write_manifest(directory: Path, manifest: dict) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    atomic_write(directory / MANIFEST_NAME, lambda file: file.write(data))


def _read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


def _entry_valid(directory: Path, manifest: dict, kind: str, key: dict) -> bool:
    entry = manifest.get("kinds", {}).get(kind)
    return isinstance(entry, dict) and entry.get("key") == key and (directory / f"{kind}.npy").is_file()


def _load_kind(directory: Path, kind: str, mmap: bool):
    array = np.load(directory / f"{kind}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    return [str(c) for c in array] if kind == "captions" else array


def precompute_targets(
    clips: Mapping[str, np.ndarray | torch.Tensor],
    cache_dir: str | os.PathLike,
    config: TargetConfig | None = None,
    *,
    captioner: Callable[[Sequence[np.ndarray]], list[str]] | None = None,
    text_embedder: Callable[[Sequence[str]], torch.Tensor] | None = None,
    vae_encoder: Callable[[np.ndarray], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    mmap: bool = True,
    progress: bool = True,
) -> VideoTargets:
    """Compute (or reuse from ``cache_dir``) the captions, text embeddings and latents of every clip.

    Parameters
    ----------
    clips : Mapping[str, array of shape (F, H, W, 3) uint8]
        Frames of each clip by clip id (e.g. SEED-DV at 3 fps, 288 x 512: ``(6, 288, 512, 3)``),
        every clip the same shape. Values are read only for kinds that must be computed, one
        clip (latents) or one batch of first frames (captions) at a time, so a lazy mapping
        that decodes videos on access works.
    cache_dir : str | os.PathLike
        Directory of the cache (created if missing).
    config : TargetConfig, optional
        Models and options (default: BLIP large, SD 1.5's text encoder and VAE, posterior mean).
    captioner : callable, optional
        ``images (list of (H, W, 3) uint8) -> list[str]``, used instead of loading
        ``config.caption_model`` (which still names it in the manifest).
    text_embedder : callable, optional
        ``captions -> (N, L, W)`` tensor, instead of loading ``config.text_model``.
    vae_encoder : callable, optional
        ``frames (F, H, W, 3) uint8 -> (F, C, h, w)`` scaled latents, instead of loading
        ``config.vae_model``; if it has a ``scaling_factor`` attribute, it is recorded.
    device, dtype
        Where loaded models run (dtype None keeps the saved one).
    batch_size : int
        Clips per captioning / text-encoding call.
    overwrite : bool
        Recompute every kind even when the cache matches.
    mmap : bool
        Memory-map the arrays of the result (read-only) instead of reading them into memory.
    progress : bool
        Show progress bars.

    Returns
    -------
    VideoTargets
        The targets, read back from the cache files.
    """
    from eegfm.progress import progress_bar

    config = TargetConfig() if config is None else config
    if not isinstance(config, TargetConfig):
        raise TypeError(f"config must be a TargetConfig, got {type(config).__name__}")
    check_positive_int("batch_size", batch_size)
    clip_ids = [str(c) for c in clips]
    if not clip_ids:
        raise ValueError("clips is empty: pass a mapping clip id -> frames (F, H, W, 3) uint8")
    if len(set(clip_ids)) != len(clip_ids):
        raise ValueError("clip ids must be unique once converted to str, got duplicates")
    keys = list(clips)
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)

    manifest = _read_manifest(directory)
    if overwrite or manifest is None or manifest.get("clip_ids") != clip_ids:
        manifest = {"format_version": FORMAT_VERSION, "clip_ids": clip_ids, "kinds": {}}
    kinds = manifest.setdefault("kinds", {})

    def begin(kind):  # drop the entry on disk before its file is replaced
        kinds.pop(kind, None)
        _write_manifest(directory, manifest)

    def finish(kind, **info):
        kinds[kind] = {"key": config.key(kind), "file": f"{kind}.npy", **info}
        _write_manifest(directory, manifest)

    batches = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]

    # -- captions of each clip's first frame
    if not _entry_valid(directory, manifest, "captions", config.key("captions")):
        begin("captions")
        if captioner is None:
            captioner = load_blip_captioner(config.caption_model, device=device, dtype=dtype,
                                            max_new_tokens=config.caption_max_new_tokens,
                                            num_beams=config.caption_num_beams, batch_size=batch_size)
        captions: list[str] = []
        for batch in progress_bar(batches, desc="captions", enabled=progress):
            first = [_as_frames(clips[k], k)[0] for k in batch]
            got = list(captioner(first))
            if len(got) != len(first):
                raise ValueError(f"captioner returned {len(got)} captions for {len(first)} images")
            captions += [str(c) for c in got]
        array = np.array(captions, dtype=np.str_)
        atomic_write(directory / "captions.npy", lambda file: np.save(file, array, allow_pickle=False))
        finish("captions", shape=[len(captions)])
    captions = _load_kind(directory, "captions", mmap=False)

    # -- CLIP text embeddings of the captions
    if not _entry_valid(directory, manifest, "text_embeddings", config.key("text_embeddings")):
        begin("text_embeddings")
        if text_embedder is None:
            text_embedder = load_clip_text_embedder(config.text_model, subfolder=config.text_encoder_subfolder,
                                                    tokenizer_subfolder=config.tokenizer_subfolder,
                                                    device=device, dtype=dtype, batch_size=batch_size)
        chunks = [torch.as_tensor(text_embedder(captions[i:i + batch_size])).float().cpu()
                  for i in progress_bar(range(0, len(captions), batch_size), desc="text embeddings", enabled=progress)]
        embeddings = torch.cat(chunks).numpy()
        if embeddings.ndim != 3 or len(embeddings) != len(captions):
            raise ValueError(f"text_embedder must return (captions, tokens, width), got {embeddings.shape} "
                             f"for {len(captions)} captions")
        atomic_write(directory / "text_embeddings.npy", lambda file: np.save(file, embeddings))
        finish("text_embeddings", shape=list(embeddings.shape), dtype="float32")

    # -- VAE latents of every frame, one clip at a time into a memory-mapped file
    if not _entry_valid(directory, manifest, "latents", config.key("latents")):
        begin("latents")
        if vae_encoder is None:
            vae_encoder = load_vae_encoder(config.vae_model, subfolder=config.vae_subfolder,
                                           latent_mode=config.latent_mode, seed=config.seed,
                                           device=device, dtype=dtype)
        target = directory / "latents.npy"
        tmp = target.with_name(f".latents.npy.{uuid.uuid4().hex}.tmp")
        try:
            out = None
            frame_shape = None
            for row, key in enumerate(progress_bar(keys, desc="latents", enabled=progress)):
                frames = _as_frames(clips[key], key)
                if frame_shape is None:
                    frame_shape = frames.shape
                elif frames.shape != frame_shape:
                    raise ValueError(f"every clip must have the frames shape of the first clip {frame_shape}; "
                                     f"clip {key!r} has {frames.shape}")
                latent = torch.as_tensor(vae_encoder(frames)).float().cpu().numpy()  # (F, C, h, w)
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                    shape=(len(keys), *latent.shape))
                out[row] = latent
            out.flush()
            latent_shape = list(out.shape)
            del out
            with open(tmp, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(tmp, target)
            fsync_dir(directory)
        finally:
            if tmp.exists():
                tmp.unlink()
        scaling = getattr(vae_encoder, "scaling_factor", None)
        finish("latents", shape=latent_shape, dtype="float32", frame_shape=list(frame_shape),
               scaling_factor=None if scaling is None else float(scaling))
    return load_cached_targets(directory, config, mmap=mmap)


def load_cached_targets(
    cache_dir: str | os.PathLike, config: TargetConfig | None = None, *, mmap: bool = True
) -> VideoTargets:
    """Read targets written by :func:`precompute_targets`, without computing anything.

    Parameters
    ----------
    cache_dir : str | os.PathLike
        The cache directory.
    config : TargetConfig, optional
        If given, every kind must have been made with these models and options.
    mmap : bool
        Memory-map the arrays (read-only).

    Returns
    -------
    VideoTargets

    Raises
    ------
    TargetCacheError
        When the directory has no valid manifest, a kind is missing, or it was made with
        other models/options than ``config``.
    """
    directory = Path(cache_dir)
    manifest = _read_manifest(directory)
    if manifest is None:
        raise TargetCacheError(f"{directory} has no valid {MANIFEST_NAME}: it is not a target cache "
                               "(run eegfm_video.targets.precompute_targets first)")
    kinds = manifest.get("kinds", {})
    for kind in KINDS:
        if kind not in kinds or not (directory / f"{kind}.npy").is_file():
            raise TargetCacheError(f"the target cache {directory} has no {kind!r} (an interrupted run?); "
                                   "run precompute_targets to complete it")
        if config is not None and kinds[kind].get("key") != config.key(kind):
            raise TargetCacheError(f"{kind!r} in {directory} was made with {kinds[kind].get('key')}, not "
                                   f"{config.key(kind)}; run precompute_targets to recompute it")
    scaling = kinds["latents"].get("scaling_factor")
    return VideoTargets(
        clip_ids=list(manifest["clip_ids"]),
        captions=_load_kind(directory, "captions", mmap=False),
        text_embeddings=_load_kind(directory, "text_embeddings", mmap),
        latents=_load_kind(directory, "latents", mmap),
        scaling_factor=None if scaling is None else float(scaling),
        directory=directory,
    )
