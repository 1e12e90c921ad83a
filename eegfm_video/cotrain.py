"""Co-training of the alignment module and the inflated UNet (EEGMirror Sec. 3.3).

One optimizer over the :class:`~eegfm_video.alignment.EEGAlignment` (encoder, semantic and
Seq2Seq decoders, negative embedding when learned) and the UNet's trainable subset
(``InflatedUNet.set_trainable``; default ``attn1.to_q``, ``attn2.to_q`` and the temporal
attentions). Per batch of clips::

    eeg -> alignment -> condition c (B, L, W), teacher-forced latents H_hat (B, F, c, h, w)
    L_align = L_text(c, CLIP text embedding) + L_low(H_hat, VAE latents)
    x0 = VAE latents (B, c, F, h, w); t ~ U{0..T-1} per clip; eps ~ N(0, I)
    x_t = add_noise(x0, eps, t)
    c'  = negative embedding for a random share ``cond_drop_prob`` of the clips, else c
    L_diff = MSE(unet(x_t, t, c'), eps)          (the velocity for v-prediction schedulers)
    loss = alignment_weight * L_align + diffusion_weight * L_diff

The diffusion loss back-propagates through the condition into the semantic decoder and the
encoder: that is what "trained together" means. Dropping the condition to the negative
embedding trains the "unconditional" branch of classifier-free guidance.

:class:`VideoCoTrainer` follows the model contract of :class:`eegfm.training.Trainer`
(``training_step(batch) -> {"loss_sum", "count", ...}``, ``optimizer_groups``,
``save_pretrained``), so warm-up + cosine schedule, gradient clipping, autocast, DDP,
checkpoints and exact resume come from the engine. :func:`paired_batches` makes the
deterministic ``batches(epoch, start)`` the engine wants; :func:`cotrain` runs it all.

Checkpoints (``run_dir/checkpoints``, the newest ``TrainConfig.keep_checkpoints`` kept) hold the
trained parameters only: the frozen rest of the Stable Diffusion UNet (about 3.4 GB in fp32) is
identified by its SHA-256 (:class:`eegfm.training.checkpoint.FrozenParameters`), and resuming
with another frozen UNet is an error naming both hashes. The end of training writes the whole
model once, with ``save_pretrained`` (``run_dir/model``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eegfm._validation import check_option, check_weight
from eegfm.training import TrainConfig, Trainer

from .alignment import EEGAlignment
from .models.inflated_unet import TRAINABLE_MODES, InflatedUNet

__all__ = ["VideoCoTrainer", "cotrain", "paired_batches"]

BATCH_KEYS = ("eeg", "positions", "text_embeddings", "latents")


def _check_fraction(name: str, value, *, closed: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1 if closed else 0 <= value < 1):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


class VideoCoTrainer(nn.Module):
    """Alignment module + inflated UNet with the co-training loss, for :class:`eegfm.training.Trainer`.

    Parameters
    ----------
    alignment : EEGAlignment
        Trained entirely (its negative embedding only when ``negative_embedding_mode="learned"``).
    unet : InflatedUNet
        Its ``unet_trainable`` subset is trained, the rest frozen.
    noise_scheduler : diffusers scheduler
        The training noise schedule, with ``add_noise`` (and ``get_velocity`` for
        ``prediction_type="v_prediction"``) and ``config.num_train_timesteps``: e.g.
        ``DDPMScheduler.from_pretrained(sd_model, subfolder="scheduler")``.
    cond_drop_prob : float
        Probability of replacing a clip's condition by the negative embedding (CFG), in [0, 1).
    diffusion_weight, alignment_weight : float
        Weights of ``L_diff`` and ``L_align = L_text + L_low``.
    unet_trainable : {"default", "temporal", "all"}
        Passed to ``InflatedUNet.set_trainable``.
    unet_lr_scale : float
        Learning rate of the UNet's parameters as a multiple of the scheduled rate (the
        alignment module gets the rate itself).
    """

    def __init__(
        self,
        alignment: EEGAlignment,
        unet: InflatedUNet,
        noise_scheduler,
        *,
        cond_drop_prob: float = 0.1,
        diffusion_weight: float = 1.0,
        alignment_weight: float = 1.0,
        unet_trainable: str = "default",
        unet_lr_scale: float = 1.0,
    ):
        super().__init__()
        if not isinstance(alignment, EEGAlignment):
            raise ValueError(f"alignment must be an EEGAlignment, got {type(alignment).__name__}")
        if not isinstance(unet, InflatedUNet):
            raise ValueError(f"unet must be an InflatedUNet, got {type(unet).__name__}")
        for name in ("add_noise", "config"):
            if not hasattr(noise_scheduler, name):
                raise ValueError(f"noise_scheduler must be a diffusers scheduler with add_noise() and a config, "
                                 f"got {type(noise_scheduler).__name__}")
        _check_fraction("cond_drop_prob", cond_drop_prob, closed=False)
        check_weight("diffusion_weight", diffusion_weight)
        check_weight("alignment_weight", alignment_weight)
        if isinstance(unet_lr_scale, bool) or not isinstance(unet_lr_scale, (int, float)) or not unet_lr_scale > 0:
            raise ValueError(f"unet_lr_scale must be a positive number, got {unet_lr_scale!r}")
        check_option("unet_trainable", unet_trainable, TRAINABLE_MODES)
        width, cross = alignment.semantic_decoder.config.width, unet.unet.config.cross_attention_dim
        if width != cross:
            raise ValueError(f"the semantic decoder's width={width} must equal the UNet's cross_attention_dim={cross}")
        self.alignment = alignment
        self.unet = unet
        self.noise_scheduler = noise_scheduler
        self.cond_drop_prob = float(cond_drop_prob)
        self.diffusion_weight = float(diffusion_weight)
        self.alignment_weight = float(alignment_weight)
        self.unet_trainable = unet_trainable
        self.unet_lr_scale = float(unet_lr_scale)
        self.unet_trainable_names = unet.set_trainable(unet_trainable)
        alignment.negative_embedding.requires_grad_(alignment.config.negative_embedding_mode == "learned")

    # ------------------------------------------------------------------ parameters
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every alignment parameter (the negative embedding if learned) and the UNet's trainable subset."""
        chosen = {f"unet.{n}" for n in self.unet_trainable_names}
        params = []
        for name, param in self.named_parameters():
            if name == "alignment.negative_embedding":
                if self.alignment.config.negative_embedding_mode == "learned":
                    params.append(param)
            elif name.startswith("alignment.") or name in chosen:
                params.append(param)
        return params

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: alignment / UNet (``lr_scale=unet_lr_scale``), each with and without decay.

        No decay on biases, norms, 1-d parameters, tokens and the negative embedding.
        """
        groups = {(part, decay): [] for part in ("alignment", "unet") for decay in (True, False)}
        trainable = {id(p) for p in self.trainable_parameters()}
        for name, param in self.named_parameters():
            if id(param) not in trainable:
                continue
            no_decay = (param.ndim < 2 or name.endswith((".bias", "_token"))
                        or name == "alignment.negative_embedding" or ".norm" in name)
            groups[(name.split(".", 1)[0], not no_decay)].append(param)
        return [{"params": params, "weight_decay": weight_decay if decay else 0.0,
                 "lr_scale": self.unet_lr_scale if part == "unet" else 1.0}
                for (part, decay), params in groups.items()]

    # ------------------------------------------------------------------ loss
    def _check_batch(self, batch) -> None:
        if not isinstance(batch, dict) or any(k not in batch for k in BATCH_KEYS):
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"batch must be a dict with keys {BATCH_KEYS} (and optionally 'channel_mask', "
                             f"'n_times'), got {got}")
        latents, text, eeg = batch["latents"], batch["text_embeddings"], batch["eeg"]
        shape = self.alignment.latent_shape
        if latents.ndim != 5 or tuple(latents.shape[2:]) != shape or latents.shape[0] != eeg.shape[0]:
            raise ValueError(f"batch['latents'] must have shape ({eeg.shape[0]}, frames, {', '.join(map(str, shape))}), "
                             f"got {tuple(latents.shape)}")
        seq_len, width = self.alignment.negative_embedding.shape
        if tuple(text.shape) != (eeg.shape[0], seq_len, width):
            raise ValueError(f"batch['text_embeddings'] must have shape ({eeg.shape[0]}, {seq_len}, {width}), "
                             f"got {tuple(text.shape)}")

    def diffusion_loss(self, condition: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Noise-prediction MSE of the UNet on clean latents, with condition dropout.

        Parameters
        ----------
        condition : torch.Tensor, shape (B, L, W)
            The semantic decoder's prediction (gradients flow into it).
        latents : torch.Tensor, shape (B, F, c, h, w)
            Scaled VAE latents of the clips' frames.

        Returns
        -------
        torch.Tensor, shape ()
            float32 loss.
        """
        x0 = latents.transpose(1, 2)  # (B, c, F, h, w)
        batch = x0.shape[0]
        noise = torch.randn_like(x0)
        steps = int(self.noise_scheduler.config.num_train_timesteps)
        t = torch.randint(0, steps, (batch,), device=x0.device)
        noisy = self.noise_scheduler.add_noise(x0, noise, t)
        if self.cond_drop_prob > 0:
            drop = (torch.rand(batch, device=x0.device) < self.cond_drop_prob)[:, None, None]  # (B, 1, 1)
            negative = self.alignment.negative_embedding.to(condition.dtype).expand_as(condition)
            condition = torch.where(drop, negative, condition)
        pred = self.unet(noisy, t, condition).sample  # (B, c, F, h, w)
        kind = getattr(self.noise_scheduler.config, "prediction_type", "epsilon")
        if kind == "epsilon":
            target = noise
        elif kind == "v_prediction":
            target = self.noise_scheduler.get_velocity(x0, noise, t)
        else:
            raise ValueError(f"noise_scheduler.config.prediction_type must be 'epsilon' or 'v_prediction', got {kind!r}")
        return F.mse_loss(pred.float(), target.float())

    def training_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """The co-training loss of one batch (the :class:`eegfm.training.Trainer` contract).

        Parameters
        ----------
        batch : dict
            ``eeg`` (B, C, T) µV; ``positions`` (B, C, 2) or (C, 2); ``text_embeddings``
            (B, L, W); ``latents`` (B, F, c, h, w) scaled VAE latents; optional
            ``channel_mask`` (B, C) bool and ``n_times`` (B,).

        Returns
        -------
        dict
            ``loss_sum`` (loss x B), ``count`` (B) and the terms ``loss_text``, ``loss_low``,
            ``softclip``, ``loss_diffusion``.
        """
        self._check_batch(batch)
        eeg, latents = batch["eeg"], batch["latents"]
        out = self.alignment(eeg, batch["positions"], channel_mask=batch.get("channel_mask"),
                             n_times=batch.get("n_times"), latents=latents)
        align = self.alignment.loss(out, batch["text_embeddings"], latents)
        diffusion = self.diffusion_loss(out.text_embeddings, latents)
        loss = self.alignment_weight * align.total + self.diffusion_weight * diffusion
        batch_size = eeg.shape[0]
        return {"loss_sum": loss * batch_size, "count": batch_size, "loss_text": align.text.detach(),
                "loss_low": align.low.detach(), "softclip": align.softclip.detach(),
                "loss_diffusion": diffusion.detach()}

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory) -> None:
        """Write ``alignment/`` and ``unet/`` (diffusers format) and ``cotrain_config.json``."""
        directory = Path(directory)
        self.alignment.save_pretrained(directory / "alignment")
        self.unet.save_pretrained(directory / "unet")
        config = {"cond_drop_prob": self.cond_drop_prob, "diffusion_weight": self.diffusion_weight,
                  "alignment_weight": self.alignment_weight, "unet_trainable": self.unet_trainable,
                  "unet_lr_scale": self.unet_lr_scale}
        (directory / "cotrain_config.json").write_text(json.dumps(config, indent=2))


