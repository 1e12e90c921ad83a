"""eegfm model classes, one file each."""

from .encoder import EncoderOutput, MAPEEncoder

__all__ = ["EncoderOutput", "MAPEEncoder"]
