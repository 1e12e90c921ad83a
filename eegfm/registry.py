"""The model registry: architectures, and apart from them the pretrained weights that exist.

Two tables, in the way of timm's model entry points and pretrained configs:

- an **architecture** (:class:`Architecture`) is a model class and the constructor arguments
  of one size of it: ``mape_encoder_{tiny,small,base}``, ``neural_tokenizer_*``,
  ``masked_pretrainer_*``, ``mape_classifier_*`` and, with ``eegfm[video]``,
  ``eeg_alignment_{tiny,base}``. Classes are imported when built, so ``import eegfm`` does
  not import diffusers;
- a **pretrained tag** (:class:`PretrainedTag`) is one set of weights of an architecture:
  where they are (a published Hub repo, or the folder a packaged recipe writes), the
  preprocessing contract they were trained with, a description and a model card. Only
  weights that exist are listed. Today that is ``eegfm_small`` (architecture
  ``mape_encoder_tiny``), built, not downloaded: ``eegfm pretrain --config eegfm-small``
  writes ``runs/eegfm-small/encoder``. No weights are published on the Hub yet.

``create_model(name)`` builds an architecture, or a tag's architecture with the tag's
preprocessing contract; ``create_model(name, pretrained=True)`` loads a tag's weights (an
architecture's first tag, where it has one; a one-line error naming the names that have
weights where it has none). ``list_models()`` lists every name, ``list_models(pretrained=True)``
the tags.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ._validation import did_you_mean

__all__ = ["Architecture", "PretrainedTag", "create_model", "get_pretrained_tag", "list_models"]

log = logging.getLogger("eegfm.registry")


@dataclass(frozen=True)
class Architecture:
    """A model class and the constructor arguments of one of its sizes.

    ``target`` is ``"module:Class"``, imported only when the model is built.
    """

    target: str
    config: dict = field(default_factory=dict)
    description: str = ""

    def model_class(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class PretrainedTag:
    """Metadata of one set of weights: which architecture, where the weights are, how the input was made.

    Exactly one of ``hub_id`` (a published Hugging Face Hub repo) and ``local_dir`` (the
    folder, relative to the working directory, that the packaged ``recipe`` writes) says
    where the weights are. ``preprocessing`` holds the
    :class:`~eegfm.data.PreprocessConfig` fields the weights were trained on; it is passed
    as the constructor's ``preprocessing=`` when the architecture is built from the tag.
    """

    architecture: str
    preprocessing: dict
    description: str
    hub_id: str | None = None
    local_dir: str | None = None
    recipe: str | None = None  # eegfm pretrain --config <recipe> (eegfm/recipes/<recipe>.json)
    card: str | None = None  # the model card, a path in the source repository

    def __post_init__(self):
        if (self.hub_id is None) == (self.local_dir is None):
            raise ValueError(f"a pretrained tag of {self.architecture} needs exactly one of hub_id and local_dir")
        if self.local_dir is not None and self.recipe is None:
            raise ValueError(f"a pretrained tag with local_dir={self.local_dir!r} needs the recipe that builds it")


# Sizes shared by every family: LaBraM-base is "base"; "tiny" is the size of eegfm-small.
_SIZES = {
    "tiny": (dict(embed_dim=64, depth=2, num_heads=4), "D=64, 2 layers, 4 heads: demos, tests, eegfm-small"),
    "small": (dict(embed_dim=128, depth=6, num_heads=8), "D=128, 6 layers, 8 heads (the paper's depth)"),
    "base": (dict(embed_dim=200, depth=12, num_heads=10), "D=200, 12 layers, 10 heads (LaBraM-base size)"),
}
_FAMILIES = {  # name prefix: (target, how the size enters the constructor, what it is)
    "mape_encoder": ("eegfm.models.encoder:MAPEEncoder", lambda size: size, "MAPE encoder"),
    "neural_tokenizer": ("eegfm.models.tokenizer:NeuralTokenizer", lambda size: size,
                         "neural tokenizer (its own encoder of this size, 2048 codes)"),
    "masked_pretrainer": ("eegfm.models.pretrainer:MaskedPretrainer", lambda size: size,
                          "masked pre-trainer (encoder of this size + code head)"),
    "mape_classifier": ("eegfm.models.classifier:MAPEClassifier", lambda size: dict(encoder=size),
                        "classifier (encoder of this size + mean pooling + linear head, 2 outputs)"),
}
_ARCHITECTURES: dict[str, Architecture] = {
    f"{family}_{size}": Architecture(target, to_config(dims), f"{what}, {about}")
    for family, (target, to_config, what) in _FAMILIES.items()
    for size, (dims, about) in _SIZES.items()
}
# EEG-to-video alignment (eegfm[video]): SD 1.x CLIP text (77 x 768) and SEED-DV latents (6 x 4 x 36 x 64)
_ARCHITECTURES["eeg_alignment_tiny"] = Architecture(
    "eegfm_video.alignment:EEGAlignment",
    dict(encoder_config=_SIZES["tiny"][0], semantic_decoder_config=dict(encoder_dim=64, hidden_dim=256),
         seq2seq_config=dict(encoder_dim=64, d_model=64, num_layers=2, num_heads=4)),
    "EEG-to-video alignment, tiny encoder and decoders: demos and tests (needs eegfm[video])",
)
_ARCHITECTURES["eeg_alignment_base"] = Architecture(
    "eegfm_video.alignment:EEGAlignment",
    dict(encoder_config=_SIZES["base"][0], semantic_decoder_config={}, seq2seq_config={}),
    "EEG-to-video alignment of EEGMirror: base encoder, semantic decoder (1024 wide), "
    "6-layer Seq2Seq latent decoder (needs eegfm[video])",
)

_PRETRAINED: dict[str, PretrainedTag] = {
    "eegfm_small": PretrainedTag(
        architecture="mape_encoder_tiny",
        preprocessing=dict(sfreq=200.0, l_freq=0.1, h_freq=75.0, notch_freq=None),
        description="in-domain masked-spectrum pre-training on the 19 Mental Arithmetic training subjects "
                    "(1000 steps); built locally by `eegfm pretrain --config eegfm-small`",
        local_dir="runs/eegfm-small/encoder", recipe="eegfm-small",
        card="benchmarks/results/eegfm_small/MODEL_CARD.md",
    ),
}


def list_models(pretrained: bool = False) -> list[str]:
    """Names accepted by :func:`create_model`, sorted.

    Parameters
    ----------
    pretrained : bool
        Only the names that have weights (the pretrained tags).

    Returns
    -------
    list of str
    """
    return sorted(_PRETRAINED) if pretrained else sorted([*_ARCHITECTURES, *_PRETRAINED])


def get_pretrained_tag(name: str) -> PretrainedTag | None:
    """The pretrained metadata ``create_model(name, pretrained=True)`` loads; None when ``name`` has no weights.

    A tag gives itself; an architecture gives its first tag.
    """
    return _resolve(name)[1]


def create_model(name: str, *, pretrained: bool = False, checkpoint_path: str | Path | None = None,
                 **overrides) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`: an architecture (``"mape_encoder_base"``) or a pretrained
        tag (``"eegfm_small"``: its architecture with its preprocessing contract).
    pretrained : bool
        Load the weights of the tag (of an architecture's first tag): from its ``local_dir``
        (built by its recipe, e.g. ``runs/eegfm-small/encoder``) or its Hub repo.
    checkpoint_path : str or Path, optional
        A ``save_pretrained`` folder to load instead (implies ``pretrained``).
    **overrides
        Constructor arguments replacing the registered ones (e.g. ``patch_size=200``).

    Returns
    -------
    torch.nn.Module
    """
    architecture, tag = _resolve(name)
    cls = architecture.model_class()
    if checkpoint_path is not None:
        return cls.from_pretrained(checkpoint_path, **overrides)
    if pretrained:
        return _load(name, cls, tag, overrides)
    contract = {} if tag is None else {"preprocessing": dict(tag.preprocessing)}
    return cls(**{**architecture.config, **contract, **overrides})


