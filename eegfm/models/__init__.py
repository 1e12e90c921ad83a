"""eegfm model classes, one file each."""

from .encoder import EncoderOutput, MAPEEncoder
from .pretrainer import MaskedPretrainer, PretrainOutput
from .tokenizer import NeuralTokenizer, TokenizerOutput

__all__ = ["EncoderOutput", "MAPEEncoder", "MaskedPretrainer", "NeuralTokenizer", "PretrainOutput", "TokenizerOutput"]
