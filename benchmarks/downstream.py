"""Downstream, cross-subject: does pre-training help on subjects the model never saw?

    python benchmarks/downstream.py                                  # both tasks, 5 folds, 5 seeds
    python benchmarks/downstream.py --tasks mi --folds 3 --seeds 0,1,2
    python benchmarks/downstream.py --tasks ma --test-subjects ma:26-31   # one given held-out set
    python benchmarks/downstream.py --reuse                          # resume an interrupted run
    python benchmarks/downstream.py --only-folds 0,1,2 --work-dir W  # split a run over processes sharing W;
    python benchmarks/downstream.py --reuse --work-dir W              #   then assemble every fold's rows

Tasks (every subject present is tested once, in leave-subjects-out folds; label-free
pre-training never sees the fold's test subjects):

- ``ma``: Mental Arithmetic (PhysioNet eegmat, BIDS), rest vs arithmetic, 5-s windows of the
  whole recordings, 19 channels; subjects 02-31.
- ``mi``: PhysioNet EEG Motor Movement/Imagery, imagined left vs right fist (runs R04, R08,
  R12; events T1 = left, T2 = right), 0-4 s after the cue, 64 channels; S001-S012 and S015.

Per task: subjects are split into ``--folds`` seeded groups (saved in the JSON); in each fold
one group is the test set and a seeded ``--val-fraction`` of the remaining subjects the
validation set, used for early stopping / best-epoch selection only. Test subjects are never
used for any choice.

Pre-training (eegfm CLI functions, all sizes set by flags):

1. one neural tokenizer per task, on the corpus WITHOUT any recording of the task's dataset
   (``ma``: eegmmidb + EEGLAB sample + UCI Eye State (+ OpenBCI, skipped: no channel
   positions); ``mi``: eegmat + the same extras), so it never sees any test subject;
2. per fold, masked pre-training on the whole corpus minus the fold's test subjects (the
   task's own training and validation subjects included, without labels), seeded with the
   first seed. Its masked-token accuracy per strategy (beside the most-frequent-code baseline)
   and the tokenizer's codebook usage are reported. ``--pretrain-corpus task-train`` narrows it
   to the fold's training subjects of the task alone (in-domain; no validation subject, no other
   dataset, no extras), the corpus of recipe rows 11, 25 and 26.

Pre-training target (``--pretrain-target``): ``codes`` (default, the above: tokenizer, then
masked code prediction) or ``spectrum``: step 2 with ``MaskedPretrainer(target="spectrum")``
(``eegfm pretrain --model.target=spectrum``: masked patches regress their z-scored Fourier
amplitudes, RECIPE.md rows 11-18), and step 1 skipped (no tokenizer is trained); or
``spectrum_slow``: the same with ``MaskedPretrainer(target="spectrum_slow")`` (the amplitudes
and each patch's slow, signed sub-window means, for MI's slow signal: RECIPE.md row 33).

A given encoder (``--encoder DIR``: a ``MAPEEncoder.from_pretrained`` folder, or an ``eegfm
pretrain`` run folder holding ``encoder/``) replaces both steps: every eegfm model of every task
and fold starts from it (``eegfm_scratch`` gets its architecture). Honesty guard: when a
``run_config.json`` lies in the encoder folder or the folder above it, its ``data.sources`` are
listed with eegfm's own parser (RecordingSource metadata, no signal read) and the run is
refused if the corpus holds any test subject of an evaluated task (``ma``: eegmat BIDS subjects,
``mi``: eegmmidb subject numbers). With folds every subject is tested in some fold, so a corpus
with any of the task's subjects is refused: use ``--test-subjects`` (subjects the encoder never
saw) or pre-train per fold. Without a ``run_config.json`` the corpus cannot be checked: a loud
warning, and ``"corpus_checked": false`` in the JSON. Evaluate an encoder as RECIPE.md's LoRA
recipe (``benchmarks/finetune_probe.py``: LoRA, lr 3e-4, channel dropout 0.3, time shift 0.5 s,
amplitude scale 0.2, layer decay 1) on the fixed test split::

    python benchmarks/downstream.py --tasks ma --test-subjects 'ma:26-31' --encoder runs/eegfm-small \\
        --models eegfm_lora,eegfm_scratch,eegnet --seeds 0,1,2,3,4 --finetune-lr 3e-4 --lora-lr 3e-4 \\
        --channel-dropout 0.3 --time-shift 0.5 --amplitude-scale 0.2 --layer-decay 1 --threads 1

Models per (task, fold, seed): ``eegfm_pretrained`` (full fine-tuning, layer-wise lr decay),
``eegfm_linear`` (linear probe on the same pre-trained encoder; on request also
``eegfm_lora``: LoRA adapters + head, ``--lora-lr`` and the augmentation flags, and ``eegfm_frozen_lr``: a
cross-validated logistic regression on its frozen features), ``eegfm_scratch`` (same
architecture and budget, random init, no layer decay), braindecode ``eegnet`` and ``shallow``
(ShallowFBCSPNet) with the same validation-based early stopping and best-epoch selection, and,
once per fold (deterministic), ``ts_lr`` (pyriemann OAS covariances + tangent space + logistic
regression) and, for ``mi``, ``csp_lda`` (mne CSP + LDA), trained on training + validation
subjects (they make no choice that needs a validation set).

Headline metric, per (task, model): for each seed, the test predictions of all folds are
pooled (every subject is tested exactly once) into one balanced accuracy and one AUROC; the
table gives mean +- std (ddof=1) of these over seeds. Pre-trained vs scratch: paired per-seed
differences, the number of seeds where pre-training wins, paired t-test and Wilcoxon p-values.

Cost (measured on this 2-core CPU with ``--threads 1``, the other core busy; seconds):
tokenizer 400 steps ~550 (``ma``: 64-channel eegmmidb corpus) / ~120 (``mi``); masked
pre-training 400 steps per fold ~590 / ~530 with ``--no-single-pass``, ~300 single-pass (the default); one epoch (train +
validation) of eegfm full fine-tuning ~10 (``ma``) / ~16 (``mi``), linear probe ~4 / ~6, EEGNet
~7 / ~7, ShallowFBCSPNet ~4 / ~7; a classic fit 6-11. The defaults (2 tasks x 5 folds x 5 seeds
x 5 deep models, up to 15 / 20 epochs with early stopping, 10 pre-trainings) are therefore
about 8-9 h on one core, most of it fine-tuning; ``--seeds 0,1,2 --single-pass
--pretrain-steps 200 --finetune-epochs 6 --patience 2 --baseline-epochs 8
--baseline-patience 2`` is about 2.7 h. The script prints an estimate after every fold;
``--reuse`` resumes.

Writes ``downstream.json``, ``summary.md``, ``downstream.png`` and
``paired_pretrained_vs_scratch.png`` to ``--out`` (after every (task, fold): partial results);
models, caches and finished rows go to ``--work-dir`` (``--reuse`` resumes from them).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegfm import MAPEClassifier, MAPEEncoder, NeuralTokenizer  # noqa: E402
from eegfm.cli.pretrain import PretrainRun, format_evaluation, pretrain  # noqa: E402
from eegfm.cli.runs import DataConfig, PretrainModelConfig, TokenizerModelConfig, resolve_sources  # noqa: E402
from eegfm.cli.tokenizer import TokenizerRun, train_tokenizer  # noqa: E402
from eegfm.data import EEGCorpus  # noqa: E402
from eegfm.data.preprocessing import preprocess  # noqa: E402
from eegfm.data.specs import SOURCE_KINDS, sources_from_spec  # noqa: E402
from eegfm.finetune import FinetuneConfig, LabeledEEG, finetune, predict  # noqa: E402
from eegfm.finetune.metrics import classification_report  # noqa: E402
from eegfm.models.classifier import POOLINGS  # noqa: E402
from eegfm.training import TrainConfig  # noqa: E402

TASK_NAMES = {"ma": "Mental Arithmetic (rest vs arithmetic)", "mi": "Motor Imagery (left vs right fist)"}
CLASSES = {"ma": ["rest", "arithmetic"], "mi": ["left", "right"]}
MI_RUNS = (4, 8, 12)  # imagined left / right fist
MI_EVENTS = {"T1": 0, "T2": 1}  # T1 = left fist, T2 = right fist
EEGBCI_SUBDIR = Path("eegbci") / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0"
EEGFM_MODELS = ("eegfm_pretrained", "eegfm_linear", "eegfm_lora", "eegfm_frozen_lr", "eegfm_scratch")
#: FinetuneConfig.mode of each eegfm model (the fine-tuning strategies, eegfm.finetune.strategies)
EEGFM_MODES = {"eegfm_pretrained": "full", "eegfm_linear": "linear", "eegfm_lora": "lora",
               "eegfm_frozen_lr": "frozen", "eegfm_scratch": "full"}
BRAINDECODE_MODELS = ("eegnet", "shallow")
CLASSIC_MODELS = ("ts_lr", "csp_lda")
ALL_MODELS = EEGFM_MODELS + BRAINDECODE_MODELS + CLASSIC_MODELS
#: what --models runs by default (eegfm_lora and eegfm_frozen_lr on request)
DEFAULT_MODELS = tuple(m for m in ALL_MODELS if m not in ("eegfm_lora", "eegfm_frozen_lr"))
TASK_MODELS = {"ma": [m for m in ALL_MODELS if m != "csp_lda"], "mi": list(ALL_MODELS)}
EXTRAS = ("eeglab", "uci", "openbci")
PAIRS = (("eegfm_pretrained", "eegfm_scratch"), ("eegfm_linear", "eegfm_scratch"))
METRIC_DEFINITION = (
    "For each seed, the test-set predictions of all folds are pooled (every subject of the task is a test "
    "subject in exactly one fold), giving one balanced accuracy and one AUROC per seed (AUROC from the "
    "pooled class-1 probabilities); 'mean' and 'std' are the mean and sample std (ddof=1) of these over "
    "seeds. 'fold_mean' is the secondary figure: per seed the unweighted mean over folds of the per-fold "
    "test metric, then mean/std over seeds. Classic pipelines are deterministic: one value, std 0. "
    "Paired comparisons use the per-seed pooled values of the two models.")


# ---------------------------------------------------------------------------------- subjects & folds
def _expand(text: str) -> list[int]:
    """'2,5,7' / '02-05' / '1-3,15' -> ints."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(v.strip().lstrip("Ss") or 0) for v in part.split("-"))
            out += list(range(lo, hi + 1))
        else:
            out.append(int(part.lstrip("Ss")))
    return out


