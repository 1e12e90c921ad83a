"""Deprecated alias of :mod:`eegfm.datasets.paper`, where the paper's dataset loaders now live.

``from eegfm.data.paper_datasets import seed_dv_clips`` keeps working (with a
``DeprecationWarning``) so that code written before the move runs; write
``from eegfm.datasets import seed_dv_clips`` (or ``eegfm.datasets.paper``) instead.
"""

import warnings

from ..datasets import paper

warnings.warn("eegfm.data.paper_datasets moved to eegfm.datasets.paper (or import from eegfm.datasets)",
              DeprecationWarning, stacklevel=2)

__all__ = list(paper.__all__)


def __getattr__(name: str):
    """Every name of :mod:`eegfm.datasets.paper`, read from there."""
    return getattr(paper, name)
