"""The fine-tuning strategies of :func:`eegfm.finetune.finetune` besides full fine-tuning.

``FinetuneConfig.mode`` picks one (the names OpenEEGBench / REVE users know in brackets):

- ``"full"``: every weight, layer-wise learning-rate decay (``full_finetune``);
- ``"linear"``: frozen encoder, the linear head trained by gradient (OpenEEGBench's ``frozen``);
- ``"lora"``: low-rank adapters (`peft <https://pypi.org/project/peft/>`_) on the encoder's
  attention linear layers (``lora_targets="attention+mlp"``: and its MLP ones), the head and the
  attention pool (``pooling="attention"``) trained fully, the rest frozen (``lora``). The
  adapters are merged into the weights at the end (:func:`add_lora`, :func:`merge_lora`): the
  result is a plain :class:`eegfm.MAPEClassifier`, which ``save_pretrained`` /
  ``from_pretrained`` as any other;
- ``"frozen"``: no gradient training at all. The pooled features of the frozen encoder
  (``model.forward_features``) are standardised and a logistic regression (classification) or
  ridge regression (regression) is fit on them; its inverse regularisation ``C`` / penalty
  ``alpha`` is chosen by cross-validation on the training set, and the fitted linear map is
  written into the classifier's head (:func:`fit_frozen`), so ``model(x, ...)`` gives the
  fitted logits (OpenEEGBench's ``ridge_probe``, with a cross-validated classifier instead of a
  closed-form ridge for classes).

The cross-validation of ``"frozen"``: with at least two distinct ``train.groups`` (subjects),
``GroupKFold`` over them (up to 4 folds), so ``C`` is chosen on subjects the fit did not see,
as the cross-subject evaluation it is meant for; otherwise (one group, e.g. ``LabeledEEG``
without ``groups``) a shuffled (stratified) ``KFold`` over examples (up to 4 folds), which is
optimistic when windows of one recording are correlated. Each candidate is scored by
``FinetuneConfig.monitor`` (balanced accuracy by default; MSE for regression), averaged over
the folds; ties go to the stronger regularisation. With too few examples for two folds, the
middle value of the grid is used without cross-validation. scikit-learn is imported only then
(``pip install scikit-learn``).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import torch
from torch import nn

__all__ = ["ALPHA_GRID", "C_GRID", "LORA_TARGETS", "add_lora", "fit_frozen", "frozen_features", "lora_target_names",
           "merge_lora"]

#: inverse regularisation strengths tried by mode="frozen" for classification (those of benchmarks/feature_probe.py)
C_GRID = tuple(float(c) for c in np.logspace(-4, 1, 8))
#: ridge penalties tried by mode="frozen" for regression
ALPHA_GRID = tuple(float(a) for a in np.logspace(-2, 5, 8))
#: FinetuneConfig.lora_targets -> the linear layers of every Transformer block that get adapters
LORA_TARGETS = {"attention": ("attn.qkv", "attn.proj"), "attention+mlp": ("attn.qkv", "attn.proj", "mlp.0", "mlp.3")}
_ABSENT_CLASS_LOGIT = -1e4  # bias of a class absent from the training set: probability 0
_MINIMISED = ("mse", "mae")


# ---------------------------------------------------------------------------------- LoRA
def _import_peft():
    try:
        import peft
    except ImportError:
        raise ImportError("mode='lora' needs peft: pip install peft (or pip install 'eegfm[finetune]')") from None
    return peft


def lora_target_names(model: nn.Module, targets: str = "attention") -> list[str]:
    """Full names of the encoder's linear layers that get LoRA adapters (``LORA_TARGETS[targets]``
    in every ``encoder.blocks.<i>``); a one-line TypeError when the model has none."""
    if targets not in LORA_TARGETS:
        raise ValueError(f"lora_targets must be one of {tuple(LORA_TARGETS)}, got {targets!r}")
    pattern = re.compile(r"encoder\.blocks\.\d+\.(" + "|".join(re.escape(t) for t in LORA_TARGETS[targets]) + ")")
    names = [n for n, m in model.named_modules() if pattern.fullmatch(n) and isinstance(m, nn.Linear)]
    if not names:
        raise TypeError(f"mode='lora': {type(model).__name__} has no linear layers named encoder.blocks.<i>."
                        f"{{{','.join(LORA_TARGETS[targets])}}} to adapt (an eegfm.MAPEClassifier has them)")
    return names


def add_lora(model: nn.Module, *, rank: int = 16, alpha: float = 32.0, dropout: float = 0.1,
             targets: str = "attention", seed: int = 0):
    """Put LoRA adapters on ``model``'s encoder in place; freeze everything but them, the head and the pool.

    Parameters
    ----------
    model : nn.Module
        An :class:`eegfm.MAPEClassifier` (or a model with ``encoder.blocks`` and a ``head``).
    rank, alpha, dropout : int, float, float
        ``r``, ``lora_alpha`` (the update is scaled by ``alpha / rank``) and ``lora_dropout`` of
        ``peft.LoraConfig``. OpenEEGBench's defaults: 16, 32, 0.1.
    targets : {"attention", "attention+mlp"}
        Which linear layers of each block (:data:`LORA_TARGETS`).
    seed : int
        Seeds the adapters' initialisation (the global RNG is left as it was).

    Returns
    -------
    peft.PeftModel
        The wrapper; ``model`` itself now runs with the adapters (its linear layers are replaced
        in place). Give it to :func:`merge_lora` after training.
    """
    peft = _import_peft()
    names = lora_target_names(model, targets)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wrapper = peft.get_peft_model(model, config)  # freezes every non-adapter weight
    for name in ("head", "pool"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            module.requires_grad_(True)
    return wrapper


def merge_lora(wrapper, *, merge: bool = True) -> nn.Module:
    """Fold the adapters of :func:`add_lora` into the weights (``merge=False``: drop them) and
    give back the original model object, with plain ``nn.Linear`` layers again."""
    return wrapper.merge_and_unload() if merge else wrapper.unload()


# ---------------------------------------------------------------------------------- frozen features
def _import_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError("mode='frozen' needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'eegfm[finetune]')") from None


@torch.no_grad()
def frozen_features(model: nn.Module, data, *, batch_size: int = 128, device=None) -> np.ndarray:
    """``model.forward_features`` of every example in eval mode, (N, num_features) float64."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for eeg, _ in data.batches(batch_size):
            eeg = eeg.to(device)
            out.append(model.forward_features(eeg.x, eeg.positions, channel_mask=eeg.channel_mask,
                                              n_times=eeg.n_times).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).double().numpy()


