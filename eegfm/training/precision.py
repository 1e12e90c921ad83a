"""Which precision a training run computes in: one decision for every trainer.

``amp="auto"`` picks bfloat16 autocast only where the GPU computes bfloat16 natively: CUDA
compute capability 8.0 and up (A100, H100, RTX 30xx on) or a ROCm GPU. Older GPUs (V100,
T4: 7.x) only emulate it and run bf16 slower than float32, yet
``torch.cuda.is_bf16_supported()`` says True there (it counts emulation), so it is not
the test used; ``auto`` runs them in float32 (ask for ``amp="fp16"`` to use their half
precision). Every other device runs ``auto`` in float32, CPUs too: a CPU with AMX (Intel Sapphire
Rapids and later) trains about 1.6x faster in bf16 (``benchmarks/cpu_bf16_step.py``), and ``auto``
says so in the log there, but keeps float32 so that a saved recipe rebuilds the same weights on any
CPU; ask for ``amp="bf16"``.

:class:`eegfm.training.Trainer` (pre-training, fine-tuning, video co-training) resolves its
``TrainConfig.amp`` with :func:`resolve_amp` and builds its autocast with
:func:`autocast_factory`. Frozen teachers (the tokenizer that gives pre-training targets,
the CLIP / VAE / BLIP models that give video targets) run outside autocast whatever is
chosen here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

log = logging.getLogger("eegfm.training")

__all__ = ["AMP_MODES", "autocast_factory", "cpu_has_amx", "native_bf16", "resolve_amp"]

AMP_MODES = ("auto", "bf16", "fp16", "no")


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively (not emulated).

    True for a CUDA GPU of compute capability >= 8.0 and for a ROCm GPU; False for a CUDA
    GPU below 8.0 and for any other device type (CPU, MPS, ...).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    if torch.version.hip:  # ROCm: bf16 in hardware, as torch.cuda.is_bf16_supported says
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


@functools.lru_cache(maxsize=None)
def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware: Intel AMX (the ``amx_bf16`` flag of
    ``/proc/cpuinfo``; False where that file does not exist)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """The precision ``amp`` means on ``device``: ``"bf16"``, ``"fp16"`` or ``"no"``.

    Parameters
    ----------
    amp : {"auto", "bf16", "fp16", "no"}
        ``"auto"``: bf16 autocast where :func:`native_bf16`, float32 (``"no"``) elsewhere.
        ``"bf16"``: bf16 autocast on any device (logged as a warning where it is emulated).
        ``"fp16"``: fp16 autocast with a GradScaler, CUDA only. ``"no"``: float32.
    device : torch.device or str
        Where the model trains.

    Returns
    -------
    str
        ``"bf16"``, ``"fp16"`` or ``"no"``.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r} is not one of {AMP_MODES}")
    device = torch.device(device)
    if amp == "auto":
        if device.type == "cpu" and cpu_has_amx():
            log.info("this CPU has AMX: amp='bf16' trains about 1.6x faster than float32 here "
                     "(benchmarks/cpu_bf16_step.py); amp='auto' keeps float32 so saved recipes rebuild "
                     "the same weights")
        return "bf16" if native_bf16(device) else "no"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp='fp16' needs a CUDA device, got device={device}; use amp='bf16' or 'no'")
    if amp == "bf16" and device.type == "cuda" and not native_bf16(device):
        log.warning("amp='bf16' on %s is emulated (compute capability %s < 8.0) and slower than float32; "
                    "use amp='fp16' or 'no' there", device, torch.cuda.get_device_capability(device))
    return amp


def autocast_factory(amp: str, device: torch.device | str
                     ) -> tuple[Callable[[], AbstractContextManager], torch.amp.GradScaler | None]:
    """A zero-argument autocast context factory for ``amp`` on ``device``, and fp16's GradScaler.

    Returns
    -------
    (callable, GradScaler or None)
        ``with factory(): loss = model(batch)`` runs in the precision :func:`resolve_amp`
        gives; the scaler is None except for ``"fp16"``.
    """
    device = torch.device(device)
    resolved = resolve_amp(amp, device)
    if resolved == "no":
        return nullcontext, None
    if resolved == "fp16":
        return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)), None
