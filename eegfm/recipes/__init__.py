"""Packaged pre-training recipes: ``eegfm pretrain --config <name>``.

A recipe is the ``run_config.json`` of the run that built a published model (only the settings
that matter; every other setting keeps its default). ``eegfm-small.json`` rebuilds the
``eegfm_small`` registry entry (``runs/eegfm-small/encoder``) from the shared EEG data: its
``--data.sources`` point at ``../shared/data`` relative to the working directory, so run it
from the repository root, or give your own copy with ``--data.sources=...``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["list_recipes", "recipe_path"]


def list_recipes() -> list[str]:
    """Names accepted by :func:`recipe_path` (and by ``--config``), sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def recipe_path(name: str) -> Path:
    """The packaged JSON file of recipe ``name`` (e.g. ``"eegfm-small"``)."""
    if name not in list_recipes():
        raise FileNotFoundError(f"no recipe named {name!r}; packaged recipes: {', '.join(list_recipes())}")
    return Path(str(resources.files(__name__) / f"{name}.json"))
