#!/usr/bin/env python
"""Build the small real-EEG sample shipped in ``eegfm/datasets/sample/``.

The sample lets the README demo run offline on a fresh machine. It holds three short
excerpts of real human EEG from two PhysioNet databases (both ODC-By 1.0):

- ``eegbci_S001R04``: EEG Motor Movement/Imagery, subject S001, run R04 (imagined
  left/right fist), the first 30 s, 64 channels at the native 160 Hz. Channel names are
  standardised to 10-10 with :func:`mne.datasets.eegbci.standardize` (``Fc5.`` -> ``FC5``).
- ``eegmat_sub-02_rest`` and ``eegmat_sub-02_arithmetic``: EEG During Mental Arithmetic,
  subject 02, 16 s each starting 10 s into the recording, the 19 EEG channels at the
  native 500 Hz (16 s rather than 20 s to keep the whole sample under 1 MB). The
  ``EEG `` prefix is stripped but the legacy 10-20 names ``T3``/``T4``/``T5``/``T6`` are
  kept on purpose.

Each excerpt is stored as one ``np.savez_compressed`` archive with

- ``data``: int16, shape (n_channels, n_times); microvolts are ``data * scale[:, None]``;
- ``scale``: float64, shape (n_channels,), µV per count: ``max|x| / 32767`` per channel,
  or exactly 1.0 for a channel already stored in whole microvolts (eegbci), which is
  then lossless;
- ``ch_names``: unicode, shape (n_channels,);
- ``sfreq``: float64 scalar.

``manifest.json`` lists every recording with its labels/annotations, provenance and the
sha256 of both the source EDF and the written archive. The output is deterministic: the
zip members get a fixed timestamp, so a re-run gives the same bytes (for the same numpy,
zlib and MNE versions).

Usage (from the repository root)::

    python scripts/make_sample.py                      # reads ../shared/data
    python scripts/make_sample.py --shared-data /path/to/shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import mne
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "eegfm" / "datasets" / "sample"

INT16_MAX = 32767
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp -> byte-identical re-runs
MAX_TOTAL_BYTES = 1_000_000
# The eegmat excerpts were planned at 20 s, but two 20 s excerpts at 500 Hz (~370 kB each;
# near-full-scale int16 barely deflates) plus the 30 s eegbci one exceed the 1 MB budget.
EEGMAT_SECONDS = 16.0

LICENCE = "ODC-By-1.0"
PHYSIONET_CITATION = (
    "Goldberger AL, Amaral LAN, Glass L, Hausdorff JM, Ivanov PCh, Mark RG, Mietus JE, "
    "Moody GB, Peng C-K, Stanley HE. PhysioBank, PhysioToolkit, and PhysioNet: components "
    "of a new research resource for complex physiologic signals. Circulation "
    "101(23):e215-e220, 2000."
)
EEGBCI = {
    "dataset": "eegbci",
    "dataset_title": "EEG Motor Movement/Imagery Dataset (PhysioNet eegmmidb 1.0.0)",
    "url": "https://physionet.org/content/eegmmidb/1.0.0/",
    "licence": LICENCE,
    "citation": [
        "Schalk G, McFarland DJ, Hinterberger T, Birbaumer N, Wolpaw JR. BCI2000: a "
        "general-purpose brain-computer interface (BCI) system. IEEE Transactions on "
        "Biomedical Engineering 51(6):1034-1043, 2004.",
        PHYSIONET_CITATION,
    ],
}
EEGMAT = {
    "dataset": "eegmat",
    "dataset_title": "EEG During Mental Arithmetic Tasks (PhysioNet eegmat 1.0.0)",
    "url": "https://physionet.org/content/eegmat/1.0.0/",
    "licence": LICENCE,
    "citation": [
        "Zyma I, Tukaev S, Seleznov I, Kiyono K, Popov A, Chernykh M, Shpenkov O. "
        "Electroencephalograms during Mental Arithmetic Task Performance. Data 4(1):14, "
        "2019. https://doi.org/10.3390/data4010014",
        PHYSIONET_CITATION,
    ],
}
EEGMAT_EEG = [
    "Fp1", "Fp2", "F3", "F4", "F7", "F8", "T3", "T4", "C3", "C4",
    "T5", "T6", "P3", "P4", "O1", "O2", "Fz", "Cz", "Pz",
]  # fmt: skip

# name, dataset info, source path (relative to shared/data), excerpt start/length (s), extras
RECORDINGS = [
    {
        "name": "eegbci_S001R04",
        "info": EEGBCI,
        "source": "eegbci/MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf",
        "start_s": 0.0,
        "duration_s": 30.0,
        "subject": "S001",
        "task": "motor imagery (imagined left/right fist)",
        "run": "R04",
        "label": None,
        "event_id": {
            "T0": "rest",
            "T1": "imagined left fist",
            "T2": "imagined right fist",
        },
    },
    {
        "name": "eegmat_sub-02_rest",
        "info": EEGMAT,
        "source": "eegmat_bids/sub-02/eeg/sub-02_task-rest_eeg.edf",
        "start_s": 10.0,
        "duration_s": EEGMAT_SECONDS,
        "subject": "sub-02",
        "task": "rest",
        "run": None,
        "label": "rest",
        "event_id": {"rest": "resting state before the task"},
    },
    {
        "name": "eegmat_sub-02_arithmetic",
        "info": EEGMAT,
        "source": "eegmat_bids/sub-02/eeg/sub-02_task-arithmetic_eeg.edf",
        "start_s": 10.0,
        "duration_s": EEGMAT_SECONDS,
        "subject": "sub-02",
        "task": "arithmetic",
        "run": None,
        "label": "arithmetic",
        "event_id": {"arithmetic": "mental serial subtraction"},
    },
]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fid:
        for block in iter(lambda: fid.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_excerpt(path: Path, rec: dict) -> tuple[np.ndarray, list[str], float, list[dict]]:
    """Read one EDF excerpt.

    Returns
    -------
    data_uv : np.ndarray, shape (n_channels, n_times), float64
        The excerpt in microvolts.
    ch_names : list of str
        Clean channel names.
    sfreq : float
        Native sampling rate.
    annotations : list of dict
        ``onset``/``duration`` (s, relative to the excerpt start) and ``description``.
    """
    raw = mne.io.read_raw_edf(path, preload=False, verbose=False)
    sfreq = float(raw.info["sfreq"])
    if rec["info"] is EEGBCI:
        mne.datasets.eegbci.standardize(raw)
        picks = mne.pick_types(raw.info, eeg=True)
    else:
        # read_raw_edf types every channel "eeg"; keep only the 19 scalp channels.
        picks = [raw.ch_names.index(f"EEG {name}") for name in EEGMAT_EEG]
    start = int(round(rec["start_s"] * sfreq))
    n_times = int(round(rec["duration_s"] * sfreq))
    if start + n_times > raw.n_times:
        raise ValueError(f"{path} is too short for the excerpt {rec['name']}")
    data_uv = raw.get_data(picks=picks, start=start, stop=start + n_times) * 1e6
    ch_names = [raw.ch_names[p] for p in picks]
    if rec["info"] is EEGMAT:
        ch_names = [name.removeprefix("EEG ") for name in ch_names]
    assert len(set(ch_names)) == len(ch_names)

    tmin, tmax = start / sfreq, (start + n_times) / sfreq
    annotations = []
    if rec["label"] is None:  # events from the EDF+ annotations, onset inside the excerpt
        for annot in raw.annotations:
            onset = float(annot["onset"])
            if tmin <= onset < tmax:
                end = min(onset + float(annot["duration"]), tmax)
                annotations.append(
                    {
                        "onset": round(onset - tmin, 6),
                        "duration": round(end - onset, 6),
                        "description": str(annot["description"]),
                    }
                )
    else:  # one annotation spanning the whole excerpt
        annotations.append(
            {"onset": 0.0, "duration": round(n_times / sfreq, 6), "description": rec["label"]}
        )
    return data_uv, ch_names, sfreq, annotations


def quantise(data_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel int16 quantisation.

    The scale is ``max|x| / 32767`` (the quantisation error is at most ``scale / 2``),
    except for a channel whose samples are already whole microvolts and fit in int16 (the
    EEGMMIDB EDFs store 1 µV per count): it gets ``scale = 1.0`` and is stored exactly,
    which also compresses much better than a finer grid filled with rounding noise.

    Parameters
    ----------
    data_uv : np.ndarray, shape (n_channels, n_times)
        Signal in microvolts.

    Returns
    -------
    data : np.ndarray, shape (n_channels, n_times), int16
        ``round(data_uv / scale[:, None])``.
    scale : np.ndarray, shape (n_channels,), float64
        Microvolts per count (1.0 for an all-zero channel).
    """
    peak = np.abs(data_uv).max(axis=1)
    scale = np.where(peak > 0, peak / INT16_MAX, 1.0)
    whole_uv = np.all(np.abs(data_uv - np.rint(data_uv)) < 1e-6, axis=1) & (peak <= INT16_MAX)
    scale[whole_uv] = 1.0
    data = np.clip(np.rint(data_uv / scale[:, None]), -INT16_MAX, INT16_MAX).astype(np.int16)
    return data, scale


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed``, then rewrite the zip with fixed member timestamps."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    buffer.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as zin, zipfile.ZipFile(out, "w") as zout:
        for member in zin.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, zin.read(member.filename), compresslevel=9)
    path.write_bytes(out.getvalue())


