"""Benchmark an eegfm encoder with OpenEEGBench (``pip install 'eegfm[benchmark]'``).

OpenEEGBench (PyPI ``open-eeg-bench``, github.com/braindecode/OpenEEGBench) fine-tunes a
braindecode-style model on its pre-windowed datasets. How its ``benchmark()`` uses a model,
as read from its code (``open_eeg_bench/backbone.py``, ``dataset.py``, ``experiment.py``,
``head.py``; version 0.6.0):

- ``model_cls`` is a dotted import path. Each run builds
  ``model_cls(**model_kwargs, n_chans=, n_times=, n_outputs=, sfreq=, chs_info=)`` from the
  dataset's first window and ``mne.Info``: every dataset is resampled to **100 Hz**, windows of
  1-30 s, in **µV** as far as its code tells (its ``DivideByConstant(100)`` and ``ScaleToMV``
  normalisations are written for µV input), so ``input_scale`` stays 1;
- exactly one of ``hub_repo`` (reads ``model.safetensors``), ``checkpoint_url`` or
  ``checkpoint_path`` (``torch.load``, a state dict) gives the weights; keys are matched to
  ``model.state_dict()`` by name and shape, and a learnable parameter outside the head that the
  checkpoint lacks is an error;
- the head is the child named ``head_module_name`` (``"final_layer"``); it is replaced by
  ``Sequential(Flatten, LazyLinear)`` (or an MLP, or ``Flatten`` for the ridge probe), so the
  forward must feed it a (batch, features) tensor; ``Frozen`` trains that head only, LoRA/IA3/...
  wrap the module names in ``peft_target_modules`` / ``peft_ff_modules`` with PEFT;
- training is braindecode's ``EEGClassifier`` on the ``Subset`` splits; results are cached by
  exca in ``infra["folder"]`` under a hash of the configuration.

The MAPE encoder runs at its own rate (200 Hz by default), so :class:`ResamplingEEGMirror` is an
:class:`~eegfm.finetune.braindecode.EEGMirror` whose ``sfreq``/``n_times`` are the data's and
whose forward first resamples the input to the encoder's rate (FFT resampling, see
:func:`resample`). :func:`benchmark_kwargs` turns an eegfm encoder (a
``MAPEEncoder.save_pretrained`` folder, a Hub repo id, or the model) into the keyword arguments
of ``open_eeg_bench.benchmark``; :func:`benchmark` calls it::

    from eegfm.finetune.openeegbench import benchmark
    results = benchmark("runs/pretrain/encoder", datasets=["bcic2a"], n_seeds=1,
                        infra={"folder": "oeb-cache"})          # pandas DataFrame

    # the same, calling OpenEEGBench yourself
    import open_eeg_bench as oeb
    from eegfm.finetune.openeegbench import benchmark_kwargs
    results = oeb.benchmark(**benchmark_kwargs("runs/pretrain/encoder"), datasets=["bcic2a"])

The weights go to ``checkpoint_path``: a ``torch.save`` state dict named after a hash of the
weights and config (so exca's cache never returns results of another encoder saved in the same
folder). OpenEEGBench downloads its datasets from the Hugging Face Hub; offline it reads them
from the Hub cache (eegfm's tests run ``benchmark`` offline on a tiny dataset written in its
format into that cache). OpenEEGBench needs Python >= 3.11; its ``wandb`` requirement is imported
only for its (off by default) wandb logger. Importing this module imports braindecode (for
``EEGMirror``), never ``open_eeg_bench``: :func:`benchmark` imports it, or says what to install.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..models.encoder import MAPEEncoder
from .braindecode import DEFAULT_SFREQ, EEGMirror

__all__ = ["BENCHMARK_EXTRA", "ResamplingEEGMirror", "benchmark", "benchmark_kwargs", "import_open_eeg_bench",
           "resample", "save_checkpoint"]

#: The install command of the extra that brings OpenEEGBench.
BENCHMARK_EXTRA = "pip install 'eegfm[benchmark]'"

#: Linear layers of each Transformer block (``blocks.<i>.attn.qkv`` ...), OpenEEGBench's
#: ``peft_target_modules`` (suffixes); the MLP's two layers are its ``peft_ff_modules`` (IA3).
PEFT_TARGET_MODULES = ["attn.qkv", "attn.proj", "mlp.0", "mlp.3"]
PEFT_FF_MODULES = ["mlp.0", "mlp.3"]


def import_open_eeg_bench():
    """``import open_eeg_bench``, or one ``ImportError`` line that says what to install."""
    try:
        import open_eeg_bench
    except ModuleNotFoundError as err:
        missing = (err.name or "?").split(".")[0]
        what = "open-eeg-bench, which is not installed" if missing == "open_eeg_bench" else \
            f"open-eeg-bench, whose dependency {missing} is not installed"
        raise ImportError(f"eegfm.finetune.openeegbench.benchmark needs {what}: {BENCHMARK_EXTRA} "
                          "(OpenEEGBench needs Python >= 3.11)") from err
    return open_eeg_bench


def resample(x: torch.Tensor, sfreq: float, new_sfreq: float) -> torch.Tensor:
    """Resample the last axis from ``sfreq`` to ``new_sfreq`` Hz (FFT, band-limited).

    The signal is extended at both ends by odd reflection (up to 0.25 s or ``T - 1`` samples,
    as MNE's ``reflect_limited`` padding) before the FFT, so that the transform's periodic
    wrap-around does not ring at the window's edges; downsampling
    drops everything above the new Nyquist frequency. Differentiable, any device.

    Parameters
    ----------
    x : torch.Tensor, shape (..., T)
    sfreq, new_sfreq : float
        Input and output rates (Hz).

    Returns
    -------
    torch.Tensor, shape (..., round(T * new_sfreq / sfreq))
        ``x`` itself when the rates are equal.
    """
    if math.isclose(sfreq, new_sfreq, rel_tol=1e-9):
        return x
    ratio = float(new_sfreq) / float(sfreq)
    n_times = x.shape[-1]
    n_out = max(1, round(n_times * ratio))
    pad = min(n_times - 1, max(0, round(0.25 * sfreq)))
    dtype = x.dtype
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    if pad:  # odd reflection: value and slope stay continuous at the edges
        left = 2 * work[..., :1] - work[..., 1:pad + 1].flip(-1)
        right = 2 * work[..., -1:] - work[..., -pad - 1:-1].flip(-1)
        work = torch.cat((left, work, right), dim=-1)
    length = work.shape[-1]
    length_out = round(length * ratio)
    spectrum = torch.fft.rfft(work, dim=-1)
    if length_out > length and length % 2 == 0:  # the old Nyquist bin splits between +/- frequencies
        spectrum = spectrum.clone()
        spectrum[..., -1] *= 0.5
    out = torch.fft.irfft(spectrum, n=length_out, dim=-1) * (length_out / length)
    start = round(pad * ratio)
    return out[..., start:start + n_out].to(dtype)


class ResamplingEEGMirror(EEGMirror):
    """:class:`~eegfm.finetune.braindecode.EEGMirror` for data at any rate: resampled in forward.

    braindecode's signal arguments (``sfreq``, ``n_times``, ``input_window_seconds``) describe the
    input, at the data's rate (OpenEEGBench: 100 Hz); the forward resamples it to the encoder's
    rate (``encoder["sfreq"]``, 200 Hz by default) with :func:`resample` before the encoder.
    Same children, parameter names and checkpoints as ``EEGMirror`` (``encoder.*``,
    ``final_layer.*``); the resampling has no parameters.

    Parameters
    ----------
    sfreq : float, optional
        Rate of the input (default: ``n_times / input_window_seconds``, else the encoder's).
    encoder_sfreq : float
        Read-only attribute: the encoder's rate the input is resampled to.

    Other parameters are :class:`~eegfm.finetune.braindecode.EEGMirror`'s.
    """

    def __init__(self, n_outputs=None, n_chans=None, chs_info=None, n_times=None, input_window_seconds=None,
                 sfreq=None, encoder: dict | None = None, pooling: str = "mean", drop_prob: float = 0.0,
                 activation: type[nn.Module] = nn.GELU, input_scale: float = 1.0, positions: list | None = None):
        encoder = dict(encoder or {})
        encoder_sfreq = float(encoder.setdefault("sfreq", DEFAULT_SFREQ))
        if sfreq is None:
            sfreq = n_times / input_window_seconds if n_times and input_window_seconds else encoder_sfreq
        sfreq = float(sfreq)
        if n_times is not None and input_window_seconds is not None and n_times != round(input_window_seconds * sfreq):
            raise ValueError(f"{n_times=} different from {input_window_seconds=} * {sfreq=}")
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info, sfreq=encoder_sfreq,
                         encoder=encoder, pooling=pooling, drop_prob=drop_prob, activation=activation,
                         input_scale=input_scale, positions=positions)
        # braindecode's signal properties describe the input (at the data's rate), not the encoder
        self._sfreq, self._n_times, self._input_window_seconds = sfreq, n_times, input_window_seconds
        self.encoder_sfreq = encoder_sfreq

    @classmethod
    def from_encoder(cls, encoder: str | MAPEEncoder, *, n_outputs: int, chs_info=None, n_times=None,
                     sfreq=None, pooling: str = "mean", drop_prob: float = 0.0, input_scale: float = 1.0,
                     positions: list | None = None, **hub_kwargs) -> ResamplingEEGMirror:
        """Wrap a pre-trained eegfm encoder (a MAPEEncoder, a folder or a Hub repo id) with a new
        head, for input at ``sfreq`` Hz (default: the encoder's rate)."""
        if not isinstance(encoder, MAPEEncoder):
            encoder = MAPEEncoder.from_pretrained(encoder, **hub_kwargs)
        model = cls(n_outputs=n_outputs, chs_info=chs_info, n_times=n_times, sfreq=sfreq or encoder.sfreq,
                    encoder=encoder.get_config(), pooling=pooling, drop_prob=drop_prob, input_scale=input_scale,
                    positions=positions)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.to(next(encoder.parameters()).device)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor | dict:
        """As :meth:`EEGMirror.forward`, with ``x`` (B, n_chans, T) at ``self.sfreq`` Hz."""
        return super().forward(resample(x, self.sfreq, self.encoder_sfreq), return_features=return_features)


def _json_config(encoder: MAPEEncoder) -> dict:
    """The encoder's constructor arguments as plain JSON types (exca hashes them)."""
    return json.loads(json.dumps(encoder.get_config()))


def save_checkpoint(encoder: MAPEEncoder, directory: str | os.PathLike) -> Path:
    """Write the encoder's weights as a ``torch.load``-able state dict for ``checkpoint_path``.

    Keys are those of :class:`ResamplingEEGMirror` (``encoder.<name>``); the file is
    ``eegfm-<hash>.pth`` in ``directory``, the hash covering the weights and the config, so the
    same encoder always gets the same path (exca's cache is reused) and another one never does.
    An existing file of that name is kept.
    """
    state = {f"encoder.{key}": value.detach().cpu().contiguous() for key, value in encoder.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(json.dumps(_json_config(encoder), sort_keys=True).encode() + payload).hexdigest()[:16]
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"eegfm-{digest}.pth"
    if not path.is_file():
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(payload)
        os.replace(partial, path)  # atomic: a concurrent run never reads half a file
    return path


def _default_checkpoint_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "eegfm" / "openeegbench"


def benchmark_kwargs(encoder: str | os.PathLike | MAPEEncoder, checkpoint_dir: str | os.PathLike | None = None,
                     pooling: str = "mean", **hub_kwargs) -> dict:
    """Keyword arguments of ``open_eeg_bench.benchmark`` that benchmark an eegfm encoder.

    Parameters
    ----------
    encoder : str | os.PathLike | MAPEEncoder
        A ``MAPEEncoder.save_pretrained`` folder, a Hub repo id, or the encoder.
    checkpoint_dir : str | os.PathLike, optional
        Where the weights are written for ``checkpoint_path`` (default
        ``~/.cache/eegfm/openeegbench``; see :func:`save_checkpoint`).
    pooling : {"mean", "cls", "cls+mean"}
        The features the new head reads.
    **hub_kwargs
        Passed to ``MAPEEncoder.from_pretrained`` (``revision=``, ``token=``...).

    Returns
    -------
    dict
        ``model_cls`` (:class:`ResamplingEEGMirror`'s import path), ``checkpoint_path``,
        ``model_kwargs`` (``encoder`` config, ``pooling``), ``head_module_name="final_layer"``,
        ``peft_target_modules`` and ``peft_ff_modules`` (the Transformer blocks' linear layers,
        for LoRA / IA3 / ...). Add ``datasets=``, ``finetuning_strategies=``, ``n_seeds=``,
        ``infra=``... and call ``open_eeg_bench.benchmark(**kwargs)``.
    """
    if not isinstance(encoder, MAPEEncoder):
        encoder = MAPEEncoder.from_pretrained(encoder, **hub_kwargs)
    path = save_checkpoint(encoder, checkpoint_dir or _default_checkpoint_dir())
    return dict(
        model_cls=f"{ResamplingEEGMirror.__module__}.{ResamplingEEGMirror.__name__}",
        checkpoint_path=str(path),
        model_kwargs={"encoder": _json_config(encoder), "pooling": pooling},
        head_module_name="final_layer",
        peft_target_modules=list(PEFT_TARGET_MODULES),
        peft_ff_modules=list(PEFT_FF_MODULES),
    )


def benchmark(encoder: str | os.PathLike | MAPEEncoder, *, checkpoint_dir: str | os.PathLike | None = None,
              pooling: str = "mean", **benchmark_options):
    """Run ``open_eeg_bench.benchmark`` on an eegfm encoder.

    ``benchmark_options`` go to ``open_eeg_bench.benchmark`` (``datasets``,
    ``finetuning_strategies``, ``heads``, ``n_seeds``, ``infra``, ``device``,
    ``only_return_configs``...); see :func:`benchmark_kwargs` for the rest.

    Raises
    ------
    ImportError
        open-eeg-bench is not installed (``pip install 'eegfm[benchmark]'``).
    """
    oeb = import_open_eeg_bench()
    return oeb.benchmark(**benchmark_kwargs(encoder, checkpoint_dir, pooling=pooling), **benchmark_options)
