#!/usr/bin/env python
"""Download the real EEG recordings the tests read (../shared/data) and verify every file.

What is fetched, from where, and why each file is there: DATA.md. Every file is checked against
``tests/data_checksums.txt`` (sha256); a file already there with the right checksum is kept.

- ``eegbci/``: PhysioNet EEG Motor Movement/Imagery 1.0.0 (the layout ``mne.datasets.eegbci``
  and MOABB use), from physionet.org;
- ``eegmat_bids/``: PhysioNet EEG During Mental Arithmetic Tasks 1.0.0, from physionet.org,
  converted to BIDS with mne-bids (``pip install "eegfm[data]"``; the sidecar checksums hold
  for mne-bids 0.20, the EDFs are copied unchanged);
- ``eeglab/``: the EEGLAB tutorial sample (``sccn/eeglab`` on GitHub);
- ``openbci_sample/``: the OpenBCI GUI v6 sample recording (``OpenBCI/OpenBCI_GUI`` on GitHub);
- ``uci_eeg_eye_state/``: UCI EEG Eye State (a byte-identical copy on GitHub, then UCI's zip).

    python scripts/fetch_test_data.py                         # into ../shared/data (about 290 MB)
    python scripts/fetch_test_data.py --dest DIR --datasets eegbci,eeglab
    python scripts/fetch_test_data.py --verify                # only check a copy, download nothing
    python scripts/fetch_test_data.py --mirror /path/to/data  # copy from another copy (dir or URL)

Exit status 0 when every requested file is there with its checksum, 1 otherwise (each bad
file named), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKSUMS = REPO / "tests" / "data_checksums.txt"
DEFAULT_DEST = Path(os.environ.get("EEGFM_SHARED_DATA") or REPO.parent / "shared" / "data")
DATASETS = ("eegbci", "eegmat_bids", "eeglab", "openbci_sample", "uci_eeg_eye_state")

PHYSIONET_EEGMMIDB = "https://physionet.org/files/eegmmidb/1.0.0"
PHYSIONET_EEGMAT = "https://physionet.org/files/eegmat/1.0.0"
EEGMAT_GITHUB = ("https://raw.githubusercontent.com/manel79/EEG-arithmetic-task-Manel-Mestre/"
                 "4707c0b46c96d3a3cfc71363fb3ced6dc3cbc2da/data")
EEGLAB = "https://raw.githubusercontent.com/sccn/eeglab/94b8557aa27484c4e2cb4775315802d420b93f32/sample_data"
MNE_TESTING_EEGLAB = ("https://raw.githubusercontent.com/mne-tools/mne-testing-data/"
                      "e31ecb0ab137b3d89c938d0985d42f1d2ffb2bad/EEGLAB")
OPENBCI = ("https://raw.githubusercontent.com/OpenBCI/OpenBCI_GUI/41610b98e6ac0ebc731d278d99813fd6cc9f8c81/"
           "OpenBCI_GUI/data/EEG_Sample_Data/OpenBCI_GUI-v6-blinks-jawClench-alpha.txt")
UCI_GITHUB = "https://raw.githubusercontent.com/rogerior/ixio/b0b821195044ae8ffbdee7e6f2ae07ba334086a9/EEG%20Eye%20State.arff"
UCI_ZIP = "https://archive.ics.uci.edu/static/public/264/eeg+eye+state.zip#EEG Eye State.arff"

EEGMAT_TASKS = {"rest": 1, "arithmetic": 2}  # BIDS task -> the number in SubjectXX_N.edf
EEGMAT_PARTICIPANTS = ("participant_id", "age", "sex", "count_quality", "n_subtractions", "source_subject")


class FetchError(RuntimeError):
    """A file could not be fetched with the expected checksum."""


# ----------------------------------------------------------------------------- checksums
def read_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    """``relative path -> sha256`` from a ``sha256sum`` file (``#`` lines are comments)."""
    sums = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, rel = line.partition("  ")
        if len(digest) != 64 or not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"{path}:{number}: not '<sha256>  <relative path>': {line!r}")
        sums[rel] = digest.lower()
    return sums


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_of(rel: str) -> str:
    return rel.split("/", 1)[0]


