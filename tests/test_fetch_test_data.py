"""scripts/fetch_test_data.py offline: its sources, checksum checks, atomic downloads (file: URLs
from the local copy stand in for the public ones) and the eegmat BIDS conversion."""

import csv
import hashlib
import shutil

import pytest

from conftest import CHECKSUMS, DATASETS, REPO, SHARED_DATA, expected_files, load_script, missing_data_message


fetch = load_script("scripts/fetch_test_data.py")
SUMS = fetch.read_checksums()
SMALL = ["eegmat_bids/participants.tsv", "eegmat_bids/sub-02/eeg/sub-02_task-rest_channels.tsv",
         "eegmat_bids/sub-02/eeg/sub-02_task-rest_eeg.json"]


def test_checksum_list_covers_every_dataset_and_every_file_has_a_source():
    assert fetch.CHECKSUMS == CHECKSUMS and set(fetch.DATASETS) == set(DATASETS)
    assert {fetch.dataset_of(rel) for rel in SUMS} == set(DATASETS)
    counts = {name: len(files) for name, files in expected_files().items()}
    # 56 EEGBCI runs (13 subjects); eegmat 02-31: 60 EDFs + 2 sidecars each + 30 scans + participants
    assert counts == {"eegbci": 56, "eegmat_bids": 60 * 3 + 30 + 1, "eeglab": 2, "openbci_sample": 1,
                      "uci_eeg_eye_state": 1}
    generated = []
    for rel in SUMS:
        urls = fetch.sources_for(rel)
        assert all(url.startswith("https://") for url in urls), rel
        if not urls:
            generated.append(rel)
    assert all(rel.startswith("eegmat_bids/") and not rel.endswith(".edf") for rel in generated)
    assert len(generated) == 60 * 2 + 30 + 1
    assert fetch.sources_for("eegbci/MNE-eegbci-data/files/eegmmidb/1.0.0/S002/S002R08.edf") == [
        "https://physionet.org/files/eegmmidb/1.0.0/S002/S002R08.edf"]
    assert fetch.sources_for("eegmat_bids/sub-07/eeg/sub-07_task-arithmetic_eeg.edf")[0] == \
        "https://physionet.org/files/eegmat/1.0.0/Subject07_2.edf"
    assert fetch.eegmat_edf_name("eegmat_bids/sub-31/eeg/sub-31_task-rest_eeg.edf") == "Subject31_1.edf"
    with pytest.raises(ValueError, match="no public source"):
        fetch.sources_for("eeglab/other.set")


def test_read_checksums_refuses_malformed_lines(tmp_path):
    good = "# comment\n" + "a" * 64 + "  eeglab/x.set\n"
    (tmp_path / "ok.txt").write_text(good)
    assert fetch.read_checksums(tmp_path / "ok.txt") == {"eeglab/x.set": "a" * 64}
    for bad in ["abc  eeglab/x.set", "a" * 64 + "  ../escape", "a" * 64 + "  /abs/path", "a" * 64 + " one-space"]:
        (tmp_path / "bad.txt").write_text(bad + "\n")
        with pytest.raises(ValueError, match="bad.txt:1"):
            fetch.read_checksums(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="unknown dataset"):
        fetch.select(SUMS, ["eegbci", "nope"])


@pytest.mark.real_data
def test_verify_accepts_the_local_copy_and_names_missing_or_changed_files(tmp_path):
    assert fetch.verify(SHARED_DATA, SUMS) == []  # the copy the tests read is the listed one
    sums = {rel: SUMS[rel] for rel in SMALL}
    for rel in SMALL[:2]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_DATA / rel, tmp_path / rel)
    with open(tmp_path / SMALL[1], "ab") as f:
        f.write(b"x")
    problems = dict(fetch.verify(tmp_path, sums))
    assert set(problems) == set(SMALL[1:]) and problems[SMALL[2]] == "missing"
    assert problems[SMALL[1]].startswith("sha256 ") and SUMS[SMALL[1]] in problems[SMALL[1]]


@pytest.mark.real_data
def test_download_keeps_only_a_file_with_the_expected_checksum(tmp_path):
    rel = "eeglab/eeglab_data.set"
    url = (SHARED_DATA / rel).resolve().as_uri()
    target = tmp_path / "out" / rel
    with pytest.raises(fetch.FetchError, match="sha256 .* != expected 0{64}"):
        fetch.download([url], target, "0" * 64)
    assert not target.parent.exists() or not any(target.parent.iterdir())  # no file, no .part
    broken = (tmp_path / "nowhere.set").as_uri()
    assert fetch.download([broken, url], target, SUMS[rel]) == url  # falls back to the next source
    assert hashlib.sha256(target.read_bytes()).hexdigest() == SUMS[rel]
    assert sorted(p.name for p in target.parent.iterdir()) == ["eeglab_data.set"]


