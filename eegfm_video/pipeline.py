"""``EEG2VideoPipeline``: video clips from EEG, in the style of a diffusers pipeline (EEGMirror Sec. 3.3).

::

    eeg (B, C, T), positions -> EEGAlignment
        semantic condition (B, L, W)            replaces the CLIP text encoder's output
        Seq2Seq frame latents (B, F, c, h, w)   the clip's layout and motion
    init = Seq2Seq latents noised to step t with dynamic-aware noise (b shared by all frames)
    for t in DDIM timesteps from t:             (one UNet call on [negative, condition] for CFG)
        eps = eps_neg + guidance_scale * (eps_cond - eps_neg)
        latents = DDIM step
    VAE decode per frame -> uint8 frames (B, F, H, W, 3)

``strength`` in (0, 1] is the start step as a fraction of the schedule (diffusers' img2img
convention): ``num_inference_steps * strength`` DDIM steps are run, starting from timestep
``t = timesteps[num_inference_steps - int(num_inference_steps * strength)]``. With
``strength=1`` the Seq2Seq latents are not used and sampling starts from pure (dynamic-aware)
noise, as diffusers' inpainting pipeline does at full strength, so ``strength=1,
shared_noise_share=0`` is exactly plain DDIM sampling from Gaussian noise.

Components: ``alignment`` (:class:`~eegfm_video.alignment.EEGAlignment`, which also holds the
negative embedding), ``unet`` (:class:`~eegfm_video.models.InflatedUNet`), ``vae``
(``diffusers.AutoencoderKL``), ``scheduler`` (``diffusers.DDIMScheduler``).
``save_pretrained`` / ``from_pretrained`` are diffusers' (``model_index.json`` + one folder per
component).
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput

from ._defaults import DEFAULT_GUIDANCE_SCALE, DEFAULT_STRENGTH
from .alignment import EEGAlignment
from .models.inflated_unet import InflatedUNet
from .noise import DEFAULT_SHARED_NOISE_SHARE, check_shared_noise_share, dynamic_aware_noise

__all__ = ["DEFAULT_GUIDANCE_SCALE", "DEFAULT_STRENGTH", "EEG2VideoPipeline", "EEG2VideoPipelineOutput",
           "OUTPUT_TYPES"]

OUTPUT_TYPES = ("np", "pt", "latent")


@dataclass
class EEG2VideoPipelineOutput(BaseOutput):
    """Output of :class:`EEG2VideoPipeline`.

    Attributes
    ----------
    frames : numpy.ndarray | torch.Tensor
        ``output_type="np"``: uint8 array (B, F, H, W, 3); ``"pt"``: the same as a uint8 tensor;
        ``"latent"``: the denoised latents (B, c, F, h, w) in the VAE's scaled latent space.
    """

    frames: np.ndarray | torch.Tensor = None


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


class EEG2VideoPipeline(DiffusionPipeline):
    r"""Generate video clips from EEG with an inflated Stable Diffusion UNet.

    Parameters
    ----------
    alignment : EEGAlignment
        EEG encoder, semantic decoder (the condition), Seq2Seq decoder (the initial latents)
        and the CFG negative embedding.
    unet : InflatedUNet
        Video UNet; its ``cross_attention_dim`` must equal the semantic decoder's ``width``.
    vae : diffusers.AutoencoderKL
        Decodes frame latents (divided by ``vae.config.scaling_factor``) to RGB.
    scheduler : diffusers.DDIMScheduler
        The sampler (any diffusers scheduler with ``set_timesteps``/``step``/``add_noise``
        works; DDIM is the paper's).
    """

    model_cpu_offload_seq = "alignment->unet->vae"

    def __init__(self, alignment: EEGAlignment, unet: InflatedUNet, vae: AutoencoderKL, scheduler: DDIMScheduler):
        super().__init__()
        width = alignment.semantic_decoder.config.width
        cross = unet.unet.config.cross_attention_dim
        if width != cross:
            raise ValueError(f"the semantic decoder's width={width} must equal the UNet's cross_attention_dim={cross}")
        if tuple(alignment.latent_shape[:1]) != (unet.unet.config.in_channels,):
            raise ValueError(f"the Seq2Seq latent_channels={alignment.latent_shape[0]} must equal the UNet's "
                             f"in_channels={unet.unet.config.in_channels}")
        self.register_modules(alignment=alignment, unet=unet, vae=vae, scheduler=scheduler)

    # ------------------------------------------------------------------ inputs
    def check_inputs(
        self,
        eeg,
        positions,
        channel_mask,
        n_times,
        num_frames,
        num_inference_steps,
        guidance_scale,
        negative_embeds,
        shared_noise_share,
        strength,
        eta,
        generator,
        output_type,
    ) -> None:
        """Raise a ``ValueError`` that names the argument and the value received."""
        if not isinstance(eeg, torch.Tensor) or eeg.ndim != 3:
            raise ValueError(f"`eeg` must be a tensor of shape (batch, channels, times), got {_shape(eeg)}")
        batch, n_chans = eeg.shape[:2]
        if not isinstance(positions, torch.Tensor) or tuple(positions.shape) not in ((n_chans, 2), (batch, n_chans, 2)):
            raise ValueError(f"`positions` must have shape ({batch}, {n_chans}, 2) or ({n_chans}, 2) to match `eeg` "
                             f"of shape {tuple(eeg.shape)}, got {_shape(positions)}")
        if channel_mask is not None and (not isinstance(channel_mask, torch.Tensor) or channel_mask.dtype != torch.bool
                                         or tuple(channel_mask.shape) != (batch, n_chans)):
            got = f"{channel_mask.dtype} {_shape(channel_mask)}" if isinstance(channel_mask, torch.Tensor) else _shape(
                channel_mask)
            raise ValueError(f"`channel_mask` must be a bool tensor of shape ({batch}, {n_chans}), got {got}")
        if n_times is not None and (not isinstance(n_times, torch.Tensor) or tuple(n_times.shape) != (batch,)):
            raise ValueError(f"`n_times` must be a tensor of shape ({batch},), got {_shape(n_times)}")
        if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1):
            raise ValueError(f"`num_frames` must be a positive integer or None, got {num_frames!r}")
        if (isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int)
                or num_inference_steps <= 0):
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real) or not (
                np.isfinite(guidance_scale) and guidance_scale >= 1):
            raise ValueError(f"`guidance_scale` must be a number >= 1 (1 disables classifier-free guidance), "
                             f"got {guidance_scale!r}")
        if negative_embeds is not None:
            seq_len, width = self.alignment.negative_embedding.shape
            ok = isinstance(negative_embeds, torch.Tensor) and (
                tuple(negative_embeds.shape) == (seq_len, width)
                or (negative_embeds.ndim == 3 and negative_embeds.shape[0] in (1, batch)
                    and tuple(negative_embeds.shape[1:]) == (seq_len, width)))
            if not ok:
                raise ValueError(f"`negative_embeds` must have shape ({seq_len}, {width}), (1, {seq_len}, {width}) or "
                                 f"({batch}, {seq_len}, {width}), got {_shape(negative_embeds)}")
        try:
            check_shared_noise_share(shared_noise_share, batch)
        except ValueError as err:
            raise ValueError(f"`shared_noise_share`: {err}") from None
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 < strength <= 1:
            raise ValueError(f"`strength` (the start step as a fraction of the schedule) must be in (0, 1], "
                             f"got {strength!r}")
        if int(num_inference_steps * strength) < 1:
            raise ValueError(f"`strength`={strength} with `num_inference_steps`={num_inference_steps} runs no "
                             f"denoising step (int(num_inference_steps * strength) = 0); raise either")
        if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not 0 <= eta <= 1:
            raise ValueError(f"`eta` must be in [0, 1] (0 = deterministic DDIM), got {eta!r}")
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"`generator` is a list of {len(generator)} generators, but the batch has {batch} clips; "
                             "pass one generator or one per clip")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}")

    def get_timesteps(self, num_inference_steps: int, strength: float) -> tuple[torch.Tensor, int]:
        """The scheduler's timesteps from the start step on, and how many there are (img2img convention)."""
        init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
        t_start = num_inference_steps - init_timestep
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(t_start * self.scheduler.order)
        return timesteps, init_timestep

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int = 16) -> torch.Tensor:
        """Scaled latents (B, c, F, h, w) -> uint8 frames (B, F, H, W, 3) on the latents' device."""
        batch, channels, frames, height, width = latents.shape
        flat = latents.transpose(1, 2).reshape(batch * frames, channels, height, width)  # (B*F, c, h, w)
        flat = flat / self.vae.config.scaling_factor
        images = [self.vae.decode(flat[i:i + decode_chunk_size].to(self.vae.dtype)).sample
                  for i in range(0, len(flat), decode_chunk_size)]
        images = torch.cat(images).float()  # (B*F, 3, H, W) in [-1, 1]
        images = ((images / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return images.permute(0, 2, 3, 1).reshape(batch, frames, *images.shape[2:], 3)

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        eeg: torch.Tensor,
        positions: torch.Tensor,
        channel_mask: torch.Tensor | None = None,
        n_times: torch.Tensor | None = None,
        *,
        num_frames: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        negative_embeds: torch.Tensor | None = None,
        shared_noise_share: float | torch.Tensor = DEFAULT_SHARED_NOISE_SHARE,
        strength: float = DEFAULT_STRENGTH,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        decode_chunk_size: int = 16,
    ) -> EEG2VideoPipelineOutput | tuple:
        """Generate one clip per EEG segment.

        Parameters
        ----------
        eeg : torch.Tensor, shape (B, C, T)
            EEG in µV at the encoder's ``sfreq`` (SEED-DV: 2-s segments, (B, 62, 400)).
        positions : torch.Tensor, shape (B, C, 2) or (C, 2)
            Proportion coordinates of the channels (:func:`eegfm.proportion_coordinates`).
        channel_mask : torch.Tensor of bool, shape (B, C), optional
            True for real channels.
        n_times : torch.Tensor, shape (B,), optional
            Valid samples per segment.
        num_frames : int, optional
            ``F``; default the Seq2Seq decoder's ``num_frames`` (6).
        num_inference_steps : int
            DDIM steps of the full schedule (50).
        guidance_scale : float
            ``>= 1``; 1 runs the condition only (no negative branch).
        negative_embeds : torch.Tensor, shape (L, W), (1, L, W) or (B, L, W), optional
            Negative condition; default ``alignment.negative_embedding``.
        shared_noise_share : float | torch.Tensor of shape (B,)
            ``b`` in [0, 1] of :func:`eegfm_video.noise.dynamic_aware_noise`.
        strength : float
            Start step as a fraction of the schedule, in (0, 1] (see the module docstring).
        eta : float
            DDIM's eta (0: deterministic).
        generator : torch.Generator | list of torch.Generator, optional
            For the noise (and DDIM's when ``eta > 0``).
        output_type : {"np", "pt", "latent"}
        return_dict : bool
        decode_chunk_size : int
            Frames per VAE decode call.

        Returns
        -------
        EEG2VideoPipelineOutput | tuple
            ``frames``: uint8 (B, F, H, W, 3) for "np" / "pt", latents (B, c, F, h, w) for "latent".
        """
        self.check_inputs(eeg, positions, channel_mask, n_times, num_frames, num_inference_steps, guidance_scale,
                          negative_embeds, shared_noise_share, strength, eta, generator, output_type)
        device = self._execution_device
        batch = eeg.shape[0]
        do_cfg = guidance_scale > 1
        param = next(self.alignment.parameters())
        to = dict(device=device, dtype=param.dtype)
        eeg, positions = eeg.to(**to), positions.to(**to)
        channel_mask = channel_mask.to(device) if channel_mask is not None else None
        n_times = n_times.to(device) if n_times is not None else None

        # 1. condition and initial latents from the EEG
        encoded = self.alignment.encode(eeg, positions, channel_mask=channel_mask, n_times=n_times)
        cond = self.alignment.semantic(encoded)  # (B, L, W)
        init = self.alignment.seq2seq.generate(encoded.tokens, encoded.token_mask, num_frames)  # (B, F, c, h, w)
        init = init.transpose(1, 2)  # (B, c, F, h, w)
        unet_dtype = self.unet.dtype
        cond = cond.to(unet_dtype)
        if do_cfg:
            negative = self.alignment.negative_embedding if negative_embeds is None else negative_embeds
            negative = negative.to(device=device, dtype=unet_dtype)
            negative = negative.reshape(-1, *negative.shape[-2:]).expand(batch, -1, -1)  # (B, L, W)
            cond = torch.cat([negative, cond])  # (2B, L, W): negative first, as diffusers

        # 2. timesteps from the start step, and the starting latents
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps, _ = self.get_timesteps(num_inference_steps, strength)
        noise = dynamic_aware_noise(init.shape, shared_noise_share, generator=generator, device=device,
                                    dtype=unet_dtype)  # (B, c, F, h, w)
        if strength >= 1:  # full schedule: pure noise, the Seq2Seq latents unused
            latents = noise * self.scheduler.init_noise_sigma
        else:
            latents = self.scheduler.add_noise(init.to(unet_dtype), noise, timesteps[:1].repeat(batch))

        # 3. denoising loop (eta and generator only for schedulers that take them, as diffusers does)
        accepted = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {k: v for k, v in (("eta", eta), ("generator", generator)) if k in accepted}
        for t in self.progress_bar(timesteps):
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            pred = self.unet(model_in, t, encoder_hidden_states=cond).sample  # (B or 2B, c, F, h, w)
            if do_cfg:
                pred_neg, pred_cond = pred.chunk(2)
                pred = pred_neg + guidance_scale * (pred_cond - pred_neg)
            latents = self.scheduler.step(pred, t, latents, **step_kwargs).prev_sample

        # 4. frames
        if output_type == "latent":
            frames = latents
        else:
            frames = self.decode_latents(latents, decode_chunk_size)  # (B, F, H, W, 3) uint8
            frames = frames.cpu().numpy() if output_type == "np" else frames
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return EEG2VideoPipelineOutput(frames=frames)
