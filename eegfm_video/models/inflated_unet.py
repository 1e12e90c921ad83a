"""``InflatedUNet``: a Stable Diffusion 2-D UNet inflated to video (Tune-A-Video; EEGMirror Sec. 3.3).

A clip's latents ``(b, c, f, h, w)`` run through the unchanged 2-D layers of a diffusers
``UNet2DConditionModel`` as a batch of ``b * f`` images (frames of a clip adjacent). Two things
make it a video model, both diffusers attention layers with their own processors, so they are
listed in ``model.unet.attn_processors`` and reached by LoRA / PEFT:

1. the spatial self-attention ``attn1`` of each ``BasicTransformerBlock`` gets a
   :class:`~eegfm_video.models.attention_processors.SparseCausalAttnProcessor` (queries of
   frame ``i`` attend to frames ``0`` and ``i - 1``); cross-attention ``attn2`` keeps its
   processor;
2. each block gains a child ``temporal_attn``, a
   :class:`~eegfm_video.models.temporal_attention.TemporalAttention` (an ``Attention`` with a
   :class:`~eegfm_video.models.attention_processors.TemporalAttnProcessor`) applied to the
   block's output, ``block(x) = temporal_attn(basic_block(x))`` (after the feed-forward, as
   Tune-A-Video).

Both are installed on the blocks of the 2-D model in place, by giving them a subclass: the block
becomes an :class:`InflatedTransformerBlock` (``BasicTransformerBlock.forward``, then
``temporal_attn``), its ``attn1`` a
:class:`~eegfm_video.models.frame_attention.FrameAttention` (which refuses a processor that would
drop the attention across frames, so ``unet.set_attn_processor(...)`` cannot undo the inflation
silently). The subclasses add behaviour only, so the 2-D parameters keep their names
(``...transformer_blocks.0.attn1.to_q.weight``): the inflated ``unet`` state dict is exactly the
2-D one plus the ``temporal_attn`` entries, and a Stable Diffusion checkpoint loads into it by
name. Gradient checkpointing recomputes a block through its ``forward``, temporal attention
included, and ``copy.deepcopy`` keeps classes and processors (both tested).

Equality with the 2-D model at initialisation ("the inflated UNet reproduces the 2-D UNet frame
by frame exactly at init"), in the three senses that can hold (tested):

(a) the temporal attentions add exactly zero (output projection weight and bias are zero): the
    inflated model equals the same model without them, bit for bit, for any ``f``;
(b) for a clip whose ``f`` frames are the same image, sparse-causal attention over frames 0 and
    ``i - 1`` sees only copies of the frame's own keys and values, so every frame's output equals
    the 2-D UNet's output on that image (to float rounding);
(c) with ``f = 1`` the inflated model *is* the 2-D model, bit for bit.

For ``f > 1`` and different frames the outputs differ from the 2-D model by design: frame ``i``
then attends to the tokens of frames ``0`` and ``i - 1``.

The frame count is set on the frame processors by :meth:`InflatedUNet.forward` (an attribute
``num_frames``; calling ``model.unet`` directly uses the last value set).

Weights saved before the temporal attention was a diffusers ``Attention`` (output projection
``temporal_attn.to_out.weight`` rather than ``temporal_attn.to_out.0.weight``) load with
``from_pretrained`` and ``load_state_dict`` alike, renamed on the way in
(:meth:`TemporalAttention.upgrade_state_dict <eegfm_video.models.temporal_attention.TemporalAttention.upgrade_state_dict>`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.utils import BaseOutput

from eegfm.hub import StrictDiffusersLoadingMixin

from .._defaults import SD15_MODEL_ID
from .attention_processors import FrameProcessor, SparseCausalAttnProcessor
from .frame_attention import FrameAttention
from .temporal_attention import TemporalAttention

__all__ = ["SD15_MODEL_ID", "TRAINABLE_MODES", "InflatedTransformerBlock", "InflatedUNet", "InflatedUNetOutput"]

#: Trainable subsets for :meth:`InflatedUNet.set_trainable`.
TRAINABLE_MODES = ("default", "temporal", "all")


@dataclass
class InflatedUNetOutput(BaseOutput):
    """Output of :class:`InflatedUNet`.

    Attributes
    ----------
    sample : torch.Tensor
        ``(b, c_out, f, h, w)`` prediction (noise or v, as the 2-D UNet was trained).
    """

    sample: torch.Tensor = None


class InflatedTransformerBlock(BasicTransformerBlock):
    """A diffusers ``BasicTransformerBlock`` followed by its ``temporal_attn`` (a :class:`TemporalAttention`).

    Built from a 2-D block in place by :meth:`adopt`; same forward arguments as the 2-D block.
    """

    temporal_attn: TemporalAttention

    @classmethod
    def adopt(cls, block: BasicTransformerBlock, temporal_attn: TemporalAttention) -> InflatedTransformerBlock:
        """Make the 2-D ``block`` an inflated one in place (its class and a new child): return it."""
        if not isinstance(block, BasicTransformerBlock):
            raise TypeError(f"block must be a diffusers BasicTransformerBlock, got {type(block).__name__}")
        block.temporal_attn = temporal_attn
        block.__class__ = cls  # adds forward's last step only: the 2-D parameters keep their names
        return block

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``temporal_attn(BasicTransformerBlock.forward(hidden_states, ...))``: ``(b * f, n, c)`` -> same."""
        return self.temporal_attn(super().forward(hidden_states, *args, **kwargs))


