"""``FrameAttention``: a diffusers ``Attention`` whose frame-aware processor cannot be dropped silently.

The inflated UNet's attention across frames lives in attention processors
(:class:`~eegfm_video.models.attention_processors.FrameProcessor`), so it is listed in
``unet.attn_processors`` like any other. diffusers replaces processors wholesale:
``unet.set_attn_processor(AttnProcessor2_0())``, ``set_attention_slice``,
``enable_xformers_memory_efficient_attention`` and ``fuse_qkv_projections`` all end in
``Attention.set_processor`` on every layer, which would turn sparse-causal and temporal
attention back into per-frame attention without a word. A :class:`FrameAttention` layer refuses
that: once it holds a frame processor, only a processor of the same class may replace it, and
anything else raises a one-line ``TypeError`` naming both. To change the other layers, pass
``set_attn_processor`` a dict (from ``attn_processors``) that keeps the frame processors.
"""

from __future__ import annotations

from diffusers.models.attention_processor import Attention

from .attention_processors import FrameProcessor

__all__ = ["FrameAttention"]


class FrameAttention(Attention):
    """A diffusers ``Attention`` that keeps its :class:`FrameProcessor` (same constructor, same weights).

    The 2-D model's ``attn1`` layers become one in place (:meth:`adopt`), which changes their
    class only: parameter names and values stay those of the 2-D model.
    """

    @classmethod
    def adopt(cls, attn: Attention) -> FrameAttention:
        """Make the diffusers ``Attention`` ``attn`` a :class:`FrameAttention` in place and return it."""
        if not isinstance(attn, Attention):
            raise TypeError(f"attn must be a diffusers Attention, got {type(attn).__name__}")
        attn.__class__ = cls  # adds set_processor's check only: no new state
        return attn

    def set_processor(self, processor) -> None:
        """Set the processor, unless it would replace a frame processor by one of another class.

        Raises
        ------
        TypeError
            When the current processor is a :class:`FrameProcessor` and ``processor`` is not an
            instance of its class.
        """
        current = getattr(self, "processor", None)
        if isinstance(current, FrameProcessor) and not isinstance(processor, type(current)):
            raise TypeError(
                f"{type(processor).__name__} cannot replace {type(current).__name__}: that would drop the attention "
                f"across frames; keep the {type(current).__name__} entries (set_attn_processor takes a dict from "
                f"attn_processors), or build the InflatedUNet with {current.inflation_flag}"
            )
        super().set_processor(processor)
