"""eegfm model classes, one file each, all built on one :class:`EncoderConfig` (``config``).

The same classifier with braindecode's model signature, for ``EEGClassifier`` and MOABB, is
``eegfm.finetune.braindecode.EEGMirror`` (the one module that imports braindecode).
"""

from .classifier import MAPEClassifier
from .config import EncoderConfig
from .encoder import EncoderOutput, MAPEEncoder
from .pretrainer import MaskedPretrainer, PretrainOutput
from .tokenizer import NeuralTokenizer, TokenizerOutput

__all__ = ["EncoderConfig", "EncoderOutput", "MAPEClassifier", "MAPEEncoder", "MaskedPretrainer", "NeuralTokenizer", "PretrainOutput", "TokenizerOutput"]
