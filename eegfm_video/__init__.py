"""eegfm_video: reconstruct the video a person watched from their EEG (EEGMirror 3.2-3.3).

Install with ``pip install "eegfm[video]"``. The downstream head on a pre-trained
:class:`eegfm.MAPEEncoder`:

- alignment (:class:`EEGAlignment`): semantic decoder to CLIP text embeddings (SoftCLIP + MSE)
  and an autoregressive Seq2Seq decoder to VAE latents;
- :class:`InflatedUNet`: a Stable Diffusion 1.x UNet with sparse-causal and temporal attention;
- co-training (:func:`cotrain`), generation (:class:`EEG2VideoPipeline`: DDIM, classifier-free
  guidance, dynamic-aware noise from the Seq2Seq latents), frames / GIF / MP4 (:func:`save_clips`);
- evaluation exactly as MinD-Video / EEG2Video (:func:`evaluate_clips`: SSIM, N-way top-K);
- the ``eegfm-video train | generate | evaluate`` command.

Names are imported lazily, so ``import eegfm_video`` does not import diffusers or transformers.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eegfm")
except PackageNotFoundError:  # source tree without installation
    __version__ = "0.0.0+unknown"

_LAZY = {
    # models
    "InflatedUNet": "models.inflated_unet",
    "SparseCausalAttnProcessor": "models.attention_processors",
    "TemporalAttention": "models.temporal_attention",
    "SemanticDecoder": "models.semantic_decoder",
    "Seq2SeqLatentDecoder": "models.seq2seq",
    "EEGAlignment": "alignment",
    # losses, noise, training
    "softclip_loss": "losses",
    "alignment_text_loss": "losses",
    "alignment_loss": "losses",
    "dynamic_aware_noise": "noise",
    "noise_latents": "noise",
    "VideoCoTrainer": "cotrain",
    "cotrain": "cotrain",
    "paired_batches": "cotrain",
    # generation and output
    "EEG2VideoPipeline": "pipeline",
    "EEG2VideoPipelineOutput": "pipeline",
    "save_clips": "io",
    "save_frames": "io",
    "save_gif": "io",
    "save_mp4": "io",
    # targets and data
    "TargetConfig": "targets",
    "precompute_targets": "targets",
    "load_cached_targets": "targets",
    "PairedClips": "paired_clips",
    "make_synthetic_clips": "synthetic",
    # evaluation
    "evaluate_clips": "evaluation",
    "format_results": "evaluation",
    "ssim_score": "evaluation",
    "n_way_top_k": "evaluation",
    "chance_level": "evaluation",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
