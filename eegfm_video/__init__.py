"""eegfm_video: reconstruct the video a person watched from their EEG (EEGMirror 3.2-3.3).

Install with ``pip install "eegfm[video]"``. This package is the downstream head on top of a
pre-trained :class:`eegfm.MAPEEncoder`: CLIP alignment, a Seq2Seq latent decoder and an
inflated Stable Diffusion UNet. Only the package skeleton exists in this release; the modules
land with the EEG-to-video work (see the project's issue tracker).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eegfm")
except PackageNotFoundError:  # source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
