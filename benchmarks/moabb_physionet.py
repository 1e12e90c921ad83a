"""MOABB's own evaluation of the fine-tuned eegfm encoder on PhysioNet MI subject 1 (offline).

    python benchmarks/moabb_physionet.py --encoder /tmp/eegfm-mental-arithmetic/pretrain_mape_mask50/encoder

``WithinSessionEvaluation`` (5-fold, MOABB's default score: ROC AUC for two classes) of
imagined left vs right fist, for: ``EEGMirror`` on a pre-trained eegfm encoder (fully
fine-tuned, and as a linear probe with the encoder frozen) and the same model from scratch (braindecode ``EEGClassifier``, epochs at the encoder's contract: 200 Hz,
0.5-75 Hz), beside MOABB's classic pipelines CSP+LDA and tangent space + logistic regression
(8-32 Hz). The pre-trained encoder is the one ``benchmarks/mental_arithmetic.py`` writes
(pre-trained without labels on PhysioNet MI subject 1, the EEGLAB sample and eegmat).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--encoder", default="/tmp/eegfm-mental-arithmetic/pretrain_mape_mask50/encoder",
                        help="pre-trained MAPEEncoder (folder or Hub id)")
    parser.add_argument("--subject", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "moabb_physionet")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/eegfm-moabb"))
    args = parser.parse_args(argv)
    from braindecode import EEGClassifier
    from skorch.callbacks import Freezer
    from mne.decoding import CSP
    from moabb.evaluations import WithinSessionEvaluation
    from moabb.paradigms import LeftRightImagery
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from eegfm import MAPEEncoder
    from eegfm.finetune.braindecode import EEGMirror
    from eegfm.finetune.moabb import offline_physionet_mi, to_microvolts

    start = time.perf_counter()
    try:
        encoder = MAPEEncoder.from_pretrained(args.encoder)
    except Exception as err:  # noqa: BLE001 - say what to run instead
        raise SystemExit(f"cannot load the pre-trained encoder {args.encoder!r} ({err}); run "
                         "benchmarks/mental_arithmetic.py first or pass --encoder") from err
    dataset = offline_physionet_mi(args.shared_data / "eegbci", subjects=[args.subject])  # no download
    eegfm_paradigm = LeftRightImagery(fmin=0.5, fmax=75.0, resample=encoder.sfreq)
    classic_paradigm = LeftRightImagery(fmin=8.0, fmax=32.0)
    epochs, _, _ = eegfm_paradigm.get_data(dataset, subjects=[args.subject], return_epochs=True)
    signal = dict(n_outputs=2, chs_info=epochs.info["chs"], n_times=len(epochs.times))

    def eegfm_pipeline(module, frozen_encoder: bool = False):
        callbacks = [("freeze_encoder", Freezer("encoder.*"))] if frozen_encoder else []
        clf = EEGClassifier(module, optimizer=torch.optim.AdamW, lr=args.lr, batch_size=16, max_epochs=args.epochs,
                            train_split=None, verbose=0, iterator_train__shuffle=True, callbacks=callbacks)
        return make_pipeline(FunctionTransformer(to_microvolts), clf)

    torch.manual_seed(0)
    pretrained = EEGMirror.from_encoder(encoder, sfreq=encoder.sfreq, **signal)
    scratch = EEGMirror(sfreq=encoder.sfreq, encoder=encoder.get_config(), **signal)
    eegfm_pipelines = {"eegfm pre-trained (EEGMirror)": eegfm_pipeline(pretrained),
                       "eegfm pre-trained, linear probe": eegfm_pipeline(pretrained, frozen_encoder=True),
                       "eegfm from scratch (EEGMirror)": eegfm_pipeline(scratch)}
    classic_pipelines = {"CSP+LDA": make_pipeline(CSP(n_components=8), LinearDiscriminantAnalysis()),
                         "TS+LR": make_pipeline(Covariances("oas"), TangentSpace(), LogisticRegression(max_iter=1000))}
    rows = []
    jobs = [(eegfm_paradigm, name, p) for name, p in eegfm_pipelines.items()]
    jobs += [(classic_paradigm, name, p) for name, p in classic_pipelines.items()]
    for i, (paradigm, name, pipeline) in enumerate(jobs):
        # one evaluation per pipeline: MOABB keys stored results by the pipeline's repr, which is the
        # same for the pre-trained and the scratch EEGMirror (weights are not part of it)
        evaluation = WithinSessionEvaluation(paradigm=paradigm, datasets=[dataset], overwrite=True,
                                             hdf5_path=str(args.work_dir / f"job{i}"), suffix=f"eegfm{i}", n_jobs=1)
        frame = evaluation.process({name: pipeline})
        for _, row in frame.iterrows():
            rows.append({"pipeline": name, "score": float(row["score"]), "subject": str(row["subject"]),
                         "session": str(row["session"]), "samples": int(row["samples"]), "time": float(row["time"])})
            print(f"{name:<34} score {row['score']:.3f} (session {row['session']}, {row['samples']} trials)")
    report = {
        "benchmark": "moabb_physionet",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": "cpu", "torch": torch.__version__,
        "evaluation": "moabb WithinSessionEvaluation (5-fold CV within session; score = ROC AUC for 2 classes)",
        "minutes": round((time.perf_counter() - start) / 60, 1),
        "encoder": str(args.encoder), "results": rows,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "moabb_physionet.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "moabb_physionet.png")
    return report


def plot(report: dict, path: Path) -> None:
    """Bar chart of the pipelines' scores (``python -c`` on a saved JSON redraws it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    ax.barh([r["pipeline"] for r in rows], [r["score"] for r in rows], color="tab:blue", alpha=0.8)
    ax.axvline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC AUC (MOABB WithinSessionEvaluation, 5-fold)")
    ax.set_title("PhysioNet MI subject 1, imagined left vs right fist")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