def paired_batches(
    data: dict[str, torch.Tensor | np.ndarray],
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Callable[[int, int], Iterator[dict]]:
    """The ``batches(epoch, start)`` of :class:`eegfm.training.Trainer` over in-memory paired clips.

    Parameters
    ----------
    data : dict
        ``eeg`` (N, C, T), ``text_embeddings`` (N, L, W), ``latents`` (N, F, c, h, w) and
        ``positions`` (C, 2) (one montage) or (N, C, 2); optional ``channel_mask`` (N, C) and
        ``n_times`` (N,). Arrays are converted to float32 tensors (masks kept bool/int).
    batch_size : int
        Clips per batch.
    seed : int
        Epoch ``e`` is shuffled with ``numpy.random.default_rng(seed + e)``: deterministic in
        ``(epoch, start)``, as resume needs.
    shuffle, drop_last : bool

    Returns
    -------
    callable ``(epoch, start) -> iterator of dict``
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    missing = [k for k in BATCH_KEYS if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; it needs {BATCH_KEYS}")
    tensors = {}
    for key, value in data.items():
        tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        tensors[key] = tensor.float() if tensor.is_floating_point() else tensor
    n = len(tensors["eeg"])
    for key, tensor in tensors.items():
        if key != "positions" and len(tensor) != n:
            raise ValueError(f"data[{key!r}] has {len(tensor)} rows, but data['eeg'] has {n}")
    per_clip_positions = tensors["positions"].ndim == 3
    if n < batch_size and drop_last:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} clips and drop_last=True: no batch")

    def batches(epoch: int, start: int = 0) -> Iterator[dict]:
        order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for first in range(start * batch_size, stop, batch_size):
            idx = torch.as_tensor(order[first:first + batch_size])
            batch = {k: v[idx] for k, v in tensors.items() if k != "positions" or per_clip_positions}
            if not per_clip_positions:
                batch["positions"] = tensors["positions"]
            yield batch

    return batches


def cotrain(
    alignment: EEGAlignment,
    unet: InflatedUNet,
    noise_scheduler,
    batches: Callable[[int, int], Iterator[dict]],
    config: TrainConfig,
    **options,
) -> tuple[VideoCoTrainer, dict]:
    """Co-train with :class:`eegfm.training.Trainer`; returns the trainer model and the summary.

    Parameters
    ----------
    alignment, unet, noise_scheduler
        See :class:`VideoCoTrainer`.
    batches : callable ``(epoch, start) -> iterator of dict``
        E.g. :func:`paired_batches`.
    config : eegfm.training.TrainConfig
        Steps, learning rate, run directory (checkpoints, metrics.csv, ``model/``), resume...
    **options
        Keyword arguments of :class:`VideoCoTrainer`.

    Returns
    -------
    (VideoCoTrainer, dict)
        The model (trained in place) and ``Trainer.fit``'s summary.
    """
    model = VideoCoTrainer(alignment, unet, noise_scheduler, **options)
    summary = Trainer(model, config, batches, trainable_parameters=model.trainable_parameters()).fit()
    return model, summary
