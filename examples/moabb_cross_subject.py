"""MOABB ``CrossSubjectEvaluation`` of a saved eegfm encoder on PhysioNet MI (offline).

Imagined left vs right fist (MOABB ``LeftRightImagery``), leave-one-subject-out: for each test
subject, braindecode's ``EEGClassifier(EEGMirror)`` fine-tunes the encoder (a new head on top)
on the other subjects' trials, and MOABB scores it on the held-out subject (ROC AUC for two
classes). The runs are read from ../shared/data/eegbci (or ``EEGFM_SHARED_DATA``/eegbci, or
``--data``) by :func:`eegfm.finetune.moabb.offline_physionet_mi`, which never downloads.

    python examples/moabb_cross_subject.py                                  # tiny encoder, subjects 1-5
    python examples/moabb_cross_subject.py --encoder runs/pretrain/encoder --subjects all --epochs 30
    python examples/moabb_cross_subject.py --subjects 1,2,3,4,5 --frozen   # linear probe

``--encoder`` is a ``MAPEEncoder.save_pretrained`` folder or Hub repo id; without it a tiny
encoder (random weights, ``--embed-dim``/``--depth``) is built, saved to a temporary folder,
loaded back from it like a real checkpoint, and the folder is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("EEGFM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "eegbci"


def _subjects(text: str):
    """``"all"`` -> None (every local subject), ``"1,2,5"`` -> [1, 2, 5], ``"1-4"`` -> [1, 2, 3, 4]."""
    if text == "all":
        return None
    out = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


def build_pipeline(encoder, chs_info, n_times: int, args):
    """to µV float32 -> braindecode ``EEGClassifier(EEGMirror)`` (pre-trained encoder, new head)."""
    from braindecode import EEGClassifier
    from skorch.callbacks import Freezer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from eegfm.finetune.braindecode import EEGMirror
    from eegfm.finetune.moabb import to_microvolts

    module = EEGMirror.from_encoder(encoder, n_outputs=2, chs_info=chs_info, n_times=n_times, sfreq=encoder.sfreq)
    callbacks = [("freeze_encoder", Freezer("encoder.*"))] if args.frozen else []
    clf = EEGClassifier(module, optimizer=torch.optim.AdamW, lr=args.lr, batch_size=args.batch_size,
                        max_epochs=args.epochs, train_split=None, verbose=0, iterator_train__shuffle=True,
                        callbacks=callbacks)
    return make_pipeline(FunctionTransformer(to_microvolts), clf)


def evaluate(encoder_path, args):
    """Run MOABB's CrossSubjectEvaluation; returns its results DataFrame (one row per test subject)."""
    from moabb.evaluations import CrossSubjectEvaluation
    from moabb.paradigms import LeftRightImagery

    from eegfm import MAPEEncoder
    from eegfm.finetune.moabb import offline_physionet_mi

    encoder = MAPEEncoder.from_pretrained(encoder_path)
    dataset = offline_physionet_mi(args.data, subjects=args.subjects)  # local runs only, never downloads
    if len(dataset.subject_list) < 2:
        raise SystemExit(f"cross-subject evaluation needs at least 2 subjects, got {dataset.subject_list}")
    # epochs at the encoder's contract: its rate, 0.5-75 Hz (MOABB gives volts; the pipeline makes µV)
    paradigm = LeftRightImagery(fmin=0.5, fmax=75.0, resample=encoder.sfreq)
    epochs, _, _ = paradigm.get_data(dataset, subjects=dataset.subject_list[:1], return_epochs=True)
    pipeline = build_pipeline(encoder, epochs.info["chs"], len(epochs.times), args)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="eegfm-moabb-") as results_dir:
        evaluation = CrossSubjectEvaluation(paradigm=paradigm, datasets=[dataset], overwrite=True, n_jobs=1,
                                            hdf5_path=str(args.work_dir or results_dir), suffix="eegfm")
        return evaluation.process({"eegfm (EEGMirror)": pipeline})


def run(args):
    """``evaluate`` on ``--encoder``, or on a tiny encoder saved to a temporary folder."""
    if args.encoder:
        return evaluate(args.encoder, args)
    from eegfm import MAPEEncoder

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="eegfm-encoder-") as folder:
        MAPEEncoder(embed_dim=args.embed_dim, depth=args.depth, num_heads=2, patch_size=100).save_pretrained(folder)
        return evaluate(folder, args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default=None, help="saved MAPEEncoder: folder or Hub repo id (default: tiny, "
                        "random weights, saved to a temporary folder)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding MNE-eegbci-data")
    parser.add_argument("--subjects", type=_subjects, default=[1, 2, 3, 4, 5],
                        help="'1-5' (default), '1,2,3' or 'all' (every subject with runs 4, 8, 12 on disk)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per fold")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--frozen", action="store_true", help="train the head only (linear probe)")
    parser.add_argument("--embed-dim", type=int, default=32, help="tiny encoder width (without --encoder)")
    parser.add_argument("--depth", type=int, default=1, help="tiny encoder depth (without --encoder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep MOABB's results store here "
                        "(default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="write the per-subject table as CSV")
    args = parser.parse_args(argv)
    import mne

    start = time.perf_counter()
    old_level = mne.set_log_level("WARNING", return_old_level=True)  # MOABB/MNE log each epoching at INFO
    try:
        with warnings.catch_warnings():  # third-party deprecations: MOABB's h5py store, MNE's montage rename
            warnings.filterwarnings("ignore", message="Creating a dataset without passing data or dtype")
            warnings.filterwarnings("ignore", message="Montage name 'standard_10[0-9]+' is deprecated")
            results = run(args)
    finally:
        mne.set_log_level(old_level)
    # MOABB's columns: samples = training trials of the fold, samples_test = the test subject's trials
    table = results[["subject", "session", "score", "samples", "samples_test", "time"]]
    table = table.astype({"samples": int, "samples_test": int})
    table = table.sort_values("subject", key=lambda s: s.astype(int)).reset_index(drop=True)
    print(f"MOABB CrossSubjectEvaluation, PhysioNet MI imagined left vs right fist, score = ROC AUC "
          f"({len(table)} test subjects, {args.epochs} epochs{', encoder frozen' if args.frozen else ''}):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"mean {table['score'].mean():.3f} (chance 0.5; a tiny random encoder stays near it: pass --encoder and "
          f"more --epochs); {time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    main()
