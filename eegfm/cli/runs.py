"""Run configs shared by the ``eegfm`` commands, the data path they build, and their inputs.

:func:`resolve_sources` reads a bare file, folder or glob in ``--data.sources`` as a
``files:`` source; :func:`load_pretrained` loads a ``--tokenizer`` / ``--pretrained`` model
with errors that say what to do when it is not there.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..data import EEGCorpus, PreprocessConfig, WindowLoader
from ..data.specs import SOURCE_KINDS, sources_from_spec
from ..models.config import EncoderConfig
from .overrides import field_help

__all__ = ["EEG_SUFFIXES", "DataConfig", "EncoderSettings", "PretrainModelConfig", "TokenizerModelConfig",
           "build_loader", "check_loader", "check_pretrained_source", "load_pretrained", "resolve_sources"]

#: Endings of the EEG files MNE reads that a folder given to ``--data.sources`` contributes.
EEG_SUFFIXES = (".edf", ".bdf", ".gdf", ".fif", ".vhdr", ".set", ".cnt")


@dataclass
class DataConfig:
    sources: str = "sample"  # ';'-separated: sample | files:GLOB | bids:ROOT[:subs] | moabb:NAME[:subs] | ... | a file/folder
    cache_dir: str = "~/.cache/eegfm"  # preprocessed recordings (memory-mapped, reused)
    window_seconds: float = 4.0  # window length
    stride_seconds: float | None = None  # hop between windows (default: window_seconds)
    batch_size: int = 64  # windows per batch (per process under torchrun)
    num_threads: int = 2  # threads reading windows
    sfreq: float = 200.0  # the model's sampling rate
    l_freq: float | None = 0.1  # band-pass low edge (Hz)
    h_freq: float | None = 75.0  # band-pass high edge (Hz)
    notch_freq: float | None = None  # line frequency to notch (50/60), with harmonics

    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(sfreq=self.sfreq, l_freq=self.l_freq, h_freq=self.h_freq, notch_freq=self.notch_freq)


#: EncoderConfig fields the data settings give (--data.sfreq and the band, notch...), not --model.*.
DATA_FIELDS = ("sfreq", "preprocessing")


class _EncoderSettingsBase:
    """Turns the flat command-line settings into an :class:`~eegfm.EncoderConfig` and the model's own arguments."""

    def encoder_config(self, preprocessing: PreprocessConfig) -> EncoderConfig:
        """The :class:`~eegfm.EncoderConfig` of these settings, with the rate and contract of ``preprocessing``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(EncoderSettings)}
        return EncoderConfig(**values, sfreq=preprocessing.sfreq, preprocessing=preprocessing.to_dict())

    def model_arguments(self) -> dict:
        """The settings that are not encoder settings: the model's own constructor arguments."""
        encoder = {f.name for f in dataclasses.fields(EncoderSettings)}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in encoder}


def _encoder_settings() -> type:
    hints = typing.get_type_hints(EncoderConfig)
    fields = [(f.name, hints[f.name], field(default=f.default, metadata={"help": field_help(EncoderConfig, f.name)}))
              for f in dataclasses.fields(EncoderConfig) if f.name not in DATA_FIELDS]
    doc = ("Every EncoderConfig field but sfreq and preprocessing (--data.* give them), one setting each "
           "(--model.<field>), with EncoderConfig's defaults and help.")
    return dataclasses.make_dataclass("EncoderSettings", fields, bases=(_EncoderSettingsBase,),
                                      namespace={"__doc__": doc, "__module__": __name__})


#: The encoder settings of a command (``--model.qkv_bias=false``): generated from
#: :class:`~eegfm.EncoderConfig`, so the command line always sets every encoder field.
EncoderSettings = _encoder_settings()


@dataclass
class TokenizerModelConfig(EncoderSettings):
    code_dim: int = 32  # width of the l2-normalised code space
    num_codes: int = 2048  # codebook size K
    decoder_depth: int = 3  # Transformer blocks of the Fourier-amplitude decoder
    ema_decay: float = 0.99  # decay of the codebook's moving averages
    dead_code_steps: int = 100  # restart a code unused for this many steps
    kmeans_iters: int = 10  # iterations of the k-means that initialises the codebook on the first batch
    commitment_weight: float = 1.0  # weight of the commitment loss


@dataclass
class PretrainModelConfig(EncoderSettings):
    patch_size: int | None = None  # samples per patch (default: the tokenizer's; 100, i.e. 0.5 s at 200 Hz, without one)
    target: str = "codes"  # masked tokens predict: "codes" (the --tokenizer's) | "spectrum" (their patch's z-scored Fourier amplitudes; no tokenizer) | "signal" (their patch's samples, z-scored per patch; no tokenizer)
    strategies: list[str] = field(default_factory=lambda: ["random", "channel", "temporal"])  # masks, comma-separated
    random_ratio: float = 0.5  # share of tokens the random mask hides
    channel_ratio: float = 0.5  # share of channels the channel mask hides
    temporal_ratio: float = 0.5  # share of time steps the temporal mask hides
    symmetric: bool = False  # also predict the complement of each mask (LaBraM's symmetric pass)
    single_pass: bool = True  # one encoder pass per step, each sample masked by one strategy in turn (~4x cheaper; false: one pass per strategy)
    decoder_depth: int = 0  # 0: the encoder sees every token, masked ones as the mask embedding (the paper); >= 1: it sees only the visible ones and a decoder of this many blocks predicts the masked ones (masked-autoencoder style)
    visible_blocks: int = 0  # >= 1 (not with decoder_depth): the first this many encoder blocks see only the visible tokens, the masked ones join before the next block (no decoder, no weights dropped)


