"""eegfm model classes, one file each."""

from .classifier import MAPEClassifier
from .encoder import EncoderOutput, MAPEEncoder
from .pretrainer import MaskedPretrainer, PretrainOutput
from .tokenizer import NeuralTokenizer, TokenizerOutput

__all__ = ["EncoderOutput", "MAPEClassifier", "MAPEEncoder", "MaskedPretrainer", "NeuralTokenizer", "PretrainOutput", "TokenizerOutput"]
