"""Run configs shared by the ``eegfm`` commands, and the data path they build."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import EEGCorpus, PreprocessConfig, WindowLoader
from ..data.specs import sources_from_spec

__all__ = ["DataConfig", "PretrainModelConfig", "TokenizerModelConfig", "build_loader", "check_loader"]


@dataclass
class DataConfig:
    sources: str = "sample"  # ';'-separated: sample | files:GLOB | bids:ROOT[:subs] | moabb:NAME[:subs] | seed-dv:ROOT ...
    cache_dir: str = "~/.cache/eegfm"  # preprocessed recordings (memory-mapped, reused)
    window_seconds: float = 4.0  # window length
    stride_seconds: float | None = None  # hop between windows (default: window_seconds)
    batch_size: int = 64
    num_threads: int = 2  # threads reading windows
    sfreq: float = 200.0  # the model's sampling rate
    l_freq: float | None = 0.1  # band-pass low edge (Hz)
    h_freq: float | None = 75.0  # band-pass high edge (Hz)
    notch_freq: float | None = None  # line frequency to notch (50/60), with harmonics

    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(sfreq=self.sfreq, l_freq=self.l_freq, h_freq=self.h_freq, notch_freq=self.notch_freq)


@dataclass
class TokenizerModelConfig:
    patch_size: int = 100  # samples per patch (0.5 s at 200 Hz)
    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 10
    code_dim: int = 32
    num_codes: int = 2048  # codebook size K
    decoder_depth: int = 3
    ema_decay: float = 0.99
    dead_code_steps: int = 100  # restart a code unused for this many steps


@dataclass
class PretrainModelConfig:
    embed_dim: int = 200  # patch_size and num_codes come from the tokenizer
    depth: int = 12
    num_heads: int = 10
    position_embedding: str = "mape"  # "mape" | "sincos1d" (the 1-D baseline of the paper's Table 2 ablation)
    strategies: list[str] = field(default_factory=lambda: ["random", "channel", "temporal"])
    random_ratio: float = 0.5
    channel_ratio: float = 0.5
    temporal_ratio: float = 0.5
    symmetric: bool = False
    single_pass: bool = True  # one encoder pass per step, each sample masked by one strategy in turn (~4x cheaper; false: one pass per strategy)


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