def subject_id(task: str, number: int) -> str:
    """The group label of a subject: eegmat BIDS label '02' or eegmmidb 'S001'."""
    return f"{number:02d}" if task == "ma" else f"S{number:03d}"


def subject_number(subject: str) -> int:
    return int(subject.lstrip("S"))


def present_subjects(task: str, data_root: Path) -> list[str]:
    if task == "ma":
        return sorted(p.name.removeprefix("sub-") for p in (data_root / "eegmat_bids").glob("sub-*") if p.is_dir())
    root = data_root / EEGBCI_SUBDIR
    return sorted(p.name for p in root.glob("S[0-9][0-9][0-9]")
                  if all((p / f"{p.name}R{r:02d}.edf").is_file() for r in MI_RUNS))


def parse_subjects(task: str, text: str, present: list[str], flag: str) -> list[str]:
    chosen = [subject_id(task, n) for n in _expand(text)]
    missing = sorted(set(chosen) - set(present))
    if missing:
        raise SystemExit(f"{flag}: subjects {missing} are not in the {task} data (present: {','.join(present)})")
    return sorted(dict.fromkeys(chosen))


def parse_test_subjects(text: str, tasks: list[str]) -> dict[str, str]:
    """'ma:26-31;mi:12,15' (or plain '26-31' when one task runs) -> {task: '26-31'}."""
    if not text:
        return {}
    out = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        task, sep, ids = part.partition(":")
        if not sep:
            if len(tasks) != 1:
                raise SystemExit("--test-subjects: name the task when several run, e.g. 'ma:26-31;mi:12,15'")
            task, ids = tasks[0], part
        if task not in TASK_NAMES:
            raise SystemExit(f"--test-subjects: unknown task {task!r} (tasks: {', '.join(TASK_NAMES)})")
        out[task] = ids
    return out


def make_folds(subjects: list[str], k: int, seed: int, val_fraction: float, fixed_test: list[str] | None = None,
               ) -> list[dict]:
    """Leave-subjects-out folds; validation subjects are drawn from each fold's training subjects only."""
    if fixed_test:
        groups = [sorted(fixed_test)]
    else:
        if not 2 <= k <= len(subjects):
            raise SystemExit(f"--folds must be in [2, {len(subjects)}] for {len(subjects)} subjects, got {k}")
        perm = np.random.default_rng(seed).permutation(len(subjects))
        groups = [sorted(subjects[i] for i in g) for g in np.array_split(perm, k)]
    folds = []
    for i, test in enumerate(groups):
        pool = [s for s in subjects if s not in test]
        n_val = max(1, int(round(val_fraction * len(pool))))
        if len(pool) - n_val < 1:
            raise SystemExit(f"fold {i}: {len(pool)} non-test subject(s) cannot give both training and validation "
                             "subjects; use more subjects or fewer folds")
        val = sorted(np.random.default_rng([seed, i]).choice(pool, n_val, replace=False).tolist())
        folds.append({"fold": i, "test": test, "val": val, "train": [s for s in pool if s not in val]})
    return folds


# ---------------------------------------------------------------------------------- data
def eegbci_file(data_root: Path, subject: str, run: int) -> Path:
    return data_root / EEGBCI_SUBDIR / subject / f"{subject}R{run:02d}.edf"


def parse_only_folds(text: str, folds: dict[str, list[dict]]) -> set[int] | None:
    """``"0,2"`` -> ``{0, 2}`` (``--only-folds``); None for every fold. A fold no task has is an error."""
    if not text.strip():
        return None
    try:
        only = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise SystemExit(f"--only-folds takes fold numbers like 0,1,2; got {text!r}") from None
    have = {f["fold"] for task_folds in folds.values() for f in task_folds}
    if not only or only - have:
        raise SystemExit(f"--only-folds {text!r}: the folds are {','.join(map(str, sorted(have)))}")
    return only


PRETRAIN_CORPORA = ("all", "task-train")


def pretrain_subjects(task: str, own: list[str], selected: dict[str, list[str]], corpus: str) -> dict[str, list[str]]:
    """``{"ma": eegmat subjects, "mi": eegmmidb subjects}`` a fold of ``task`` pre-trains on.

    ``own``: the task's subjects allowed in this fold. ``corpus="all"``: ``own`` plus every
    selected subject of the other task; ``"task-train"`` (in-domain): ``own`` only.
    """
    other = "mi" if task == "ma" else "ma"
    return {task: list(own), other: list(selected[other]) if corpus == "all" else []}


def eegbci_runs_present(data_root: Path, subject: str) -> list[int]:
    folder = data_root / EEGBCI_SUBDIR / subject
    return sorted(int(p.stem[-2:]) for p in folder.glob(f"{subject}R[0-9][0-9].edf"))


def corpus_spec(data_root: Path, eegmat: list[str], eegbci: list[str], extras: list[str],
                eegbci_runs: list[int] | None = None) -> tuple[str, list[str]]:
    """A ';'-separated eegfm source spec and notes on what could not be included.

    eegmmidb: every run present of each allowed subject (or ``eegbci_runs``), one source per
    subject so that no missing run is ever asked for (that would start a download).
    """
    parts, notes = [], []
    if eegmat:
        parts.append(f"bids:{data_root / 'eegmat_bids'}:{','.join(eegmat)}")
    for subject in eegbci:
        runs = [r for r in eegbci_runs_present(data_root, subject) if eegbci_runs is None or r in eegbci_runs]
        if not runs:
            continue
        if "eegbci" in SOURCE_KINDS:
            parts.append(f"eegbci:{data_root / 'eegbci'}:{subject_number(subject)}:{','.join(map(str, runs))}")
        else:  # before the eegbci kind existed: the EDF files themselves
            parts += [f"files:{eegbci_file(data_root, subject, r)}" for r in runs]
    if "eeglab" in extras:
        parts.append(f"files:{data_root / 'eeglab' / 'eeglab_data.set'}")
    if "uci" in extras:
        if "arff" in SOURCE_KINDS:
            parts.append(f"arff:{data_root / 'uci_eeg_eye_state' / 'eeg_eye_state.arff'}:128")
        else:
            notes.append("UCI Eye State left out: this eegfm has no 'arff' source kind")
    if "openbci" in extras:
        if "openbci" in SOURCE_KINDS:
            parts.append(f"openbci:{data_root / 'openbci_sample' / '*.txt'}")
        else:
            notes.append("OpenBCI sample left out: this eegfm has no 'openbci' source kind")
    return ";".join(parts), notes


def concat(parts: list[LabeledEEG], classes: list[str]) -> LabeledEEG:
    return LabeledEEG([s for p in parts for s in p.signals], [q for p in parts for q in p.positions],
                      np.concatenate([p.labels for p in parts]), sfreq=parts[0].sfreq,
                      groups=np.concatenate([p.groups.astype(str) for p in parts]), classes=classes)


def load_ma(data_root: Path, subjects: list[str], data_cfg: DataConfig, seconds: float) -> LabeledEEG:
    corpus = EEGCorpus(sources_from_spec(f"bids:{data_root / 'eegmat_bids'}:{','.join(subjects)}"),
                       data_cfg.cache_dir, data_cfg.preprocess_config(), progress=False)
    if corpus.skipped:
        raise RuntimeError(f"eegmat recordings could not be read: {corpus.skipped}")
    return LabeledEEG.from_corpus(corpus, seconds, "task", classes=CLASSES["ma"])


def load_mi(data_root: Path, subjects: list[str], data_cfg: DataConfig, seconds: float) -> LabeledEEG:
    """Imagined left/right fist trials, 0..``seconds`` after the cue, at the eegfm contract.

    Each run is read with MNE, preprocessed whole (eegfm's :func:`preprocess`: band-pass, resample
    to 200 Hz, µV, positions), then cut into epochs at the T1/T2 onsets (cue duration 4.1 s).
    """
    import mne
    from mne.datasets import eegbci

    config = data_cfg.preprocess_config()
    parts = []
    for subject in subjects:
        for run in MI_RUNS:
            path = eegbci_file(data_root, subject, run)
            raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
            eegbci.standardize(raw)
            rec = preprocess(raw, config, source_name=str(path))
            prepared = rec.to_raw(verbose=False)
            ann = raw.annotations
            keep = [i for i, d in enumerate(ann.description) if d in MI_EVENTS]
            events = np.array([[int(round(ann.onset[i] * rec.sfreq)), 0, MI_EVENTS[ann.description[i]] + 1]
                               for i in keep], dtype=np.int64).reshape(-1, 3)
            epochs = mne.Epochs(prepared, events, {"left": 1, "right": 2}, tmin=0.0,
                                tmax=seconds - 1.0 / rec.sfreq, baseline=None, preload=True, on_missing="ignore",
                                verbose=False)
            if len(epochs) == 0:
                continue
            parts.append(LabeledEEG.from_epochs(epochs, labels=epochs.events[:, 2] - 1,
                                                groups=np.full(len(epochs), subject)))
    return concat(parts, CLASSES["mi"])