def readme_text(manifest: dict) -> str:
    """The sample's README.md."""
    rows = []
    for rec in manifest["recordings"]:
        rows.append(
            f"| `{rec['name']}` | {rec['dataset']} | {rec['subject']} | "
            f"{rec['task']}{' / ' + rec['run'] if rec['run'] else ''} | {rec['n_channels']} | "
            f"{rec['sfreq']:g} Hz | {rec['excerpt_start_s']:g}-"
            f"{rec['excerpt_start_s'] + rec['duration_s']:g} s | `{rec['source']}` |"
        )
    table = "\n".join(rows)
    return f"""# eegfm sample EEG (real human recordings)

Three short excerpts of **real human EEG** shipped inside the package so that the README demo
runs offline. Load them with

```python
from eegfm.datasets import list_sample_recordings, load_sample
raws = load_sample(verbose=False)  # list of mne.io.RawArray, data in volts
```

| Name | Dataset | Subject | Task / run | Channels | Rate | Excerpt of source | Source (in `shared/data/`) |
|---|---|---|---|---|---|---|---|
{table}

* `eegbci_S001R04`: channel names standardised to 10-10 by `mne.datasets.eegbci.standardize`
  (`Fc5.` -> `FC5`). Annotations are the EDF+ events whose onset falls inside the excerpt
  (T0 = rest, T1 = imagined left fist, T2 = imagined right fist); the last event's duration is
  clipped at the end of the excerpt.
* `eegmat_sub-02_*`: only the 19 scalp EEG channels (`EEG A2-A1` and `ECG ECG` dropped), the
  `EEG ` prefix stripped, the legacy 10-20 names `T3`/`T4`/`T5`/`T6` kept on purpose (eegfm
  resolves them by alias). One annotation spans the excerpt with its label (`rest` or
  `arithmetic`). Reference: linked ears.
* The eegmat excerpts are 16 s (10-26 s of each source file) rather than 20 s so that the
  whole sample stays under 1 MB; two 20 s excerpts at 500 Hz would take ~740 kB on their own.
* Native sampling rates; nothing is filtered or resampled. No montage (electrode positions) is
  stored: positions are resolved from the channel names.

## Format

One `np.savez_compressed` archive per recording with `data` (int16, shape
`(n_channels, n_times)`), `scale` (float64, shape `(n_channels,)`, µV per count),
`ch_names` and `sfreq`. Microvolts are `data * scale[:, None]`. The scale is
`max|x| / 32767` per channel (quantisation error at most `scale / 2`, i.e. ~0.001 µV for
eegmat), except where the source already stores whole microvolts (all eegbci channels: the
EEGMMIDB EDFs have 1 µV per count), which get `scale = 1.0` and are stored exactly.
`manifest.json` lists, for every recording, the annotations, the source file and its sha256,
the sha256 of the archive, the licence and the citations.

## Licence and citation

Both source databases are published on PhysioNet under the **Open Data Commons Attribution
License v1.0 (ODC-By 1.0)**, https://opendatacommons.org/licenses/by/1-0/ . These excerpts are
redistributed under the same licence; if you use them, cite:

* EEG Motor Movement/Imagery Dataset, https://physionet.org/content/eegmmidb/1.0.0/ :
  {EEGBCI["citation"][0]}
* EEG During Mental Arithmetic Tasks, https://physionet.org/content/eegmat/1.0.0/ :
  {EEGMAT["citation"][0]}
* PhysioNet: {PHYSIONET_CITATION}

The source EDF files are byte-identical to the PhysioNet originals (eegmmidb checked against
MNE's `eegbci_checksums.txt`, eegmat against the published eegmat `SHA256SUMS.txt`); see
`shared/data/SOURCES.md` in the development checkout.

## Regenerate

From the repository root, with the development data in `../shared/data`:

```bash
python scripts/make_sample.py --shared-data ../shared/data
```

The output is deterministic (fixed zip timestamps), so a re-run with the same numpy/zlib/MNE
versions reproduces the same bytes and the sha256 values in `manifest.json`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=DEFAULT_SHARED,
        help="folder holding eegbci/ and eegmat_bids/ (default: ../shared/data next to the repo)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    shared = args.shared_data
    if not shared.is_absolute():
        shared = (REPO_ROOT / shared).resolve()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    records = []
    for rec in RECORDINGS:
        src = shared / rec["source"]
        if not src.is_file():
            raise FileNotFoundError(f"source EDF not found: {src}")
        data_uv, ch_names, sfreq, annotations = read_excerpt(src, rec)
        data, scale = quantise(data_uv)
        npz_name = f"{rec['name']}.npz"
        write_npz(
            out / npz_name,
            {
                "data": data,
                "scale": scale,
                "ch_names": np.array(ch_names, dtype=np.str_),
                "sfreq": np.float64(sfreq),
            },
        )
        info = rec["info"]
        records.append(
            {
                "name": rec["name"],
                "file": npz_name,
                "dataset": info["dataset"],
                "dataset_title": info["dataset_title"],
                "subject": rec["subject"],
                "task": rec["task"],
                "run": rec["run"],
                "label": rec["label"],
                "event_id": rec["event_id"],
                "annotations": annotations,
                "n_channels": len(ch_names),
                "ch_names": ch_names,
                "sfreq": sfreq,
                "n_times": int(data.shape[1]),
                "duration_s": data.shape[1] / sfreq,
                "excerpt_start_s": rec["start_s"],
                "units": "int16 counts; microvolts = data * scale[:, None]",
                "source": rec["source"],
                "source_url": info["url"],
                "source_sha256": sha256_file(src),
                "npz_sha256": sha256_file(out / npz_name),
                "licence": info["licence"],
                "citation": info["citation"],
            }
        )
        print(f"{npz_name}: {data.shape} @ {sfreq:g} Hz, {(out / npz_name).stat().st_size} B")

    manifest = {
        "description": "eegfm offline sample: short excerpts of real human EEG (PhysioNet)",
        "licence": LICENCE,
        "generator": "scripts/make_sample.py",
        "recordings": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    (out / "README.md").write_text(readme_text(manifest))

    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"total {total} B in {out}")
    if total >= MAX_TOTAL_BYTES:
        raise SystemExit(f"sample is {total} B, over the {MAX_TOTAL_BYTES} B budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