def build_loader(data: DataConfig, patch_size: int, seed: int, *, progress: bool = True):
    """Sources -> cached corpus -> windows -> token-bucketed :class:`WindowLoader`.

    Returns
    -------
    (EEGCorpus, WindowDataset, WindowLoader)
    """
    corpus = EEGCorpus(sources_from_spec(data.sources), data.cache_dir, data.preprocess_config(), progress=progress)
    if len(corpus) == 0:
        raise RuntimeError(f"no usable recordings in --data.sources={data.sources!r}; skipped: {corpus.skipped}")
    windows = corpus.windows(data.window_seconds, data.stride_seconds)
    if len(windows) == 0:
        raise RuntimeError(f"every recording is shorter than --data.window_seconds={data.window_seconds}")
    loader = corpus.loader(windows, data.batch_size, patch_size, seed=seed, num_threads=data.num_threads)
    return corpus, windows, loader


def check_loader(loader: WindowLoader) -> None:
    if len(loader) == 0:
        raise RuntimeError("the data gives no complete batch: lower --data.batch_size or add recordings")


# ---------------------------------------------------------------- --data.sources
def _syntax_error(key: str, part: str) -> ValueError:
    return ValueError(f"--{key}: {part!r} is neither a source nor an existing EEG file or folder; write "
                      "kind:argument, e.g. files:/data/*.edf, bids:/data/my_bids, moabb:BNCI2014_001 or sample "
                      f"(kinds: {', '.join(SOURCE_KINDS)}; ';' between sources)")


def _folder_sources(folder: Path, text: str, key: str) -> str:
    """``files:`` sources for the EEG files directly in ``folder`` (one per file ending)."""
    endings = sorted({p.suffix for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EEG_SUFFIXES})
    if endings:
        return ";".join(f"files:{Path(text) / ('*' + ending)}" for ending in endings)
    if (folder / "dataset_description.json").is_file():
        hint = f"it is a BIDS dataset: write bids:{text}"
    else:
        hint = f"for files in subfolders write files:{Path(text) / '*' / '*.edf'}"
    raise FileNotFoundError(f"--{key}: the folder {text} holds no EEG files ({', '.join(EEG_SUFFIXES)}); {hint}")


def _resolve_one(part: str, key: str) -> str:
    if part.partition(":")[0].lower() in SOURCE_KINDS:
        return part
    path = Path(part).expanduser()
    if path.is_dir():
        return _folder_sources(path, part, key)
    if path.is_file():
        if path.suffix.lower() not in EEG_SUFFIXES:
            raise ValueError(f"--{key}: {part} is not an EEG file MNE reads ({', '.join(EEG_SUFFIXES)}); name its "
                             f"kind, e.g. openbci:{part} (OpenBCI GUI text) or arff:{part}:SFREQ")
        return f"files:{part}"
    if any(c in part for c in "*?[") and glob.glob(str(path)):
        return f"files:{part}"
    raise _syntax_error(key, part)


def resolve_sources(spec: str, key: str = "data.sources") -> str:
    """``spec`` with each bare path read as a ``files:`` source.

    A file becomes ``files:FILE``, a glob that matches ``files:GLOB``, and a folder one
    ``files:FOLDER/*.ext`` per EEG file ending (:data:`EEG_SUFFIXES`) found directly in it.

    Parameters
    ----------
    spec : str
        ``;``-separated sources (``eegfm.data.specs``) or paths.
    key : str
        The setting, for errors.

    Raises
    ------
    ValueError, FileNotFoundError
        One-line errors for a part that is neither a source nor an existing EEG file or folder.
    """
    parts = [part.strip() for part in spec.split(";") if part.strip()]
    return ";".join(_resolve_one(part, key) for part in parts) if parts else spec


# ---------------------------------------------------------------- --tokenizer / --pretrained
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").upper() in {"1", "ON", "YES", "TRUE"}


def check_pretrained_source(source: str, *, key: str, remedy: str) -> None:
    """Raise a one-line FileNotFoundError when ``source`` is neither a folder nor shaped like a Hub repo id.

    A missing ``owner/name`` is only found out by :func:`load_pretrained` (it asks the Hub).
    """
    if not Path(source).expanduser().is_dir() and not _REPO_ID.match(source):
        raise FileNotFoundError(f"--{key}={source}: no such folder; {remedy}")


def load_pretrained(cls, source: str, *, key: str, remedy: str, **kwargs):
    """``cls.from_pretrained(source, **kwargs)``, with a one-line error when ``source`` is not there.

    Parameters
    ----------
    cls : type
        A model class with ``from_pretrained`` (``NeuralTokenizer``, ``MAPEClassifier``).
    source : str
        A local folder, or a Hub repo id ``owner/name``.
    key : str
        The setting (``"tokenizer"``), for errors.
    remedy : str
        What to do when it is missing, e.g. ``"train one with `eegfm tokenizer` first"``.

    Raises
    ------
    FileNotFoundError
        ``source`` is not a folder, and not shaped like a repo id or not found on the Hub.
    """
    from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError

    from ..hub import ModelLoadError

    path = Path(source).expanduser()
    if path.is_dir():
        return cls.from_pretrained(path, **kwargs)
    check_pretrained_source(source, key=key, remedy=remedy)
    try:
        return cls.from_pretrained(source, **kwargs)
    except ModelLoadError as err:
        cause = err.__cause__
        if isinstance(cause, RepositoryNotFoundError):
            where = "not found on the Hub"
        elif isinstance(cause, LocalEntryNotFoundError):
            where = "not found on the Hub offline" if _offline() else "the Hub could not be reached"
        else:
            raise
        raise FileNotFoundError(f"--{key}={source}: no such local folder (and {where}); {remedy}") from err