def class_counts(data: LabeledEEG, classes: list[str]) -> dict:
    return {name: int((data.labels == i).sum()) for i, name in enumerate(classes)}


def stack(data: LabeledEEG) -> np.ndarray:
    shapes = {np.shape(s) for s in data.signals}
    if len(shapes) != 1:
        raise RuntimeError(f"the baselines need one montage and length, got shapes {sorted(shapes)}")
    return np.stack([np.asarray(s, dtype=np.float32) for s in data.signals])


def subset(data: LabeledEEG, subjects: list[str]) -> LabeledEEG:
    return data.subset(np.flatnonzero(np.isin(data.groups.astype(str), subjects)))


def zero_dropped_channels(data: LabeledEEG, fraction: float, seed: int) -> np.ndarray:
    """``stack(data)`` with the channels that ``data.drop_channels(fraction, seed=seed)`` removes set to 0.

    Same random draw as :meth:`LabeledEEG.drop_channels`, so fixed-montage models (zeros where a
    channel is missing) and eegfm (the channel absent) lose the same electrodes.
    """
    X = stack(data).copy()
    rng = np.random.default_rng(seed)
    for i, pos in enumerate(data.positions):
        n = len(pos)
        keep = rng.permutation(n)[:max(1, round(n * (1 - fraction)))]
        dropped = np.setdiff1d(np.arange(n), keep)
        X[i, dropped] = 0.0
    return X


# ---------------------------------------------------------------------------------- a given encoder (--encoder)
RUN_CONFIG = "run_config.json"  # what `eegfm pretrain` writes into its run folder
#: source kinds whose listing would read or download data: not listed by the corpus check
UNLISTED_KINDS = ("moabb", "seed-dv", "seed", "faced")


def locate_encoder(path: Path) -> tuple[Path, Path | None]:
    """``(encoder folder, run_config.json of its pre-training run or None)``.

    ``path``: a ``MAPEEncoder.save_pretrained`` folder or a run folder holding ``encoder/``;
    ``run_config.json`` is looked for in the encoder folder, then in the folder above it.
    """
    path = Path(path).expanduser()
    folder = path / "encoder" if (path / "encoder" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise SystemExit(f"--encoder {path}: no MAPEEncoder there (a MAPEEncoder.save_pretrained folder with "
                         "config.json, or an `eegfm pretrain` run folder holding encoder/)")
    for where in (folder, folder.parent):
        if (where / RUN_CONFIG).is_file():
            return folder, where / RUN_CONFIG
    return folder, None


def encoder_fingerprint(folder: Path) -> str:
    """sha256 (16 hex) of the encoder folder's config.json and weights: what the result rows depend on."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def source_subject(source) -> tuple[str, str] | None:
    """``(task, subject id)`` when a listed corpus source is an eegmat (``ma``) or eegmmidb (``mi``)
    recording, else None; the id is ``"?"`` when the recording names no subject.

    From the RecordingSource's key and metadata only (no signal is read): eegmmidb = metadata
    dataset ``eegbci``, eegfm's sample excerpts named ``eegbci_*``, or files named like
    ``S001R04.edf``; eegmat = a dataset, sample name or path containing ``eegmat``.
    """
    meta = dict(getattr(source, "metadata", None) or {})
    key = str(getattr(source, "key", ""))
    dataset, name = str(meta.get("dataset", "")).lower(), str(meta.get("name", "")).lower()
    subject = str(meta.get("subject") if meta.get("subject") is not None else "")
    from_key = None
    if dataset == "eegbci" or name.startswith("eegbci") or re.search(r"S\d{3}R\d{2}\.edf$", key, re.I):
        task, from_key = "mi", re.search(r"S(\d{3})R\d{2}", key, re.I)
    elif "eegmat" in dataset or name.startswith("eegmat") or "eegmat" in key.lower():
        task, from_key = "ma", re.search(r"sub-(\d+)", key)
    else:
        return None
    number = re.search(r"\d+", subject)
    if number:
        return task, subject_id(task, int(number.group()))
    return task, subject_id(task, int(from_key.group(1))) if from_key else "?"


def corpus_subjects(spec: str, bases: list[Path]) -> tuple[dict[str, list[str]], list[str]]:
    """The eegmat (``ma``) and eegmmidb (``mi``) subjects of an eegfm source spec, and notes.

    Each ``;``-separated source is listed by eegfm's own parser (:func:`resolve_sources`,
    :func:`sources_from_spec`; relative paths are tried from each of ``bases`` in turn) and read
    through :func:`source_subject`. Kinds whose listing would read or download data
    (:data:`UNLISTED_KINDS`) are not listed (a note says so), except that a moabb PhysioNet
    (eegmmidb) source cannot be checked at all: SystemExit, as for a source that no base lists.
    """
    found: dict[str, set] = {"ma": set(), "mi": set()}
    notes = []
    for part in [p.strip() for p in spec.split(";") if p.strip()]:
        kind, _, rest = part.partition(":")
        if kind.lower() in UNLISTED_KINDS:
            if kind.lower() == "moabb" and "physionet" in rest.lower():
                raise SystemExit(f"--encoder: the pre-training source {part!r} is eegmmidb through moabb, which "
                                 "cannot be listed without downloading it: its subjects cannot be checked")
            notes.append(f"{part}: not listed (neither eegmat nor eegmmidb; listing it would read its data)")
            continue
        sources, errors = None, []
        for base in bases:
            here = os.getcwd()
            try:
                os.chdir(base)
                sources = list(sources_from_spec(resolve_sources(part)))
                break
            except (OSError, ValueError, RuntimeError) as err:
                errors.append(f"from {base}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
            finally:
                os.chdir(here)
        if sources is None:
            raise SystemExit(f"--encoder: cannot list the pre-training source {part!r} ({'; '.join(errors)}), so "
                             "the corpus cannot be checked for test subjects")
        for source in sources:
            hit = source_subject(source)
            if hit:
                found[hit[0]].add(hit[1])
    return {t: sorted(v) for t, v in found.items()}, notes


def check_encoder_corpus(corpus: dict[str, list[str]], tested: dict[str, list[str]], fixed: set[str],
                         where: str) -> None:
    """One-line SystemExit when the encoder's corpus holds a test subject of an evaluated task.

    ``tested[task]``: every test subject of the task (all folds); ``fixed``: the tasks with
    ``--test-subjects`` (the others run folds); ``where``: the run_config.json, for the message.
    """
    for task, subjects in tested.items():
        seen = sorted(set(corpus.get(task, [])) & set(subjects))
        if "?" in corpus.get(task, []):
            raise SystemExit(f"--encoder: its pre-training corpus ({where}) holds {task} recordings that name no "
                             "subject, so it cannot be checked for test subjects; refusing")
        if not seen:
            continue
        if task in fixed:
            raise SystemExit(f"--encoder: its pre-training corpus ({where}) contains {task} test subject(s) "
                             f"{','.join(seen)}: refusing (test on subjects the encoder never saw)")
        raise SystemExit(f"--encoder: its pre-training corpus ({where}) contains {task} subject(s) {','.join(seen)}, "
                         "each a test subject of some fold: refusing; use --test-subjects with subjects the encoder "
                         "never saw, or drop --encoder to pre-train per fold")


# ---------------------------------------------------------------------------------- one validation split (probes)
def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of :func:`validation_split` (shared by the recipe probes)."""
    a = parser.add_argument
    a("--task", default="ma", choices=sorted(TASK_NAMES))
    a("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    a("--test-subjects", default="26-31", help="left out entirely (never read)")
    a("--fold-seed", type=int, default=0)
    a("--val-fraction", type=float, default=0.2)
    a("--cache-dir", default="/tmp/eegfm-probe/cache")
    a("--out", type=Path, default=None, help="write the figures as JSON here")


def validation_split(args) -> tuple[dict, LabeledEEG, LabeledEEG]:
    """``(fold, train, valid)`` of one split as the harness draws it; the test subjects are never read."""
    present = present_subjects(args.task, args.data_root)
    test = parse_subjects(args.task, args.test_subjects, present, "--test-subjects")
    fold = make_folds(present, 1, args.fold_seed, args.val_fraction, test)[0]
    loader = load_ma if args.task == "ma" else load_mi
    seconds = 5.0 if args.task == "ma" else 4.0
    data = loader(args.data_root, fold["train"] + fold["val"], DataConfig(cache_dir=args.cache_dir), seconds)
    return fold, subset(data, fold["train"]), subset(data, fold["val"])


def write_probe_report(args, report: dict, script: str, argv) -> dict:
    """Add the command line to ``report`` and write it to ``args.out`` (when given)."""
    report["command"] = f"python benchmarks/{script} " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


# ---------------------------------------------------------------------------------- models
def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)


