"""eegfm: EEG foundation models that take any montage.

Public API::

    from eegfm import MAPEEncoder, EncoderConfig, proportion_coordinates, pad_recordings
    from eegfm import NeuralTokenizer, MaskedPretrainer, MAPEClassifier
    from eegfm import create_model, list_models
"""

from importlib.metadata import PackageNotFoundError, version

from .data.collate import EEGBatch, pad_recordings
from .hub import ModelLoadError
from .log import set_log_level
from .models.classifier import MAPEClassifier
from .models.config import EncoderConfig
from .models.encoder import EncoderOutput, MAPEEncoder
from .models.pretrainer import MaskedPretrainer
from .models.tokenizer import NeuralTokenizer
from .montage import UnknownChannelError, proportion_coordinates
from .registry import create_model, list_models

try:
    __version__ = version("eegfm")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "EEGBatch",
    "EncoderConfig",
    "EncoderOutput",
    "MAPEClassifier",
    "MAPEEncoder",
    "MaskedPretrainer",
    "ModelLoadError",
    "NeuralTokenizer",
    "UnknownChannelError",
    "__version__",
    "create_model",
    "list_models",
    "pad_recordings",
    "proportion_coordinates",
    "set_log_level",
]

set_log_level(None)  # the "eegfm" logger prints INFO to stderr (EEGFM_LOGGING_LEVEL changes it), as MNE does

