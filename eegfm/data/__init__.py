"""EEG data: any source -> preprocessed, cached recordings -> windows -> mixed-montage batches.

See :class:`EEGCorpus` for the whole path; the pieces are usable on their own.
"""

from .cache import CacheCorruptError, CacheEntry, RecordingCache
from .code_cache import CodedWindows, cache_codes, tokenizer_fingerprint
from .collate import EEGBatch, pad_recordings
from .corpus import EEGCorpus
from .loader import WindowLoader
from .preprocessing import PreprocessConfig, PreprocessError, preprocess
from .recording import Recording
from .sampler import TokenBucketBatchSampler
from .sources import (
    RecordingSource,
    file_fingerprint,
    from_arff,
    from_bids,
    from_braindecode,
    from_eegbci,
    from_files,
    from_moabb,
    from_openbci,
    from_raw,
    infer_channel_types,
)
from .text_formats import read_arff, read_openbci_txt
from .windows import WindowDataset, collate_windows

__all__ = [
    "CodedWindows", "cache_codes", "tokenizer_fingerprint",
    "CacheCorruptError", "CacheEntry", "EEGBatch", "EEGCorpus", "PreprocessConfig", "PreprocessError",
    "Recording", "RecordingCache", "RecordingSource", "TokenBucketBatchSampler", "WindowDataset", "WindowLoader",
    "collate_windows", "file_fingerprint", "from_arff", "from_bids", "from_braindecode", "from_eegbci",
    "from_files", "from_moabb", "from_openbci", "from_raw", "infer_channel_types", "pad_recordings", "preprocess",
    "read_arff", "read_openbci_txt",
]
