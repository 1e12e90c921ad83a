"""A small model registry: ``create_model("mape_encoder_base")``, ``list_models()``.

Architecture arguments live here; pretrained metadata (the Hub repo a name's weights are
published under, or the local folder its recipe writes) is kept apart in ``hub_id`` /
``local_dir`` / ``recipe``.

``eegfm_small`` is built, not downloaded: ``eegfm pretrain --config eegfm-small`` (the recipe
``eegfm/recipes/eegfm-small.json``) rebuilds its weights from the shared EEG data into
``runs/eegfm-small/encoder``, which ``create_model("eegfm_small", pretrained=True)`` loads.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from .models.encoder import MAPEEncoder

__all__ = ["ModelEntry", "create_model", "list_models"]


@dataclass(frozen=True)
class ModelEntry:
    """A named configuration of a model class."""

    cls: type
    config: dict = field(default_factory=dict)
    hub_id: str | None = None  # Hub repo of the pretrained weights for this name
    description: str = ""
    local_dir: str | None = None  # folder the recipe writes (relative to the working directory)
    recipe: str | None = None  # name of the packaged recipe that builds the weights (eegfm/recipes/<recipe>.json)


_REGISTRY: dict[str, ModelEntry] = {
    "mape_encoder_tiny": ModelEntry(
        MAPEEncoder, dict(embed_dim=64, depth=2, num_heads=4),
        hub_id="eegfm/mape-encoder-tiny", description="D=64, 2 layers, 4 heads: demos and tests",
    ),
    "mape_encoder_small": ModelEntry(
        MAPEEncoder, dict(embed_dim=128, depth=6, num_heads=8),
        hub_id="eegfm/mape-encoder-small", description="D=128, 6 layers, 8 heads (the paper's depth)",
    ),
    "eegfm_small": ModelEntry(
        MAPEEncoder, dict(patch_size=100, embed_dim=64, depth=2, num_heads=4),
        local_dir="runs/eegfm-small/encoder", recipe="eegfm-small",
        description="D=64, 2 layers, 4 heads, masked-spectrum pre-training on 3 h of Mental Arithmetic + "
                    "PhysioNet MI training subjects (eegfm pretrain --config eegfm-small)",
    ),
    "mape_encoder_base": ModelEntry(
        MAPEEncoder, dict(embed_dim=200, depth=12, num_heads=10),
        hub_id="eegfm/mape-encoder-base", description="D=200, 12 layers, 10 heads (LaBraM-base size)",
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, *, pretrained: bool = False, checkpoint_path: str | Path | None = None,
                 **overrides) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    pretrained : bool
        Load the weights for ``name``: from ``checkpoint_path`` when given, else from the folder
        its recipe writes (``local_dir``, e.g. ``runs/eegfm-small/encoder``) when it exists, else
        from the Hugging Face Hub (``hub_id``; the local cache with ``HF_HUB_OFFLINE=1``).
    checkpoint_path : str or Path, optional
        A ``save_pretrained`` folder to load instead (implies ``pretrained``).
    **overrides
        Constructor arguments replacing the registered ones (e.g. ``patch_size=200``).

    Returns
    -------
    torch.nn.Module
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Available: {list_models()}")
    entry = _REGISTRY[name]
    if checkpoint_path is not None:
        return entry.cls.from_pretrained(checkpoint_path, **overrides)
    if pretrained:
        if entry.local_dir and Path(entry.local_dir).is_dir():
            return entry.cls.from_pretrained(entry.local_dir, **overrides)
        if entry.hub_id is None:
            raise FileNotFoundError(
                f"{name} has no published weights and {entry.local_dir} does not exist here: build them with "
                f"`eegfm pretrain --config {entry.recipe}` (writes {entry.local_dir}), or pass checkpoint_path=")
        return entry.cls.from_pretrained(entry.hub_id, **overrides)
    return entry.cls(**{**entry.config, **overrides})