def _estimator(task: str, value: float, balance: bool, seed: int):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        return make_pipeline(StandardScaler(), LogisticRegression(C=value, class_weight="balanced" if balance else None,
                                                                  max_iter=5000, random_state=seed))
    return make_pipeline(StandardScaler(), Ridge(alpha=value))


def _linear_map(pipeline, task: str, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) with ``features @ W.T + b`` = the pipeline's decision function, one row per model output.

    Classification: logits whose softmax is ``predict_proba`` (binary: ``[-d/2, d/2]`` for the
    decision function ``d``); classes absent from the fit get weight 0 and a very low bias.
    """
    scaler, est = pipeline[0], pipeline[-1]
    coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
    if task == "classification":
        classes = [int(c) for c in est.classes_]
        W = np.zeros((n_outputs, coef.shape[1]))
        b = np.full(n_outputs, _ABSENT_CLASS_LOGIT)
        if len(classes) == 2:  # one decision function d: logits [-d/2, +d/2]
            rows, biases = [-coef[0] / 2, coef[0] / 2], [-intercept[0] / 2, intercept[0] / 2]
        else:
            rows, biases = list(coef), list(intercept)
        for c, w, bias in zip(classes, rows, biases):
            W[c], b[c] = w, bias
    else:
        W, b = coef, intercept
    # undo the standardisation: (f - mean) / scale
    W = W / scaler.scale_[None, :]
    b = b - W @ scaler.mean_
    return W, b


def _folds(labels: np.ndarray, groups: np.ndarray, task: str, seed: int) -> tuple[list, str]:
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    groups = np.asarray(groups).astype(str)
    n_groups = len(set(groups.tolist()))
    if n_groups >= 2:
        k = min(4, n_groups)
        return list(GroupKFold(n_splits=k).split(labels, labels, groups)), f"GroupKFold({k}) over train.groups"
    if task == "classification":
        counts = np.bincount(labels)
        k = min(4, int(counts[counts > 0].min()))
        if k >= 2:
            return (list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(labels, labels)),
                    f"StratifiedKFold({k}) over examples (one group)")
    elif len(labels) >= 4:
        k = min(4, len(labels) // 2)
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(labels)), f"KFold({k}) over examples"
    return [], "none (too few examples for two folds)"


def _score(task: str, monitor: str, y: np.ndarray, outputs: np.ndarray) -> float:
    from .metrics import classification_report, regression_report

    with warnings.catch_warnings():  # a held-out fold of one class: AUROC is NaN (an empty nanmean), not news
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y, outputs) if task == "classification" else regression_report(y, outputs)
    return float(report[monitor])


def fit_frozen(model: nn.Module, train, *, task: str = "classification", monitor: str = "balanced_accuracy",
               balance_classes: bool = True, batch_size: int = 128, seed: int = 0, device=None) -> dict:
    """Fit a standardised linear read-out on the frozen features and write it into ``model.head``.

    Parameters
    ----------
    model : nn.Module
        Has ``forward_features`` and a linear ``head`` reading those features (e.g.
        :class:`eegfm.MAPEClassifier`; its dropout before the head is inactive in eval mode).
        Only ``model.head`` changes.
    train : LabeledEEG
    task : {"classification", "regression"}
        Logistic regression (``class_weight="balanced"`` when ``balance_classes``) over
        :data:`C_GRID`, or ridge regression over :data:`ALPHA_GRID`.
    monitor : str
        The :func:`eegfm.finetune.evaluate` figure that chooses ``C`` / ``alpha`` by
        cross-validation on ``train`` (see the module docstring for the folds).
    batch_size, seed, device
        Of the feature pass; ``seed`` also shuffles the folds when there are no groups.

    Returns
    -------
    dict
        ``estimator``, ``param`` (``"C"`` or ``"alpha"``), ``value`` (chosen), ``grid``,
        ``cv_scores`` (mean ``monitor`` over folds, per grid value), ``cv`` (how folds were
        made), ``n_features``, ``train`` (``loss`` and, for classes, ``accuracy`` of the
        written head on ``train``).
    """
    _import_sklearn()
    head = getattr(model, "head", None)
    if not callable(getattr(model, "forward_features", None)) or not isinstance(head, nn.Linear):
        raise TypeError(f"mode='frozen' needs a model with forward_features() and a linear head (an "
                        f"eegfm.MAPEClassifier); {type(model).__name__} lacks them")
    X = frozen_features(model, train, batch_size=batch_size, device=device)
    if X.shape[1] != head.in_features:
        raise ValueError(f"forward_features gives {X.shape[1]} features but the head reads {head.in_features}")
    y = train.labels
    n_outputs = head.out_features
    if task == "classification":
        present = np.unique(y)
        if len(present) < 2:
            raise ValueError(f"mode='frozen' needs at least two classes in the training set, "
                             f"got only {present.tolist()}")
        grid, param, name = C_GRID, "C", "standardised logistic regression"
    else:
        y = y.reshape(len(y), -1)
        if y.shape[1] != n_outputs:
            raise ValueError(f"regression targets have {y.shape[1]} columns but the model has n_outputs={n_outputs}")
        grid, param, name = ALPHA_GRID, "alpha", "standardised ridge regression"
    folds, cv = _folds(train.labels if task == "classification" else y[:, 0], train.groups, task, seed)
    scores = []
    for value in grid:
        fold_scores = []
        for fit_idx, held_idx in folds:
            if task == "classification" and len(np.unique(y[fit_idx])) < 2:
                continue  # a fold whose training part has one class cannot be fit
            W, b = _linear_map(_estimator(task, value, balance_classes, seed).fit(X[fit_idx], y[fit_idx]), task,
                               n_outputs)
            fold_scores.append(_score(task, monitor, y[held_idx], X[held_idx] @ W.T + b))
        finite = [s for s in fold_scores if not math.isnan(s)]
        scores.append(float(np.mean(finite)) if finite else float("nan"))
    if any(not math.isnan(s) for s in scores):
        signed = [(-s if monitor in _MINIMISED else s) if not math.isnan(s) else -math.inf for s in scores]
        chosen = grid[int(np.argmax(signed))]  # first maximum: the strongest regularisation among ties
    else:
        chosen = grid[len(grid) // 2]
    W, b = _linear_map(_estimator(task, chosen, balance_classes, seed).fit(X, y), task, n_outputs)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(W, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
    outputs = X @ W.T + b
    if task == "classification":
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        fit_metrics = {"loss": float(-log_p[np.arange(len(y)), y].mean()),
                       "accuracy": float((outputs.argmax(1) == y).mean())}
    else:
        fit_metrics = {"loss": float(((outputs - y) ** 2).mean())}
    return {"estimator": name, "param": param, "value": float(chosen), "grid": list(grid), "cv_scores": scores,
            "monitor": monitor, "cv": cv, "n_features": int(X.shape[1]), "train": fit_metrics}
