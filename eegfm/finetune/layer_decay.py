"""Layer-wise learning-rate decay (BEiT / LaBraM fine-tuning): deeper layers learn faster.

Layer ``l`` of a model with ``L`` layer ids (0 = input embeddings, ``L - 1`` = head) gets
``lr * layer_decay ** (L - 1 - l)``: the head learns at ``lr``, each block below it at a
``layer_decay`` fraction of the block above.
"""

from __future__ import annotations

from torch import nn

__all__ = ["layer_decay_groups"]


def layer_decay_groups(model: nn.Module, *, weight_decay: float, layer_decay: float,
                       no_weight_decay: set[str] | None = None) -> list[dict]:
    """Optimizer parameter groups with per-layer learning-rate scales.

    Parameters
    ----------
    model : nn.Module
        Has ``layer_id(name) -> int`` and ``num_layers`` (e.g. :class:`eegfm.MAPEClassifier`).
    weight_decay : float
        Applied to matrices; never to biases, norms, other 1-d parameters or names in
        ``no_weight_decay`` (default: ``model.no_weight_decay()`` when it exists).
    layer_decay : float
        In (0, 1]; 1 gives every layer the same rate.

    Returns
    -------
    list of dict
        One group per (layer, decay / no decay) with trainable parameters: ``params``,
        ``weight_decay``, ``lr_scale`` (multiplies the scheduled rate; see
        :func:`eegfm.training.schedule.make_scheduler`), ``layer`` and ``names``.
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay=}")
    if not callable(getattr(model, "layer_id", None)) or not hasattr(model, "num_layers"):
        raise TypeError(f"{type(model).__name__} has no layer_id(name)/num_layers; layer-wise decay needs both")
    if no_weight_decay is None:
        no_weight_decay = set(model.no_weight_decay()) if callable(getattr(model, "no_weight_decay", None)) else set()
    last = model.num_layers - 1
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = model.layer_id(name)
        decay = not (param.ndim < 2 or name.endswith(".bias") or name in no_weight_decay)
        group = groups.setdefault((layer, decay), {
            "params": [], "names": [], "layer": layer, "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": layer_decay ** (last - layer),
        })
        group["params"].append(param)
        group["names"].append(name)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return [groups[key] for key in sorted(groups)]