def _is_flag(value) -> bool:
    return isinstance(value, bool)


class InflatedUNet(StrictDiffusersLoadingMixin, ModelMixin, ConfigMixin):  # strict: a missing weight is an error
    r"""A diffusers ``UNet2DConditionModel`` run on video latents, with sparse-causal and temporal attention.

    Parameters
    ----------
    unet_config : dict
        Constructor arguments of the 2-D ``UNet2DConditionModel`` (``unet.config`` without the
        keys starting with ``_``), e.g. Stable Diffusion 1.5's. Stored JSON-normalised (tuples
        become lists).
    sparse_causal : bool
        Install :class:`SparseCausalAttnProcessor` on every transformer block's ``attn1``
        (``False``: each frame attends to itself only, as in the 2-D model).
    temporal_attention : bool
        Add a :class:`TemporalAttention` to every transformer block.
    temporal_num_attention_heads : int | None
        Heads of the temporal attentions; ``None``: the same as the block's spatial attention
        (8 in Stable Diffusion 1.x).

    Notes
    -----
    Build it from a 2-D model with :meth:`from_unet2d` or :meth:`from_pretrained_2d`; save and
    load the inflated model with ``save_pretrained`` / ``from_pretrained`` (the config records
    the 2-D config and the inflation). ``model.unet`` is the inflated 2-D UNet.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        unet_config: dict,
        sparse_causal: bool = True,
        temporal_attention: bool = True,
        temporal_num_attention_heads: int | None = None,
    ):
        super().__init__()
        if not isinstance(unet_config, dict):
            raise TypeError(
                f"unet_config must be a dict of UNet2DConditionModel arguments, got {type(unet_config).__name__}"
            )
        for name, value in (("sparse_causal", sparse_causal), ("temporal_attention", temporal_attention)):
            if not _is_flag(value):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        heads = temporal_num_attention_heads
        if heads is not None and (not isinstance(heads, int) or _is_flag(heads) or heads < 1):
            raise ValueError(f"temporal_num_attention_heads must be None or an integer >= 1, got {heads!r}")
        unet_config = json.loads(json.dumps({k: v for k, v in unet_config.items() if not k.startswith("_")}))
        self.register_to_config(unet_config=unet_config)

        self.unet = UNet2DConditionModel(**unet_config)
        blocks = [m for m in self.unet.modules() if isinstance(m, BasicTransformerBlock)]
        if not blocks:
            raise ValueError(
                "unet_config builds a UNet without transformer blocks (no CrossAttn* down/up blocks): nothing "
                f"to inflate; got down_block_types={unet_config.get('down_block_types')!r}"
            )
        for block in blocks:
            if sparse_causal:
                if block.only_cross_attention:
                    raise ValueError(
                        "sparse_causal=True needs self-attention in attn1, but unet_config has only_cross_attention="
                        f"{unet_config.get('only_cross_attention')!r}; pass sparse_causal=False"
                    )
                FrameAttention.adopt(block.attn1).set_processor(SparseCausalAttnProcessor())
            if temporal_attention:
                dim = block.attn1.to_q.in_features
                if heads is not None and dim % heads:
                    raise ValueError(
                        f"temporal_num_attention_heads must divide every transformer width, got {heads} for width {dim}"
                    )
                InflatedTransformerBlock.adopt(block, TemporalAttention(dim, heads or block.attn1.heads))
        # plain tuples: not registered twice as submodules
        self._inflated_blocks = tuple(blocks)
        self._frame_layers = tuple(m for m in self.unet.modules() if isinstance(m, FrameAttention))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_unet2d(
        cls,
        unet: UNet2DConditionModel,
        *,
        sparse_causal: bool = True,
        temporal_attention: bool = True,
        temporal_num_attention_heads: int | None = None,
    ) -> InflatedUNet:
        """Inflate a 2-D UNet: same config and weights, new temporal attentions (zero output).

        Parameters
        ----------
        unet : diffusers.UNet2DConditionModel
            The image model; it is not modified.
        sparse_causal, temporal_attention, temporal_num_attention_heads
            See :class:`InflatedUNet`.

        Returns
        -------
        InflatedUNet
            On ``unet``'s device, in ``unet``'s dtype.
        """
        if not isinstance(unet, UNet2DConditionModel):
            raise TypeError(f"unet must be a diffusers UNet2DConditionModel, got {type(unet).__name__}")
        config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        with torch.device(unet.device):  # build where the weights live (fast on GPU)
            model = cls(
                unet_config=config,
                sparse_causal=sparse_causal,
                temporal_attention=temporal_attention,
                temporal_num_attention_heads=temporal_num_attention_heads,
            )
        missing, unexpected = model.unet.load_state_dict(unet.state_dict(), strict=False)
        new = [k for k in missing if ".temporal_attn." not in k]
        if new or unexpected:  # cannot happen with the same config; a guard against silent partial loads
            raise RuntimeError(
                f"2-D weights did not map onto the inflated UNet: missing {new}, unexpected {unexpected}"
            )
        if unet.dtype != model.dtype:  # nn.Module.to: ModelMixin.to logs a float32-modules note on every cast
            torch.nn.Module.to(model, dtype=unet.dtype)
        return model

    @classmethod
    def from_pretrained_2d(
        cls,
        pretrained_model_name_or_path: str = SD15_MODEL_ID,
        subfolder: str | None = "unet",
        *,
        sparse_causal: bool = True,
        temporal_attention: bool = True,
        temporal_num_attention_heads: int | None = None,
        **kwargs,
    ) -> InflatedUNet:
        """Load a pre-trained 2-D UNet (Hub id or local folder) and inflate it.

        Parameters
        ----------
        pretrained_model_name_or_path : str
            Hub id of a Stable Diffusion 1.x pipeline (default :data:`SD15_MODEL_ID`) or a local path.
        subfolder : str | None
            Folder of the UNet inside it (``"unet"`` in a pipeline; ``None`` for a UNet folder).
        sparse_causal, temporal_attention, temporal_num_attention_heads
            See :class:`InflatedUNet`.
        **kwargs
            Passed to ``UNet2DConditionModel.from_pretrained`` (``torch_dtype``, ``revision``,
            ``variant``, ``local_files_only``, ...).

        Returns
        -------
        InflatedUNet
        """
        unet = UNet2DConditionModel.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        return cls.from_unet2d(
            unet,
            sparse_causal=sparse_causal,
            temporal_attention=temporal_attention,
            temporal_num_attention_heads=temporal_num_attention_heads,
        )

    def _fix_state_dict_keys_on_load(self, state_dict: dict) -> dict:
        """diffusers' hook on ``from_pretrained``: also rename the keys of hand-written temporal attentions."""
        super()._fix_state_dict_keys_on_load(state_dict)
        for name, module in self.named_modules():
            if isinstance(module, TemporalAttention):
                module.upgrade_state_dict(state_dict, f"{name}.")
        return state_dict

    # ------------------------------------------------------------------ training subset
    def set_trainable(self, mode: str = "default") -> list[str]:
        """Freeze the model except a subset (EEGMirror Sec. 3.3); return the trainable parameter names.

        Parameters
        ----------
        mode : {"default", "temporal", "all"}
            ``"default"``: ``attn1.to_q``, ``attn2.to_q`` of every transformer block and all
            temporal-attention parameters (Tune-A-Video); ``"temporal"``: the temporal
            attentions only; ``"all"``: every parameter.

        Returns
        -------
        list of str
            Names (as in ``named_parameters()``) of the parameters left with ``requires_grad``.
        """
        if mode not in TRAINABLE_MODES:
            raise ValueError(f"mode must be one of {TRAINABLE_MODES}, got {mode!r}")
        chosen = set()
        for block in self._inflated_blocks:
            modules = [block.temporal_attn] if hasattr(block, "temporal_attn") else []
            if mode == "default":
                modules += [block.attn1.to_q] + ([block.attn2.to_q] if block.attn2 is not None else [])
            chosen.update(id(p) for m in modules for p in m.parameters())
        names = []
        for name, param in self.named_parameters():
            param.requires_grad_(mode == "all" or id(param) in chosen)
            if param.requires_grad:
                names.append(name)
        return names

    # ------------------------------------------------------------------ forward
    def _set_num_frames(self, num_frames: int) -> None:
        for layer in self._frame_layers:
            if isinstance(layer.processor, FrameProcessor):
                layer.processor.num_frames = num_frames

    def _check_inputs(self, sample, timestep, encoder_hidden_states) -> tuple[int, int]:
        if not isinstance(sample, torch.Tensor) or sample.ndim != 5:
            shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
            raise ValueError(f"sample must be a 5-D tensor (batch, channels, frames, height, width), got {shape}")
        batch, channels, frames = sample.shape[:3]
        if channels != self.unet.config.in_channels:
            raise ValueError(
                f"sample has {channels} channels (dim 1) but the UNet expects in_channels="
                f"{self.unet.config.in_channels}; sample must be (batch, channels, frames, height, width)"
            )
        if not isinstance(encoder_hidden_states, torch.Tensor) or encoder_hidden_states.ndim != 3:
            got = (tuple(encoder_hidden_states.shape) if isinstance(encoder_hidden_states, torch.Tensor)
                   else type(encoder_hidden_states).__name__)
            raise ValueError(f"encoder_hidden_states must be a 3-D tensor (batch, tokens, dim), got {got}")
        if encoder_hidden_states.shape[0] not in (batch, batch * frames):
            raise ValueError(
                f"encoder_hidden_states has batch {encoder_hidden_states.shape[0]}, expected {batch} (one per clip) "
                f"or {batch * frames} (one per frame) for sample of shape {tuple(sample.shape)}"
            )
        if isinstance(timestep, torch.Tensor) and timestep.numel() not in (1, batch, batch * frames):
            raise ValueError(
                f"timestep must be a scalar or have {batch} (one per clip) or {batch * frames} (one per frame) "
                f"entries, got shape {tuple(timestep.shape)}"
            )
        return batch, frames

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        *,
        cross_attention_kwargs: dict | None = None,
        return_dict: bool = True,
    ) -> InflatedUNetOutput | tuple[torch.Tensor]:
        """Denoise video latents.

        Parameters
        ----------
        sample : torch.Tensor
            ``(b, c, f, h, w)`` noisy latents of ``b`` clips of ``f`` frames.
        timestep : torch.Tensor | float | int
            Diffusion step: a scalar, ``(b,)`` (one per clip) or ``(b * f,)`` (one per frame, clip-major).
        encoder_hidden_states : torch.Tensor
            ``(b, L, d)`` conditioning shared by a clip's frames (e.g. ``(b, 77, 768)``), or
            ``(b * f, L, d)`` one per frame (clip-major).
        cross_attention_kwargs : dict | None
            Passed to the attention processors (as in diffusers).
        return_dict : bool
            Return an :class:`InflatedUNetOutput` instead of a tuple.

        Returns
        -------
        InflatedUNetOutput | tuple
            ``sample``: ``(b, c_out, f, h, w)``.
        """
        batch, frames = self._check_inputs(sample, timestep, encoder_hidden_states)
        _, channels, _, height, width = sample.shape
        images = sample.transpose(1, 2).reshape(batch * frames, channels, height, width)  # (b*f, c, h, w)
        if encoder_hidden_states.shape[0] != batch * frames:
            encoder_hidden_states = encoder_hidden_states.repeat_interleave(frames, dim=0)  # (b*f, L, d)
        if isinstance(timestep, torch.Tensor) and timestep.numel() == batch != batch * frames:
            timestep = timestep.reshape(batch).repeat_interleave(frames)  # (b*f,)
        self._set_num_frames(frames)
        out = self.unet(images, timestep, encoder_hidden_states,
                        cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]  # (b*f, c_out, h, w)
        out = out.view(batch, frames, *out.shape[1:]).transpose(1, 2).contiguous()  # (b, c_out, f, h, w)
        if not return_dict:
            return (out,)
        return InflatedUNetOutput(sample=out)
