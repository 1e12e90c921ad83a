"""eegfm model classes, one file each."""

from .classifier import MAPEClassifier
from .config import EncoderConfig
from .encoder import EncoderOutput, MAPEEncoder
from .pretrainer import MaskedPretrainer, PretrainOutput
from .tokenizer import NeuralTokenizer, TokenizerOutput

__all__ = ["EncoderConfig", "EncoderOutput", "MAPEClassifier", "MAPEEncoder", "MaskedPretrainer", "NeuralTokenizer", "PretrainOutput", "TokenizerOutput"]
