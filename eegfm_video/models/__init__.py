"""eegfm_video model classes, one file each.

Names are imported lazily (on first attribute access), so ``import eegfm_video.models`` does not
import diffusers. Add a model by adding one line to ``_LAZY``: ``"ClassName": "module"``.
"""

from importlib import import_module

_LAZY = {
    "SemanticDecoder": "semantic_decoder",
    "Seq2SeqLatentDecoder": "seq2seq",
    "InflatedTransformerBlock": "inflated_unet",
    "InflatedUNet": "inflated_unet",
    "InflatedUNetOutput": "inflated_unet",
    "FrameAttention": "frame_attention",
    "FrameProcessor": "attention_processors",
    "SparseCausalAttnProcessor": "attention_processors",
    "TemporalAttnProcessor": "attention_processors",
    "TemporalAttention": "temporal_attention",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