def eegfm_lr(model_name: str, args) -> float:
    """The fine-tuning lr of an eegfm model: ``--linear-lr`` (linear probe; unused by the frozen fit),
    ``--lora-lr`` (LoRA; 0: ``--finetune-lr``), else ``--finetune-lr``."""
    mode = EEGFM_MODES[model_name]
    if mode in ("linear", "frozen"):
        return args.linear_lr
    if mode == "lora" and args.lora_lr:
        return args.lora_lr
    return args.finetune_lr


def eegfm_schedule(args, lr: float) -> dict:
    """The ``FinetuneConfig`` schedule fields for ``--lr-schedule``: ``cosine`` (the library's default:
    one warm-up epoch, then a half cosine down to 1e-6) or ``constant`` (``lr`` on every step, no
    warm-up: RECIPE.md row 20, which MI needs to leave its chance plateau)."""
    if args.lr_schedule == "constant":
        return {"warmup_epochs": 0.0, "min_lr": lr}
    return {}


def run_eegfm(model_name: str, seed: int, encoder: MAPEEncoder | None, encoder_config: dict, train, valid,
              tests: list, args, run_dir: Path) -> tuple[dict, list[np.ndarray]]:
    """Fine-tune one eegfm variant; logits (N, 2) on each of ``tests`` (each a LabeledEEG)."""
    torch.manual_seed(seed)
    if model_name == "eegfm_scratch":
        model = MAPEClassifier(n_outputs=2, encoder=encoder_config, pooling=args.pooling)
    else:
        model = MAPEClassifier.from_encoder(encoder, n_outputs=2, pooling=args.pooling)
    mode = EEGFM_MODES[model_name]
    linear = mode in ("linear", "frozen")  # frozen encoder: no augmentation (frozen: no training at all)
    augment = {} if linear else dict(channel_dropout=args.channel_dropout, time_shift_seconds=args.time_shift,
                                     amplitude_scale=args.amplitude_scale)
    lr = eegfm_lr(model_name, args)
    cfg = FinetuneConfig(mode=mode, epochs=args.finetune_epochs, lr=lr, **eegfm_schedule(args, lr),
                         layer_decay=args.layer_decay if model_name == "eegfm_pretrained" else 1.0,
                         batch_size=args.batch_size, seed=seed, patience=args.patience or None, select_best=True,
                         monitor="balanced_accuracy", run_dir=str(run_dir), metrics="none", progress=args.progress,
                         checkpoint_every_epochs=args.finetune_epochs, **augment)
    fit = finetune(model, train, cfg, valid=valid)
    logits = [predict(model, test, batch_size=128) for test in tests]
    history = fit.get("history") or []
    info = {"best_epoch": fit.get("best_epoch"), "epochs_run": len(history),
            "valid": {k: fit["valid"][k] for k in ("balanced_accuracy", "auroc") if k in fit.get("valid", {})}}
    return info, logits


def run_braindecode(model_name: str, seed: int, train, valid, tests: list, args) -> tuple[dict, list[np.ndarray]]:
    """EEGNet / ShallowFBCSPNet in braindecode's EEGClassifier, same windows (µV) and split.

    ``tests``: arrays (N, C, T) (channels the model cannot have are zeros); logits for each.

    Early stopping on the validation subjects' balanced accuracy; the best epoch's weights are
    restored at the end (skorch ``EarlyStopping(load_best=True)``).
    """
    from braindecode import EEGClassifier
    from braindecode.models import EEGNet, ShallowFBCSPNet
    from skorch.callbacks import EarlyStopping, EpochScoring, LRScheduler
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    torch.manual_seed(seed)
    np.random.seed(seed)
    X_train, X_valid = stack(train), stack(valid)
    n_chans, n_times = X_train.shape[1:]
    if model_name == "eegnet":  # the original EEGNet head: linear layer with a max-norm constraint
        module = EEGNet(n_chans=n_chans, n_outputs=2, n_times=n_times, final_layer_with_constraint=True)
    else:
        module = ShallowFBCSPNet(n_chans=n_chans, n_outputs=2, n_times=n_times, final_conv_length="auto")
    counts = np.bincount(train.labels, minlength=2)
    weight = torch.tensor(len(train.labels) / (2 * np.maximum(counts, 1)), dtype=torch.float32)
    epochs = args.baseline_epochs
    clf = EEGClassifier(
        module, criterion=torch.nn.CrossEntropyLoss, criterion__weight=weight, optimizer=torch.optim.AdamW,
        optimizer__lr=args.baseline_lr, optimizer__weight_decay=0.0,
        batch_size=min(args.baseline_batch_size, len(X_train)),  # braindecode drops the last incomplete batch
        max_epochs=epochs, train_split=predefined_split(Dataset(X_valid, valid.labels)), verbose=0,
        callbacks=[("valid_bacc", EpochScoring("balanced_accuracy", lower_is_better=False, name="valid_bacc")),
                   ("early_stopping", EarlyStopping(monitor="valid_bacc", lower_is_better=False,
                                                    patience=args.baseline_patience or epochs, load_best=True)),
                   ("lr_scheduler", LRScheduler("CosineAnnealingLR", T_max=max(epochs - 1, 1)))],
        iterator_train__shuffle=True, device="cpu")
    clf.fit(X_train, train.labels)
    scores = list(clf.history[:, "valid_bacc"])
    best = int(np.argmax(scores))
    with torch.no_grad():
        logits = [clf.forward(X_test.astype(np.float32)).detach().cpu().numpy() for X_test in tests]
    return {"best_epoch": best + 1, "epochs_run": len(scores), "valid": {"balanced_accuracy": float(scores[best])}}, \
        logits


def bandpass(X: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    import mne

    return mne.filter.filter_data(X.astype(np.float64), sfreq, band[0], band[1], verbose=False)


def run_classic(model_name: str, train, tests: list, band: tuple[float, float]) -> tuple[dict, list[np.ndarray]]:
    """A classic pipeline fit on ``train``; log-probabilities on each of ``tests`` (arrays (N, C, T))."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if model_name == "ts_lr":
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace

        clf = make_pipeline(Covariances("oas"), TangentSpace(metric="riemann"),
                            LogisticRegression(max_iter=1000, class_weight="balanced"))
    else:
        from mne.decoding import CSP

        clf = make_pipeline(CSP(n_components=8, log=True), LinearDiscriminantAnalysis())
    from threadpoolctl import threadpool_limits

    X_train = bandpass(stack(train), train.sfreq, band)
    # one BLAS thread: these are small (C x C) matrices, and spinning BLAS threads on busy cores cost 10-50x
    import mne

    with threadpool_limits(1, user_api="blas"), mne.utils.use_log_level("WARNING"):
        clf.fit(X_train, train.labels)
        logits = [np.log(np.clip(clf.predict_proba(bandpass(X, train.sfreq, band)), 1e-12, 1.0)) for X in tests]
    return {"band_hz": list(band)}, logits


# ---------------------------------------------------------------------------------- statistics
def summarize(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": int(len(arr))}


def paired(a: dict, b: dict) -> dict:
    """Per-seed paired comparison of pooled values ``a[seed]`` vs ``b[seed]`` (seeds both have)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b), key=lambda s: int(s))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    out = {"seeds": [int(s) for s in seeds], "differences": diffs.tolist(), **summarize(diffs.tolist()),
           "n_better": int((diffs > 0).sum()), "n_worse": int((diffs < 0).sum()), "n_seeds": len(seeds),
           "t_test_p": None, "wilcoxon_p": None}
    if len(diffs) >= 2 and np.ptp(diffs) > 0:
        out["t_test_p"] = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    if len(diffs) >= 2 and np.any(diffs != 0):
        with warnings.catch_warnings():  # small-sample notes (exact distribution, ties) are expected here
            warnings.simplefilter("ignore")
            out["wilcoxon_p"] = float(stats.wilcoxon(diffs).pvalue)
    return out


def aggregate(rows: list[dict], preds: dict, n_folds: int) -> dict:
    """Pooled-over-folds metric per seed, then mean +- std over seeds (see METRIC_DEFINITION)."""
    by_seed: dict[str, list] = {}
    for row in rows:
        by_seed.setdefault(str(row["seed"]), []).append(row)
    pooled_bacc, pooled_auroc, fold_bacc, fold_auroc = {}, {}, {}, {}
    for seed, rs in by_seed.items():
        if len(rs) != n_folds:  # a seed not finished on every fold yet: no pooled figure
            continue
        labels = np.concatenate([preds[(r["fold"], seed)][0] for r in rs])
        logits = np.concatenate([preds[(r["fold"], seed)][1] for r in rs])
        report = classification_report(labels, logits)
        pooled_bacc[seed], pooled_auroc[seed] = report["balanced_accuracy"], report["auroc"]
        fold_bacc[seed] = float(np.mean([r["test"]["balanced_accuracy"] for r in rs]))
        fold_auroc[seed] = float(np.mean([r["test"]["auroc"] for r in rs]))
    return {
        "balanced_accuracy": {**summarize(list(pooled_bacc.values())), "per_seed": pooled_bacc},
        "auroc": {**summarize(list(pooled_auroc.values())), "per_seed": pooled_auroc},
        "fold_mean": {"balanced_accuracy": {**summarize(list(fold_bacc.values())), "per_seed": fold_bacc},
                      "auroc": {**summarize(list(fold_auroc.values())), "per_seed": fold_auroc}},
        "seconds_per_fit": summarize([r["seconds"] for r in rows]),
    }


