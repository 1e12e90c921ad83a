"""A small model registry: ``create_model("mape_encoder_base")``, ``list_models()``.

Architecture arguments live here; pretrained metadata (the Hub repo a name's weights are
published under) is kept apart in ``hub_id``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

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


_REGISTRY: dict[str, ModelEntry] = {
    "mape_encoder_tiny": ModelEntry(
        MAPEEncoder, dict(embed_dim=64, depth=2, num_heads=4),
        hub_id="eegfm/mape-encoder-tiny", description="D=64, 2 layers, 4 heads: demos and tests",
    ),
    "mape_encoder_small": ModelEntry(
        MAPEEncoder, dict(embed_dim=128, depth=6, num_heads=8),
        hub_id="eegfm/mape-encoder-small", description="D=128, 6 layers, 8 heads (the paper's depth)",
    ),
    "mape_encoder_base": ModelEntry(
        MAPEEncoder, dict(embed_dim=200, depth=12, num_heads=10),
        hub_id="eegfm/mape-encoder-base", description="D=200, 12 layers, 10 heads (LaBraM-base size)",
    ),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, *, pretrained: bool = False, **overrides) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    pretrained : bool
        Load the weights published for ``name`` on the Hugging Face Hub (``hub_id``), or from
        the local cache with ``HF_HUB_OFFLINE=1``.
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
    if pretrained:
        return entry.cls.from_pretrained(entry.hub_id, **overrides)
    return entry.cls(**{**entry.config, **overrides})
