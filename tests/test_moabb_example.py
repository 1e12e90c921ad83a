"""examples/moabb_cross_subject.py: MOABB CrossSubjectEvaluation of a saved eegfm encoder, offline.

Also the offline PhysioNet MI helper it shares with benchmarks/moabb_physionet.py and
examples/finetune_moabb.py (eegfm.finetune.moabb).
"""

import pytest

from conftest import load_script

pytest.importorskip("moabb")
pytestmark = [pytest.mark.real_data, pytest.mark.usefixtures("one_torch_thread")]


def _example():
    return load_script("examples/moabb_cross_subject.py")


def test_offline_physionet_keeps_only_local_runs(shared_data, monkeypatch):
    from eegfm.finetune.moabb import local_subjects, offline_physionet_mi

    eegbci = shared_data / "eegbci"
    monkeypatch.delenv("MNE_DATASETS_EEGBCI_PATH", raising=False)
    monkeypatch.delenv("MOABB_DOWNLOAD_PROVIDER", raising=False)
    hands = local_subjects(eegbci)
    assert {1, 2, 3, 4, 15} <= set(hands)
    dataset = offline_physionet_mi(eegbci, subjects=[2, 3])
    assert dataset.subject_list == [2, 3] and dataset.feet_runs == []  # S002/S003 have no feet runs here
    assert offline_physionet_mi(eegbci, subjects=[1]).feet_runs == [6, 10, 14]  # S001 has every run
    assert offline_physionet_mi(eegbci).subject_list == hands
    with pytest.raises(FileNotFoundError, match=r"subjects \[99\] lack some of runs \[4, 8, 12\]"):
        offline_physionet_mi(eegbci, subjects=[1, 99])
    with pytest.raises(FileNotFoundError, match="no PhysioNet MI subject"):
        offline_physionet_mi(shared_data / "eeglab")


# MOABB's results store calls h5py in a way h5py now deprecates
@pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype is deprecated")
def test_cross_subject_evaluation_scores_each_held_out_subject(shared_data, tmp_path, capsys):
    example = _example()
    table = example.main(["--data", str(shared_data / "eegbci"), "--subjects", "1-3", "--epochs", "1",
                          "--out", str(tmp_path / "scores.csv")])
    assert sorted(table["subject"].astype(int)) == [1, 2, 3]  # one row per test subject
    assert table["score"].between(0, 1).all()
    assert (table["samples_test"] == 45).all() and (table["samples"] == 90).all()  # 15 trials x runs 4, 8, 12
    assert (tmp_path / "scores.csv").read_text().startswith("subject,session,score")
    assert "CrossSubjectEvaluation" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="at least 2 subjects"):
        example.main(["--data", str(shared_data / "eegbci"), "--subjects", "1"])