def select(checksums: dict[str, str], datasets=None) -> dict[str, str]:
    wanted = set(datasets or DATASETS)
    unknown = wanted - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown dataset(s) {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    return {rel: digest for rel, digest in checksums.items() if dataset_of(rel) in wanted}


def verify(dest: Path, checksums: dict[str, str]) -> list[tuple[str, str]]:
    """``(relative path, problem)`` for every file of ``checksums`` that is missing or differs."""
    problems = []
    for rel, expected in sorted(checksums.items()):
        path = Path(dest) / rel
        if not path.is_file():
            problems.append((rel, "missing"))
        elif (got := sha256_of(path)) != expected:
            problems.append((rel, f"sha256 {got} != expected {expected}"))
    return problems


# ----------------------------------------------------------------------------- sources
def eegmat_edf_name(rel: str) -> str | None:
    """``SubjectXX_N.edf`` (PhysioNet's name) of a BIDS eegmat EDF, None for a sidecar."""
    name = Path(rel).name
    if not (rel.startswith("eegmat_bids/sub-") and name.endswith("_eeg.edf")):
        return None
    subject, task = name.split("_")[0][4:], name.split("_task-")[1].split("_")[0]
    return f"Subject{subject}_{EEGMAT_TASKS[task]}.edf"


def sources_for(rel: str) -> list[str]:
    """Public URLs of a file that is downloaded as it is (first one first); ``[]`` for the files
    written here (the eegmat BIDS sidecars)."""
    name = Path(rel).name
    if rel.startswith("eegbci/MNE-eegbci-data/files/eegmmidb/1.0.0/"):
        return [f"{PHYSIONET_EEGMMIDB}/{rel.split('/1.0.0/', 1)[1]}"]
    if rel.startswith("eegmat_bids/"):
        edf = eegmat_edf_name(rel)
        return [f"{PHYSIONET_EEGMAT}/{edf}", f"{EEGMAT_GITHUB}/{edf}"] if edf else []
    if rel == "eeglab/eeglab_data.set":
        return [f"{EEGLAB}/eeglab_data.set"]
    if rel == "eeglab/eeglab_data.fdt":
        return [f"{EEGLAB}/eeglab_data.fdt", f"{MNE_TESTING_EEGLAB}/test_raw.fdt"]
    if rel == "openbci_sample/OpenBCI_GUI-v6-blinks-jawClench-alpha.txt":
        return [OPENBCI]
    if rel == "uci_eeg_eye_state/eeg_eye_state.arff":
        return [UCI_GITHUB, UCI_ZIP]
    raise ValueError(f"no public source known for {rel!r} ({name})")


def _read_url(url: str) -> bytes:
    """The bytes at ``url`` (http(s) or file); ``URL.zip#member`` reads one member of a zip."""
    url, _, member = url.partition("#")
    request = urllib.request.Request(url, headers={"User-Agent": "eegfm-fetch-test-data"})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (fixed public URLs or file:)
        data = response.read()
    if member:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(urllib.parse.unquote(member))
    return data


def download(urls: list[str], target: Path, expected: str) -> str:
    """Write the first of ``urls`` whose bytes have sha256 ``expected`` to ``target`` (atomically:
    a ``.part`` file renamed into place); return that URL. Nothing is left behind on failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tried = []
    for url in urls:
        try:
            data = _read_url(url)
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            tried.append(f"{url}: {err}")
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            tried.append(f"{url}: sha256 {got} != expected {expected}")
            continue
        part = target.with_name(target.name + ".part")
        part.write_bytes(data)
        os.replace(part, target)
        return url
    raise FetchError(f"{target.name}: no source gave the expected file; tried " + "; ".join(tried))


# ----------------------------------------------------------------------------- eegmat as BIDS
def write_eegmat_participants(subject_info_csv: Path, bids_root: Path, subjects: list[str]) -> None:
    """``participants.tsv`` of ``subjects`` (``"02"``...) from PhysioNet's ``subject-info.csv``
    (columns Subject, Age, Gender, ..., Number of subtractions, Count quality)."""
    with open(subject_info_csv, newline="", encoding="utf-8-sig") as f:
        rows = {row["Subject"].strip(): row for row in csv.DictReader(f)}
    lines = ["\t".join(EEGMAT_PARTICIPANTS)]
    for subject in subjects:
        row = rows.get(f"Subject{subject}")
        if row is None:
            raise FetchError(f"{subject_info_csv}: no row for Subject{subject}")
        lines.append("\t".join([f"sub-{subject}", row["Age"].strip(), row["Gender"].strip(),
                                row["Count quality"].strip(), row["Number of subtractions"].strip(),
                                f"Subject{subject}"]))
    (Path(bids_root) / "participants.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_eegmat_bids(edf_dir: Path, bids_root: Path, subjects: list[str]) -> None:
    """PhysioNet's ``SubjectXX_1.edf`` (rest) / ``_2.edf`` (arithmetic) in ``edf_dir`` -> BIDS in
    ``bids_root``, as the test data was made: mne-bids ``write_raw_bids`` (the EDF copied
    unchanged), ``EEG A2-A1`` = misc, ``ECG ECG`` = ecg, line frequency 50 Hz."""
    import mne
    import mne_bids

    for subject in subjects:
        for task, number in sorted(EEGMAT_TASKS.items()):
            raw = mne.io.read_raw_edf(Path(edf_dir) / f"Subject{subject}_{number}.edf", verbose=False)
            raw.set_channel_types({"EEG A2-A1": "misc", "ECG ECG": "ecg"}, on_unit_change="ignore")
            raw.info["line_freq"] = 50.0
            path = mne_bids.BIDSPath(subject=subject, task=task, datatype="eeg", root=bids_root)
            with warnings.catch_warnings():  # eegmat has no events: nothing to write
                warnings.filterwarnings("ignore", "No events found or provided", RuntimeWarning)
                mne_bids.write_raw_bids(raw, path, overwrite=True, verbose=False)
    readme = Path(bids_root) / "README"
    readme.write_text("PhysioNet 'EEG During Mental Arithmetic Tasks' 1.0.0 (Zyma et al., ODC-By 1.0), "
                      "https://physionet.org/content/eegmat/1.0.0/ , as BIDS for the eegfm tests "
                      "(scripts/fetch_test_data.py; DATA.md).\n", encoding="utf-8")


def eegmat_subjects(checksums: dict[str, str]) -> list[str]:
    return sorted({rel.split("/")[1][4:] for rel in checksums if rel.startswith("eegmat_bids/sub-")})


# ----------------------------------------------------------------------------- main
def fetch(dest: Path, checksums: dict[str, str], mirror: str | None = None, log=print) -> None:
    """Fetch every file of ``checksums`` that is missing or wrong under ``dest``."""
    bad = dict(verify(dest, checksums))
    if not bad:
        return
    if mirror:  # a copy with the same layout: a folder or a base URL
        base = mirror if "://" in mirror else Path(mirror).resolve().as_uri()
        for rel in sorted(bad):
            log(f"{rel}: from {mirror}")
            download([f"{base.rstrip('/')}/{urllib.parse.quote(rel)}"], dest / rel, checksums[rel])
        return
    eegmat = sorted(rel for rel in bad if rel.startswith("eegmat_bids/"))
    for rel in sorted(set(bad) - set(eegmat)):
        log(f"{rel}: downloading")
        log(f"  from {download(sources_for(rel), dest / rel, checksums[rel])}")
    if eegmat:
        # (re)write the subjects with a missing or wrong file; participants.tsv for all of them
        subjects = sorted({rel.split("/")[1][4:] for rel in eegmat if rel.startswith("eegmat_bids/sub-")})
        with tempfile.TemporaryDirectory(prefix="eegmat-") as tmp:
            for rel in sorted(checksums):
                name = eegmat_edf_name(rel)
                if name is None or rel.split("/")[1][4:] not in subjects:
                    continue
                if rel not in bad:  # the BIDS copy is right: reuse it
                    shutil.copyfile(dest / rel, Path(tmp) / name)
                    continue
                log(f"{name}: downloading (-> {rel})")
                log(f"  from {download(sources_for(rel), Path(tmp) / name, checksums[rel])}")
            if subjects:
                log(f"eegmat_bids: writing subjects {', '.join(subjects)} as BIDS with mne-bids")
                write_eegmat_bids(Path(tmp), dest / "eegmat_bids", subjects)
            info = Path(tmp) / "subject-info.csv"
            info.write_bytes(_read_url(f"{PHYSIONET_EEGMAT}/subject-info.csv"))
            write_eegmat_participants(info, dest / "eegmat_bids", eegmat_subjects(checksums))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"the data folder the tests read (default: {DEFAULT_DEST}; EEGFM_SHARED_DATA)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of: " + ", ".join(DATASETS))
    parser.add_argument("--checksums", type=Path, default=CHECKSUMS, help="sha256sum-style list (default: %(default)s)")
    parser.add_argument("--verify", action="store_true", help="only verify what is there; download nothing")
    parser.add_argument("--mirror", help="fetch from a copy with the same layout (a folder or a base URL) instead")
    args = parser.parse_args(argv)
    try:
        checksums = select(read_checksums(args.checksums), [d.strip() for d in args.datasets.split(",") if d.strip()])
    except (OSError, ValueError) as err:
        parser.error(str(err))
    dest = args.dest.expanduser()
    if not args.verify:
        try:
            fetch(dest, checksums, args.mirror)
        except ImportError as err:
            print(f"error: {err}: the eegmat BIDS conversion needs mne and mne-bids (pip install \"eegfm[data]\")",
                  file=sys.stderr)
            return 1
        except FetchError as err:
            print(f"error: {err}", file=sys.stderr)
    problems = verify(dest, checksums)
    for rel, problem in problems:
        print(f"{rel}: {problem}", file=sys.stderr)
    print(f"{len(checksums) - len(problems)} of {len(checksums)} files OK in {dest}"
          + ("" if not problems else f"; {len(problems)} missing or different (DATA.md)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