# ---------------------------------------------------------------------------------- reporting
def _fmt(stat: dict) -> str:
    return "n/a" if stat.get("mean") is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def format_summary(report: dict) -> str:
    lines = ["# Downstream benchmark (cross-subject)", "", f"`{report['command']}`", "",
             f"{report['date']}, commit {report['git_commit']}, {report['minutes']} min"
             + (" (PARTIAL)" if report["partial"] else ""), "", report["metric_definition"], ""]
    for task, res in report["results"].items():
        data = report["data"][task]
        lines += [f"## {task}: {TASK_NAMES[task]}", "",
                  f"{len(data['subjects'])} subjects, {data['n_examples']} examples {data['per_class']}, "
                  f"{len(report['folds'][task])} folds", "",
                  "| model | balanced accuracy | AUROC | fold-mean bal. acc. | seeds | s / fit |",
                  "|---|---|---|---|---|---|"]
        for model, r in res.items():
            agg = r["aggregate"]
            lines.append(f"| {model} | {_fmt(agg['balanced_accuracy'])} | {_fmt(agg['auroc'])} | "
                         f"{_fmt(agg['fold_mean']['balanced_accuracy'])} | {agg['balanced_accuracy']['n']} | "
                         f"{agg['seconds_per_fit']['mean'] or 0:.0f} |")
        drop_keys = sorted({q for r in res.values() for q in r.get("channel_drop", {})}, key=float)
        if drop_keys:
            lines += ["", "Channel-drop curve (balanced accuracy with a share of each test example's channels "
                      "removed; fixed-montage models get zeros there):", "",
                      "| model | 0 % | " + " | ".join(f"{float(q):.0%}" for q in drop_keys) + " |",
                      "|---|---|" + "---|" * len(drop_keys)]
            for model, r in res.items():
                lines.append(f"| {model} | {_fmt(r['aggregate']['balanced_accuracy'])} | "
                             + " | ".join(_fmt(r["channel_drop"].get(q, {})) for q in drop_keys) + " |")
        for name, comp in report["comparisons"].get(task, {}).items():
            b = comp["balanced_accuracy"]
            if b["n_seeds"]:
                p = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
                lines.append(f"\n{name}: balanced accuracy difference {_fmt(b)} over {b['n_seeds']} seeds, "
                             f"better in {b['n_better']}/{b['n_seeds']}; paired t-test p = {p(b['t_test_p'])}, "
                             f"Wilcoxon p = {p(b['wilcoxon_p'])}")
        pre = report["pretraining"].get(task, {})
        by_fold = sorted(pre.get("folds", {}).items(), key=lambda kv: int(kv[0]))
        if any("masked_accuracy" in d for _, d in by_fold):
            lines.append("")
            lines.append("Pre-training, masked-token accuracy per fold (random / channel / temporal; baseline): "
                         + "; ".join(
                             f"fold {f}: " + " / ".join(f"{v:.1%}" for v in d["masked_accuracy"]["accuracy"].values())
                             + f" ({d['masked_accuracy']['baseline_accuracy']:.1%})"
                             for f, d in by_fold if "masked_accuracy" in d))
        if any("masked_r2" in d for _, d in by_fold):
            lines.append("")
            lines.append("Pre-training (regression target), masked R^2 per fold (random / channel / temporal; "
                         "predicting the mean: 0): " + "; ".join(
                             f"fold {f}: " + " / ".join(f"{v:.3f}" for v in d["masked_r2"]["masked_r2"].values())
                             for f, d in by_fold if "masked_r2" in d))
        enc = report.get("encoder")
        if enc:
            lines += ["", f"eegfm models start from the given encoder `{enc['encoder_dir']}` (no pre-training here); "
                      + (f"its pre-training corpus ({enc['run_config_file']}) holds no test subject."
                         if enc["corpus_checked"] else
                         "**its pre-training corpus could NOT be checked for test subjects** (no run_config.json).")]
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["results"])
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(6.5 * max(len(tasks), 1), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        res = report["results"][task]
        names = [m for m in res if res[m]["aggregate"]["balanced_accuracy"]["mean"] is not None]
        means = [res[m]["aggregate"]["balanced_accuracy"]["mean"] for m in names]
        stds = [res[m]["aggregate"]["balanced_accuracy"]["std"] for m in names]
        colors = ["tab:blue" if m.startswith("eegfm") else "tab:orange" if m in BRAINDECODE_MODELS else "tab:green"
                  for m in names]
        ax.barh(names, means, xerr=stds, color=colors, alpha=0.85, capsize=3)
        ax.axvline(0.5, color="grey", ls="--", lw=1, label="chance")
        ax.set_xlim(0.3, 1.0)
        ax.invert_yaxis()
        ax.set_xlabel("balanced accuracy, pooled over folds (mean ± std over seeds)")
        ax.set_title(f"{task}: {TASK_NAMES[task]}, {len(report['folds'][task])} folds")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "downstream.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(4.5 * max(len(tasks), 1), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        comp = report["comparisons"].get(task, {}).get("eegfm_pretrained_vs_eegfm_scratch")
        res = report["results"][task]
        if comp and comp["balanced_accuracy"]["n_seeds"]:
            a = res["eegfm_pretrained"]["aggregate"]["balanced_accuracy"]["per_seed"]
            b = res["eegfm_scratch"]["aggregate"]["balanced_accuracy"]["per_seed"]
            for seed in comp["balanced_accuracy"]["seeds"]:
                s = str(seed)
                color = "tab:green" if a[s] > b[s] else "tab:red" if a[s] < b[s] else "grey"
                ax.plot([0, 1], [b[s], a[s]], marker="o", color=color, alpha=0.8)
                ax.annotate(f"seed {seed}", (1.03, a[s]), fontsize=7, va="center")
            d = comp["balanced_accuracy"]
            ax.set_title(f"{task}: pre-trained − scratch = {d['mean']:+.3f} ± {d['std']:.3f}\n"
                         f"better in {d['n_better']}/{d['n_seeds']} seeds", fontsize=9)
        else:
            ax.set_title(f"{task}: no paired seeds")
        ax.axhline(0.5, color="grey", ls="--", lw=1)
        ax.set_xticks([0, 1], ["eegfm_scratch", "eegfm_pretrained"])
        ax.set_xlim(-0.3, 1.4)
        ax.set_ylabel("balanced accuracy (pooled over folds)")
    fig.tight_layout()
    fig.savefig(out / "paired_pretrained_vs_scratch.png", dpi=110)
    plt.close(fig)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data-root", type=Path, default=ROOT.parent / "shared" / "data", help="the shared EEG data folder")
    a("--tasks", default="ma,mi", help="comma list of ma, mi")
    a("--ma-subjects", default="", help="eegmat subjects, e.g. 02-31 or 2,3,10 (default: all present)")
    a("--mi-subjects", default="", help="eegmmidb subjects with runs 4, 8, 12, e.g. 1-12,15 (default: all present)")
    a("--folds", type=int, default=5, help="leave-subjects-out folds per task")
    a("--only-folds", default="",
      help="run these folds only, e.g. 0,1,2 (the JSON is then partial): split one run over processes sharing "
           "--work-dir, then assemble it with --reuse and no --only-folds")
    a("--fold-seed", type=int, default=0, help="seed of the subject-to-fold and validation draws")
    a("--val-fraction", type=float, default=0.2, help="validation share of each fold's training subjects (>= 1)")
    a("--test-subjects", default="",
      help="one given held-out set instead of folds, e.g. 'ma:26-31;mi:12,15' (plain ids with one task); "
           "they are excluded from that task's pre-training")
    a("--seeds", default="0,1,2,3,4", help="fine-tuning / braindecode seeds; pre-training uses the first")
    a("--models", default=",".join(DEFAULT_MODELS), help=f"subset of {','.join(ALL_MODELS)} (csp_lda: mi only)")
    a("--extras", default=",".join(EXTRAS), help="other corpora in pre-training: eeglab, uci, openbci ('' for none)")
    a("--pretrain-corpus", default="all", choices=PRETRAIN_CORPORA,
      help="each fold's masked pre-training corpus: all (every dataset minus the fold's test subjects, "
           "validation subjects included unlabelled) or task-train (in-domain: the fold's training subjects "
           "of the task only, as recipe rows 11, 25, 26); the tokenizer's corpus is unchanged")
    a("--pretrain-eegbci-runs", default="",
      help="restrict the eegmmidb runs used in pre-training, e.g. 4,8,12 (default: every run present)")
    a("--ma-window-seconds", type=float, default=5.0)
    a("--mi-seconds", type=float, default=4.0, help="trial length after the cue (cues last 4.1 s)")
    # model / pre-training recipe
    a("--patch-size", type=int, default=100)
    a("--embed-dim", type=int, default=64)
    a("--depth", type=int, default=2)
    a("--heads", type=int, default=4)
    a("--pooling", choices=POOLINGS, default="mean",
      help="features the eegfm head reads (MAPEClassifier pooling): mean, cls, cls+mean, attention, or moments "
           "(the mean and the means weighted by each channel's left-right and front-back position)")
    a("--patch-mean", action="store_true",
      help="eegfm's patch embedder also sees each patch's signed mean (EncoderConfig.patch_mean; scratch and "
           "pre-training)")
    a("--attention-bias", choices=("none", "distance"), default="none",
      help="eegfm's attention gets a fixed per-head scalp-distance / patch-lag penalty (EncoderConfig.attention_bias; "
           "scratch and pre-training)")
    a("--code-dim", type=int, default=16)
    a("--num-codes", type=int, default=256)
    a("--tokenizer-steps", type=int, default=400)
    a("--tokenizer-lr", type=float, default=2e-3)
    a("--pretrain-steps", type=int, default=400)
    a("--pretrain-lr", type=float, default=1e-3)
    a("--pretrain-batch-size", type=int, default=32)
    a("--pretrain-window-seconds", type=float, default=4.0)
    a("--single-pass", action=argparse.BooleanOptionalAction, default=True,
      help="one masked encoder pass per pre-training step, one strategy per sample (the library's default); "
           "--no-single-pass: the three passes of the paper")
    a("--pretrain-visible-blocks", type=int, default=0,
      help="per-fold pre-training with the first this many encoder blocks on the visible tokens only "
           "(MaskedPretrainer(visible_blocks=...); 0: every block sees every token, the paper's step)")
    a("--pretrain-target", default="codes", choices=("codes", "spectrum", "spectrum_slow"),
      help="what the per-fold masked pre-training predicts: 'codes' (a VQ tokenizer, trained first per task), "
           "'spectrum' (each masked patch's z-scored Fourier amplitudes, MaskedPretrainer(target='spectrum'); "
           "no tokenizer is trained) or 'spectrum_slow' (the amplitudes and the patch's slow signed sub-window "
           "means, MaskedPretrainer(target='spectrum_slow'); no tokenizer)")
    a("--encoder", type=Path, default=None,
      help="a pre-trained encoder (MAPEEncoder.from_pretrained folder, or an `eegfm pretrain` run folder "
           "holding encoder/) used by every eegfm model of every task and fold instead of pre-training one "
           "(eegfm_scratch takes its architecture; the model/pre-training flags above are then unused). Refused "
           "when the run_config.json beside or above it lists a test subject in data.sources; unchecked "
           "(warning, corpus_checked: false) without one")
    # fine-tuning
    a("--finetune-epochs", type=int, default=15)
    a("--patience", type=int, default=5, help="early-stopping patience in epochs (0: none) for eegfm")
    a("--finetune-lr", type=float, default=1e-3, help="lr of eegfm_pretrained and eegfm_scratch (full fine-tuning)")
    a("--linear-lr", type=float, default=5e-3, help="lr of the linear probe's head")
    a("--lora-lr", type=float, default=3e-4,
      help="lr of eegfm_lora (adapters + head; 0: --finetune-lr). Default 3e-4: RECIPE.md rows 15-16 (LoRA at "
           "1e-3 was worse). eegfm_lora also takes the augmentation flags; its layer decay is 1")
    a("--layer-decay", type=float, default=1.0,
      help="eegfm_pretrained only (scratch: 1.0); 1.0 beat 0.65 on MA validation subjects (RECIPE.md row 6)")
    a("--lr-schedule", default="cosine", choices=("cosine", "constant"),
      help="eegfm fine-tuning schedule: cosine (one warm-up epoch, then a half cosine) or constant (the lr on "
           "every step, no warm-up; RECIPE.md row 20: MI leaves chance only so)")
    a("--batch-size", type=int, default=32)
    a("--channel-dropout", type=float, default=0.0, help="eegfm fine-tuning augmentation: share of channels hidden")
    a("--time-shift", type=float, default=0.0, help="eegfm fine-tuning augmentation: largest circular shift, s")
    a("--amplitude-scale", type=float, default=0.0, help="eegfm fine-tuning augmentation: gain in [1/(1+a), 1+a]")
    a("--channel-drop", default="0.3,0.5,0.7",
      help="test-time channel removal shares for the montage-robustness curve ('' for none)")
    a("--baseline-epochs", type=int, default=20)
    a("--baseline-patience", type=int, default=5, help="early-stopping patience in epochs (0: none) for braindecode")
    a("--baseline-lr", type=float, default=1e-3)
    a("--baseline-batch-size", type=int, default=64)
    a("--ma-classic-band", default="1,40", help="band-pass (Hz) before the classic pipelines, ma")
    a("--mi-classic-band", default="8,32", help="band-pass (Hz) before the classic pipelines, mi")
    # bookkeeping
    a("--work-dir", type=Path, default=Path("/tmp/eegfm-downstream"), help="models, caches, finished rows")
    a("--out", type=Path, default=ROOT / "benchmarks" / "results" / "downstream")
    a("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a("--reuse", action="store_true", help="reuse tokenizers, pre-trained encoders and result rows in --work-dir "
                                           "made with the same settings (resume an interrupted run)")
    a("--progress", action="store_true")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MNE_DATASETS_EEGBCI_PATH", str(args.data_root / "eegbci"))
    start = time.perf_counter()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASK_NAMES))
    if unknown or not tasks:
        raise SystemExit(f"--tasks: unknown {unknown} (choose from {', '.join(TASK_NAMES)})")
    models = [m for m in args.models.split(",") if m]
    if sorted(set(models) - set(ALL_MODELS)) or not models:
        raise SystemExit(f"--models: choose from {', '.join(ALL_MODELS)}, got {args.models!r}")
    extras = [e for e in args.extras.split(",") if e]
    if sorted(set(extras) - set(EXTRAS)):
        raise SystemExit(f"--extras: choose from {', '.join(EXTRAS)}, got {args.extras!r}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds must be distinct integers, got {args.seeds!r}")
    pretrain_runs = _expand(args.pretrain_eegbci_runs) or None
    drops = [float(q) for q in args.channel_drop.split(",") if q.strip()]
    if any(not 0 < q < 1 for q in drops):
        raise SystemExit(f"--channel-drop: shares in (0, 1), got {args.channel_drop!r}")
    bands = {t: tuple(float(v) for v in getattr(args, f"{t}_classic_band").split(",")) for t in TASK_NAMES}
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    data_cfg = DataConfig(cache_dir=str(work / "cache"))
    pre_cfg = data_cfg.preprocess_config()

    # ------------------------------------------------------------ subjects and folds
    present = {t: present_subjects(t, args.data_root) for t in TASK_NAMES}
    for t in tasks:
        if not present[t]:
            raise SystemExit(f"no {t} data under {args.data_root}")
    selected = {t: (parse_subjects(t, getattr(args, f"{t}_subjects"), present[t], f"--{t}-subjects")
                    if getattr(args, f"{t}_subjects") else list(present[t])) for t in TASK_NAMES}
    fixed = {t: parse_subjects(t, ids, present[t], "--test-subjects")
             for t, ids in parse_test_subjects(args.test_subjects, tasks).items()}
    for t, ids in fixed.items():
        selected[t] = sorted(set(selected[t]) | set(ids))
    folds = {t: make_folds(selected[t], args.folds, args.fold_seed, args.val_fraction, fixed.get(t)) for t in tasks}
    only = parse_only_folds(args.only_folds, folds)
    for t in tasks:
        print(f"[{t}] {len(selected[t])} subjects; folds (test | validation):")
        for f in folds[t]:
            print(f"  fold {f['fold']}: test {','.join(f['test'])} | val {','.join(f['val'])}")

    # ------------------------------------------------------------ a given encoder (--encoder): honesty guard first
    given_encoder, encoder_info = None, None
    if args.encoder is not None and any(m in EEGFM_MODELS for m in models):
        enc_dir, run_cfg_path = locate_encoder(args.encoder)
        given_encoder = MAPEEncoder.from_pretrained(enc_dir)
        try:
            given_encoder.check_preprocessing(pre_cfg)
        except ValueError as err:
            raise SystemExit(f"--encoder {args.encoder}: {err}") from None
        encoder_info = {"path": str(args.encoder), "encoder_dir": str(enc_dir),
                        "fingerprint": encoder_fingerprint(enc_dir), "config": given_encoder.get_config(),
                        "run_config_file": str(run_cfg_path) if run_cfg_path else None, "run_config": None,
                        "sources": None, "corpus_subjects": None, "corpus_notes": [], "corpus_checked": False}
        if run_cfg_path is None:
            bar = "!" * 100
            print(f"{bar}\nWARNING: --encoder {args.encoder}: no {RUN_CONFIG} in {enc_dir} or the folder above it, so "
                  "its pre-training corpus could NOT be checked for test subjects.\nThe results are only honest if "
                  "the encoder never saw them; downstream.json records \"corpus_checked\": false.\n" + bar)
        else:
            run_cfg = json.loads(run_cfg_path.read_text())
            spec = (run_cfg.get("data") or {}).get("sources")
            if not spec:
                raise SystemExit(f"--encoder: {run_cfg_path} names no data.sources, so the corpus cannot be checked")
            bases = list(dict.fromkeys([Path.cwd(), ROOT, run_cfg_path.parent]))
            corpus, notes = corpus_subjects(spec, bases)
            tested = {t: sorted({s for f in folds[t] for s in f["test"]}) for t in tasks}
            check_encoder_corpus(corpus, tested, set(fixed), str(run_cfg_path))
            encoder_info.update(run_config=run_cfg, sources=spec, corpus_subjects=corpus, corpus_notes=notes,
                                corpus_checked=True)
            print(f"--encoder {enc_dir}: its pre-training corpus ({run_cfg_path}) holds no test subject "
                  f"(eegmat: {','.join(corpus['ma']) or 'none'}; eegmmidb: {','.join(corpus['mi']) or 'none'})")
            for note in notes:
                print(f"  {note}")
        if args.pretrain_target != "codes":
            print(f"--pretrain-target {args.pretrain_target}: unused with --encoder (nothing is pre-trained)")
        if args.patch_mean:
            print(f"--patch-mean: unused with --encoder (scratch takes the encoder's architecture: "
                  f"patch_mean={given_encoder.config.patch_mean})")
        if args.attention_bias != "none":
            print(f"--attention-bias: unused with --encoder (scratch takes the encoder's architecture: "
                  f"attention_bias={given_encoder.config.attention_bias!r})")
    elif args.encoder is not None:
        print(f"--encoder {args.encoder}: unused (no eegfm model in --models)")

    enc_arch = dict(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads)
    if args.patch_mean:  # only when set, so the fingerprints of runs made before the flag still match
        enc_arch["patch_mean"] = True
    if args.attention_bias != "none":
        enc_arch["attention_bias"] = args.attention_bias
    encoder_config = {**enc_arch, "sfreq": data_cfg.sfreq, "preprocessing": pre_cfg.to_dict()}
    if given_encoder is not None:  # eegfm_scratch: the given encoder's architecture, random weights
        encoder_config = given_encoder.get_config()
    spectrum = args.pretrain_target != "codes"  # a regression target: no tokenizer
    recipe = {"pre": pre_cfg.to_dict(), "arch": enc_arch, "code_dim": args.code_dim, "num_codes": args.num_codes,
              "tokenizer_steps": args.tokenizer_steps, "tokenizer_lr": args.tokenizer_lr,
              "pretrain_steps": args.pretrain_steps, "pretrain_lr": args.pretrain_lr,
              "pretrain_batch_size": args.pretrain_batch_size, "pretrain_window": args.pretrain_window_seconds,
              "single_pass": bool(args.single_pass), "seed": seeds[0]}
    if spectrum:  # no tokenizer: its settings do not matter, the target does (codes: the fingerprint as before)
        recipe = {k: v for k, v in recipe.items() if not k.startswith(("tokenizer_", "code_dim", "num_codes"))}
        recipe["target"] = args.pretrain_target
    if args.pretrain_visible_blocks:  # only when set, so the fingerprints of earlier runs still match
        recipe["visible_blocks"] = args.pretrain_visible_blocks

    def train_config(run_dir: Path, steps: int, lr: float) -> TrainConfig:
        return TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=max(steps // 20, 1),
                           checkpoint_every=steps, run_dir=str(run_dir), progress=args.progress, metrics="none",
                           seed=seeds[0])

    def reusable(folder: Path, fingerprint: str, *files: str) -> bool:
        fp = folder / "fingerprint.txt"
        ok = args.reuse and fp.is_file() and fp.read_text().strip() == fingerprint and all(
            (folder / f).exists() for f in files)
        if args.reuse and not ok and folder.exists():
            print(f"  (not reusing {folder}: unfinished or made with other settings)")
        return ok

    # ------------------------------------------------------------ state for the report
    report_data, pretraining, results_rows, preds, timings, drop_preds = {}, {}, {}, {}, {}, {}

    def corpus_listing(spec: str) -> dict:
        corpus = EEGCorpus(sources_from_spec(spec), data_cfg.cache_dir, pre_cfg, progress=args.progress)
        for key, why in corpus.skipped:
            print(f"  skipped in pre-training: {key}: {why.splitlines()[0][:160]}")
        return {"recordings": [str(e.meta.get("source", e.path)) for e in corpus.entries],
                "skipped": [{"source": k, "reason": why} for k, why in corpus.skipped]}

    def build_report(partial: bool) -> dict:
        results, comparisons = {}, {}
        for t in [t for t in tasks if t in report_data]:
            results[t] = {}
            for m in [m for m in models if m in TASK_MODELS[t]]:
                rows = results_rows.get((t, m), [])
                results[t][m] = {"aggregate": aggregate(rows, preds.get((t, m), {}), len(folds[t])),
                                 "channel_drop": {
                                     str(q): aggregate(rows, drop_preds.get((t, m, str(q)), {}), len(folds[t]))[
                                         "balanced_accuracy"] for q in drops},
                                 "rows": sorted(rows, key=lambda r: (r["fold"], str(r["seed"])))}
            comparisons[t] = {}
            for a, b in PAIRS:
                if a in results[t] and b in results[t]:
                    comparisons[t][f"{a}_vs_{b}"] = {
                        metric: paired(results[t][a]["aggregate"][metric]["per_seed"],
                                       results[t][b]["aggregate"][metric]["per_seed"])
                        for metric in ("balanced_accuracy", "auroc")}
        return {
            "benchmark": "downstream",
            "command": "python " + " ".join(shlex.quote(x) for x in ["benchmarks/downstream.py", *argv_list]),
            "partial": partial,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "minutes": round((time.perf_counter() - start) / 60, 1),
            "metric_definition": METRIC_DEFINITION,
            "tasks": {t: TASK_NAMES[t] for t in tasks},
            "models": models, "seeds": seeds,
            "data": report_data,
            "folds": {t: folds[t] for t in tasks if t in report_data},
            "encoder": encoder_info,
            "pretrain_target": None if encoder_info else args.pretrain_target,
            "pretraining": pretraining,
            "results": results,
            "comparisons": comparisons,
            "timings": timings,
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }

    def write_report(partial: bool) -> dict:
        report = build_report(partial)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "downstream.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
        (args.out / "summary.md").write_text(format_summary(report))
        plot(report, args.out)
        return report

    # what a finished result row depends on (besides its model, seed, fold and pre-training corpus or encoder).
    # Flags added later join it only away from their default, so older work dirs stay reusable; --encoder is
    # its weights' fingerprint (below), --lora-lr the lr of eegfm_lora rows.
    row_args = {k: v for k, v in vars(args).items()
                if k not in ("reuse", "progress", "out", "threads", "seeds", "models", "tasks", "work_dir",
                             "encoder", "lora_lr", "only_folds")
                and not (k == "pretrain_target" and v == "codes") and not (k == "lr_schedule" and v == "cosine")
                and not (k == "patch_mean" and not v) and not (k == "pooling" and v == "mean")
                and not (k == "attention_bias" and v == "none")
                and not (k == "pretrain_visible_blocks" and not v)}
    n_fold_total = sum(len([f for f in folds[t] if only is None or f["fold"] in only]) for t in tasks)
    fold_seconds: list[float] = []
    for t in tasks:
        # -------------------------------------------------------- labelled data
        t0 = time.perf_counter()
        loader = load_ma if t == "ma" else load_mi
        seconds = args.ma_window_seconds if t == "ma" else args.mi_seconds
        data = loader(args.data_root, selected[t], data_cfg, seconds)
        counts = {s: class_counts(subset(data, [s]), CLASSES[t]) for s in selected[t]}
        report_data[t] = {"name": TASK_NAMES[t], "classes": CLASSES[t], "subjects": selected[t],
                          "seconds_per_example": seconds, "n_examples": len(data),
                          "n_channels": sorted({int(np.shape(s)[0]) for s in data.signals}),
                          "per_class": class_counts(data, CLASSES[t]), "per_subject": counts,
                          "classic_band_hz": list(bands[t])}
        timings.setdefault(t, {})["load_data_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{t}] {len(data)} examples {report_data[t]['per_class']} from {len(selected[t])} subjects "
              f"({timings[t]['load_data_s']} s)")
        own_key = "eegmat" if t == "ma" else "eegbci"

        def spec_for(own: list[str], corpus: str = "all") -> tuple[str, list[str], dict]:
            subjects = pretrain_subjects(t, own, selected, corpus)
            spec, notes = corpus_spec(args.data_root, subjects["ma"], subjects["mi"],
                                      extras if corpus == "all" else [], pretrain_runs)
            return spec, notes, {"eegmat": subjects["ma"], "eegbci": subjects["mi"]}

        # -------------------------------------------------------- tokenizer (no recording of this task's dataset)
        needs_encoder = any(m in models for m in EEGFM_MODELS if m != "eegfm_scratch")
        pretrain_here = needs_encoder and given_encoder is None  # else: the --encoder, no pre-training
        tokenizer = None
        pretraining[t] = {"tokenizer": None, "folds": {}}
        if given_encoder is not None:
            pretraining[t]["encoder"] = encoder_info["encoder_dir"]
        elif pretrain_here:
            pretraining[t]["target"] = args.pretrain_target
        if pretrain_here and not spectrum:
            tok_spec, notes, tok_subjects = spec_for([])
            tok_dir = work / t / "tokenizer"
            fp = _fingerprint({"recipe": recipe, "spec": tok_spec})
            print(f"[{t}] tokenizer corpus (no {own_key} recording): {tok_spec}")
            for n in notes:
                print(f"  {n}")
            listing = corpus_listing(tok_spec)
            t0 = time.perf_counter()
            if reusable(tok_dir, fp, "model", "summary.json"):
                tokenizer = NeuralTokenizer.from_pretrained(tok_dir / "model")
                tok_summary = json.loads((tok_dir / "summary.json").read_text())
                print(f"  reusing the tokenizer in {tok_dir}")
            else:
                shutil.rmtree(tok_dir, ignore_errors=True)
                pre_data = DataConfig(sources=tok_spec, cache_dir=data_cfg.cache_dir,
                                      window_seconds=args.pretrain_window_seconds, batch_size=args.pretrain_batch_size)
                tokenizer, tok_summary = train_tokenizer(TokenizerRun(
                    model=TokenizerModelConfig(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth,
                                               num_heads=args.heads, code_dim=args.code_dim, num_codes=args.num_codes,
                                               decoder_depth=1, dead_code_steps=50),
                    data=pre_data, train=train_config(tok_dir, args.tokenizer_steps, args.tokenizer_lr)))
                tok_summary["seconds"] = round(time.perf_counter() - t0, 1)
                (tok_dir / "summary.json").write_text(json.dumps(tok_summary, indent=2))
                (tok_dir / "fingerprint.txt").write_text(fp)
                shutil.rmtree(tok_dir / "checkpoints", ignore_errors=True)
            c = tok_summary["codebook"]
            print(f"  tokenizer: {c['usage']:.1%} of {args.num_codes} codes used, perplexity {c['perplexity']:.1f} "
                  f"({tok_summary.get('seconds', 0)} s)")
            pretraining[t]["tokenizer"] = {"sources": tok_spec, "notes": notes, "subjects": tok_subjects, **listing,
                                           "windows": tok_summary["windows"], "codebook": c,
                                           "seconds": tok_summary.get("seconds")}
            timings[t]["tokenizer_s"] = tok_summary.get("seconds")

        # -------------------------------------------------------- folds
        for fold in folds[t]:
            f = fold["fold"]
            if only is not None and f not in only:
                continue
            t_fold = time.perf_counter()
            train, valid, test = (subset(data, fold[k]) for k in ("train", "val", "test"))
            fold["n_examples"] = {"train": len(train), "val": len(valid), "test": len(test)}
            print(f"[{t}] fold {f}: train {len(train)}, val {len(valid)}, test {len(test)} examples")
            encoder = given_encoder
            if pretrain_here:
                own = fold["train"] if args.pretrain_corpus == "task-train" else \
                    [s for s in selected[t] if s not in fold["test"]]
                spec, notes, subjects = spec_for(own, args.pretrain_corpus)
                pre_dir = work / t / f"fold{f}" / "pretrain"
                payload = {"recipe": recipe, "spec": spec}
                if not spectrum:
                    payload["tokenizer"] = (work / t / "tokenizer" / "fingerprint.txt").read_text()
                fp = _fingerprint(payload)
                listing = corpus_listing(spec)
                t0 = time.perf_counter()
                if reusable(pre_dir, fp, "encoder", "evaluation.json"):
                    encoder = MAPEEncoder.from_pretrained(pre_dir / "encoder")
                    summary = json.loads((pre_dir / "evaluation.json").read_text())
                    print(f"  reusing the pre-trained encoder in {pre_dir}")
                else:
                    shutil.rmtree(pre_dir, ignore_errors=True)
                    model_cfg = dict(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.heads,
                                     patch_mean=bool(args.patch_mean), attention_bias=args.attention_bias)
                    if "patch_size" in {fl.name for fl in dataclasses.fields(PretrainModelConfig)}:
                        model_cfg["patch_size"] = args.patch_size  # must equal the tokenizer's
                    model_cfg["single_pass"] = bool(args.single_pass)  # recorded as run, never the default's guess
                    if spectrum:  # MaskedPretrainer(target="spectrum" or "spectrum_slow"): no tokenizer, no code cache
                        model_cfg["target"] = args.pretrain_target
                    if args.pretrain_visible_blocks:
                        model_cfg["visible_blocks"] = args.pretrain_visible_blocks
                    pre_data = DataConfig(sources=spec, cache_dir=data_cfg.cache_dir,
                                          window_seconds=args.pretrain_window_seconds,
                                          batch_size=args.pretrain_batch_size)
                    pretrainer, summary = pretrain(PretrainRun(
                        tokenizer="", model=PretrainModelConfig(**model_cfg), data=pre_data,
                        train=train_config(pre_dir, args.pretrain_steps, args.pretrain_lr), eval_batches=10),
                        tokenizer=tokenizer)
                    encoder = pretrainer.encoder
                    summary["seconds"] = round(time.perf_counter() - t0, 1)
                    (pre_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
                    (pre_dir / "fingerprint.txt").write_text(fp)
                    shutil.rmtree(pre_dir / "checkpoints", ignore_errors=True)
                    shutil.rmtree(pre_dir / "model", ignore_errors=True)
                ev = summary["evaluation"]
                print(f"  pre-training ({args.pretrain_target}): {format_evaluation(ev)}; {summary.get('seconds')} s")
                pretraining[t]["folds"][str(f)] = {
                    "sources": spec, "notes": notes, "subjects": subjects, "excluded_test_subjects": fold["test"],
                    **listing, "windows": summary.get("windows"), "target": args.pretrain_target,
                    "masked_r2" if spectrum else "masked_accuracy": ev, "seconds": summary.get("seconds")}
                timings[t].setdefault("pretrain_s", {})[str(f)] = summary.get("seconds")

            for m in [m for m in models if m in TASK_MODELS[t]]:
                run_seeds = [None] if m in CLASSIC_MODELS else seeds
                for seed in run_seeds:
                    seed_key = "classic" if seed is None else str(seed)
                    row_dir = work / t / f"fold{f}" / "rows"
                    row_file = row_dir / f"{m}_seed{seed_key}.json"
                    payload = {"model": m, "seed": seed, "test": fold["test"], "val": fold["val"],
                               "train": fold["train"], "args": row_args,
                               "pretrain": pretraining[t]["folds"].get(str(f), {}).get("sources")}
                    if encoder_info and m in EEGFM_MODELS:
                        payload["encoder"] = encoder_info["fingerprint"]
                    if m == "eegfm_lora":
                        payload["lr"] = eegfm_lr(m, args)
                    fp = _fingerprint(payload)
                    if args.reuse and row_file.is_file() and json.loads(row_file.read_text()).get("fingerprint") == fp:
                        saved = json.loads(row_file.read_text())
                        row, labels, logits = saved["row"], np.array(saved["labels"]), np.array(saved["logits"])
                        drop_logits = {k: np.array(v) for k, v in saved.get("drop_logits", {}).items()}
                    else:
                        t0 = time.perf_counter()
                        # the full test set, then the same test set with channels removed (same draw per fold)
                        drop_seed = 1000 + f
                        if m in EEGFM_MODELS:
                            tests = [test] + [test.drop_channels(q, seed=drop_seed) for q in drops]
                            info, all_logits = run_eegfm(m, seed, encoder, encoder_config, train, valid, tests, args,
                                                         work / t / f"fold{f}" / f"ft_{m}_{seed}")
                            shutil.rmtree(work / t / f"fold{f}" / f"ft_{m}_{seed}", ignore_errors=True)
                        else:
                            tests = [stack(test)] + [zero_dropped_channels(test, q, drop_seed) for q in drops]
                            if m in BRAINDECODE_MODELS:
                                info, all_logits = run_braindecode(m, seed, train, valid, tests, args)
                            else:
                                info, all_logits = run_classic(m, concat([train, valid], CLASSES[t]), tests,
                                                               bands[t])
                        logits = all_logits[0]
                        drop_logits = {str(q): lg for q, lg in zip(drops, all_logits[1:])}
                        labels = test.labels
                        test_report = classification_report(labels, logits)
                        per_subject = {}
                        for s in fold["test"]:
                            idx = np.flatnonzero(test.groups.astype(str) == s)
                            if len(idx):
                                per_subject[s] = classification_report(labels[idx], logits[idx])["balanced_accuracy"]
                        row = {"fold": f, "seed": seed_key, "test": test_report, "per_subject_balanced_accuracy":
                               per_subject, **info, "seconds": round(time.perf_counter() - t0, 1),
                               "channel_drop": {q: classification_report(labels, lg)["balanced_accuracy"]
                                                for q, lg in drop_logits.items()}}
                        row_dir.mkdir(parents=True, exist_ok=True)
                        row_file.write_text(json.dumps({"fingerprint": fp, "row": row, "labels": labels.tolist(),
                                                        "logits": np.asarray(logits).tolist(),
                                                        "drop_logits": {q: np.asarray(lg).tolist()
                                                                        for q, lg in drop_logits.items()}}))
                    results_rows.setdefault((t, m), []).append(row)
                    preds.setdefault((t, m), {})[(f, seed_key)] = (np.asarray(labels), np.asarray(logits))
                    for q, lg in drop_logits.items():
                        drop_preds.setdefault((t, m, q), {})[(f, seed_key)] = (np.asarray(labels), lg)
                    tr = row["test"]
                    print(f"  {m:<17} seed {seed_key:>7}: balanced acc {tr['balanced_accuracy']:.3f}, "
                          f"AUROC {tr['auroc']:.3f}, best epoch {row.get('best_epoch')}, {row['seconds']} s")
            fold_seconds.append(time.perf_counter() - t_fold)
            timings[t].setdefault("fold_s", {})[str(f)] = round(fold_seconds[-1], 1)
            write_report(partial=True)
            done = len(fold_seconds)
            elapsed = time.perf_counter() - start
            left = (n_fold_total - done) * float(np.mean(fold_seconds))
            print(f"[{t}] fold {f} took {fold_seconds[-1]:.0f} s; {done}/{n_fold_total} folds done, "
                  f"{elapsed / 60:.1f} min so far, about {left / 60:.0f} min left (estimate)")
    report = write_report(partial=only is not None and n_fold_total < sum(len(folds[t]) for t in tasks))
    print(format_summary(report))
    return report


if __name__ == "__main__":
    main()
