"""Fine-tuning a pre-trained :class:`eegfm.MAPEEncoder` on new EEG tasks.

    from eegfm import MAPEClassifier
    from eegfm.finetune import FinetuneConfig, LabeledEEG, evaluate, finetune

    data = LabeledEEG.from_epochs(epochs)                     # or from_corpus / from_arrays
    train, test = data.split_by_group(["9", "10"])            # cross-subject
    model = MAPEClassifier.from_pretrained("runs/pretrain/encoder", n_outputs=data.n_classes)
    finetune(model, train, FinetuneConfig(mode="full", epochs=20))
    print(evaluate(model, test))

Strategies, one API (``FinetuneConfig.mode``, :mod:`eegfm.finetune.strategies`): ``"full"``
(layer-wise lr decay), ``"linear"`` (head on a frozen encoder), ``"lora"`` (peft LoRA adapters,
merged at the end; ``pip install peft``), ``"frozen"`` (cross-validated logistic / ridge
regression on frozen features, written into the head; ``pip install scikit-learn``).

braindecode users: ``from eegfm.finetune.braindecode import EEGMirror`` (an ``EEGModuleMixin``
model for ``EEGClassifier``); importing :mod:`eegfm.finetune` itself never imports braindecode.
"""

from .augment import augment_batch
from .data import LabeledBatch, LabeledEEG
from .layer_decay import layer_decay_groups
from .metrics import (balanced_accuracy, classification_report, cohen_kappa, confusion_matrix, one_class_warning,
                      regression_report, roc_auc, weighted_f1)
from .strategies import add_lora, fit_frozen, frozen_features, merge_lora
from .trainer import MODES, FinetuneConfig, FinetuneTask, evaluate, finetune, predict

__all__ = [
    "FinetuneConfig",
    "FinetuneTask",
    "MODES",
    "LabeledBatch",
    "LabeledEEG",
    "add_lora",
    "augment_batch",
    "balanced_accuracy",
    "classification_report",
    "cohen_kappa",
    "confusion_matrix",
    "evaluate",
    "finetune",
    "fit_frozen",
    "frozen_features",
    "layer_decay_groups",
    "merge_lora",
    "one_class_warning",
    "predict",
    "regression_report",
    "roc_auc",
    "weighted_f1",
]