def _resolve(name: str) -> tuple[Architecture, PretrainedTag | None]:
    """The architecture of ``name`` and its pretrained tag (a tag's own, an architecture's first, or None)."""
    if name in _PRETRAINED:
        tag = _PRETRAINED[name]
        return _ARCHITECTURES[tag.architecture], tag
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name], next((t for t in _PRETRAINED.values() if t.architecture == name), None)
    raise ValueError(f"Unknown model {name!r}.{did_you_mean(name, list_models())} Available: {list_models()}")


def _load(name: str, cls: type, tag: PretrainedTag | None, overrides: dict) -> nn.Module:
    if tag is None:
        raise ValueError(f"{name} has no pretrained weights; names with weights: {list_models(pretrained=True)} "
                         "(or pass checkpoint_path= a save_pretrained folder)")
    tag_name = next(k for k, v in _PRETRAINED.items() if v is tag)
    if tag.local_dir is not None:
        if not Path(tag.local_dir).is_dir():
            raise FileNotFoundError(
                f"{tag_name} has no published weights and {tag.local_dir} does not exist here: build them with "
                f"`eegfm pretrain --config {tag.recipe}` (writes {tag.local_dir}), or pass checkpoint_path=")
        model = cls.from_pretrained(tag.local_dir, **overrides)
    else:
        model = cls.from_pretrained(tag.hub_id, **overrides)
    _check_contract(tag_name, tag, model)
    return model


def _check_contract(tag_name: str, tag: PretrainedTag, model: nn.Module) -> None:
    """Log a warning when the loaded weights were trained with another preprocessing than the tag's."""
    from .data.preprocessing import PreprocessConfig

    loaded = getattr(model, "preprocessing", None)
    if not isinstance(loaded, PreprocessConfig):
        return
    expected = PreprocessConfig.from_dict(tag.preprocessing).to_dict()
    differs = {k: (v, expected[k]) for k, v in loaded.to_dict().items() if expected.get(k) != v}
    if differs:
        log.warning("%s: the loaded weights were preprocessed with %s, not the tag's %s; preprocess inputs as "
                    "model.preprocessing says", tag_name, {k: v[0] for k, v in differs.items()},
                    {k: v[1] for k, v in differs.items()})