@pytest.mark.real_data
def test_main_fetches_from_a_mirror_then_verifies_and_reports(tmp_path, capsys):
    dest = tmp_path / "data"
    assert missing_data_message(["eeglab", "uci_eeg_eye_state"], root=dest).startswith(
        f"real EEG test data not found at {dest} (no such folder): EEGLAB tutorial sample")
    args = ["--dest", str(dest), "--datasets", "eeglab,uci_eeg_eye_state,openbci_sample"]
    assert fetch.main([*args, "--verify"]) == 1
    assert "0 of 4 files OK" in capsys.readouterr().out
    assert fetch.main([*args, "--mirror", str(SHARED_DATA)]) == 0
    assert "4 of 4 files OK" in capsys.readouterr().out
    assert missing_data_message(["eeglab", "uci_eeg_eye_state", "openbci_sample"], root=dest) is None
    assert "eegbci/" in missing_data_message(["eegbci"], root=dest)  # the others are not there
    (dest / "eeglab" / "eeglab_data.fdt").write_bytes(b"truncated")
    assert fetch.main([*args, "--verify"]) == 1
    assert "eeglab/eeglab_data.fdt: sha256" in capsys.readouterr().err
    assert fetch.main([*args, "--mirror", str(SHARED_DATA)]) == 0  # only the bad file again
    out = capsys.readouterr().out
    assert "eeglab/eeglab_data.fdt: from" in out and "eeglab_data.set" not in out
    with pytest.raises(SystemExit):
        fetch.main(["--datasets", "nope"])


@pytest.mark.real_data
def test_eegmat_bids_conversion_reproduces_the_listed_files(tmp_path):
    """PhysioNet's SubjectXX_N.edf and subject-info.csv -> the BIDS files the tests read, byte for byte."""
    pytest.importorskip("mne_bids", reason="mne-bids is a dev dependency")  # always installed in CI
    bids, edfs = SHARED_DATA / "eegmat_bids", tmp_path / "physionet"
    edfs.mkdir()
    subjects = ["02", "26"]
    for subject in subjects:
        for task, number in fetch.EEGMAT_TASKS.items():
            shutil.copyfile(bids / f"sub-{subject}/eeg/sub-{subject}_task-{task}_eeg.edf",
                            edfs / f"Subject{subject}_{number}.edf")
    # subject-info.csv in PhysioNet's layout (unnamed columns included), from participants.tsv
    with open(bids / "participants.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    with open(edfs / "subject-info.csv", "w", newline="") as f:
        f.write("Subject,Age,Gender,,Recording year,Number of subtractions,Count quality,,\r\n")
        for row in rows:
            f.write(f"{row['source_subject']},{row['age']},{row['sex']},2,2011,{row['n_subtractions']},"
                    f"{row['count_quality']},1,1\r\n")
    out = tmp_path / "eegmat_bids"
    fetch.write_eegmat_bids(edfs, out, subjects)
    fetch.write_eegmat_participants(edfs / "subject-info.csv", out, fetch.eegmat_subjects(SUMS))
    listed = {rel: digest for rel, digest in SUMS.items()
              if rel == "eegmat_bids/participants.tsv" or any(f"/sub-{s}/" in rel for s in subjects)}
    assert len(listed) == 2 * 7 + 1
    assert fetch.verify(tmp_path, listed) == []


INNER_TESTS = {"test_inner.py": """
import pytest

@pytest.mark.real_data
def test_marked():
    pass

def test_takes_the_fixture(shared_data):
    pass

def test_needs_nothing():
    pass
""", "test_inner_named.py": """
import pytest

@pytest.mark.real_data("eeglab")
def test_marked_for_one_dataset():
    pass

@pytest.mark.real_data
def test_names_its_dataset(shared_data):
    assert (shared_data / "openbci_sample").is_dir()
"""}


@pytest.mark.parametrize("ci", [None, "true"])
def test_without_the_data_folder_data_tests_skip_locally_and_fail_in_ci(tmp_path, ci):
    """The conftest gate, in a pytest run of its own with EEGFM_SHARED_DATA at an empty folder."""
    import os
    import subprocess
    import sys

    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copyfile(REPO / "tests" / "conftest.py", tests / "conftest.py")
    shutil.copyfile(CHECKSUMS, tests / "data_checksums.txt")
    for name, text in INNER_TESTS.items():
        (tests / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    real_data: reads the data\n    slow: slow\n")
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "PYTEST_ADDOPTS")}
    env.update(EEGFM_SHARED_DATA=str(tmp_path / "no-data"), **({"CI": ci} if ci else {}))
    out = subprocess.run([sys.executable, "-m", "pytest", "-rsE", "-p", "no:cacheprovider", "--strict-markers",
                          str(tests)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    missing = f"real EEG test data not found at {tmp_path / 'no-data'} (no such folder): "
    every = missing + "PhysioNet EEG Motor Movement/Imagery (eegmmidb 1.0.0) (eegbci/: 56 of 56 files missing"
    assert every in text and "UCI EEG Eye State (ARFF) (uci_eeg_eye_state/: 1 of 1 files missing" in text
    assert missing + "EEGLAB tutorial sample (eeglab_data.set/.fdt) (eeglab/: 2 of 2 files missing" in text
    assert missing + "OpenBCI GUI v6 sample recording (openbci_sample/: 1 of 1 files missing" in text
    assert f"Get it with `python scripts/fetch_test_data.py --dest {tmp_path / 'no-data'}` (public sources " \
           "and sha256 checksums: DATA.md)" in text
    if ci:
        assert out.returncode == 1 and "1 passed, 4 errors" in text and "a failure in CI, not a skip" in text
    else:
        assert out.returncode == 0 and "1 passed, 4 skipped" in text and "not a skip" not in text
