import pytest

from eegfm.data.specs import sources_from_spec


def test_sample_files_bids_and_moabb(shared_data, monkeypatch):
    monkeypatch.setenv("MNE_DATASETS_EEGBCI_PATH", str(shared_data / "eegbci"))
    monkeypatch.setenv("MOABB_DOWNLOAD_PROVIDER", "upstream")
    spec = (f"sample;files:{shared_data}/eeglab/*.set;bids:{shared_data}/eegmat_bids:02,03;"
            "moabb:PhysionetMI:1")
    sources = list(sources_from_spec(spec))
    assert len(sources) == 3 + 1 + 4 + 6
    assert sources[0].key == "eegfm-sample:eegbci_S001R04"
    assert sources[3].key.endswith("eeglab_data.set")
    assert [s.metadata["subject"] for s in sources[4:8]] == ["02", "02", "03", "03"]
    assert sources[8].key.startswith("moabb:PhysionetMotorImagery:1")


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no EEG sources given"):
        list(sources_from_spec(" ; "))
    with pytest.raises(ValueError, match="unknown source kind 'edf'"):
        list(sources_from_spec(f"edf:{tmp_path}"))
    with pytest.raises(FileNotFoundError, match="no files match"):
        list(sources_from_spec(f"files:{tmp_path}/*.edf"))
    with pytest.raises(ValueError, match="needs an argument"):
        list(sources_from_spec("bids"))
    with pytest.raises(ValueError, match="moabb.datasets has no dataset 'Nope'"):
        list(sources_from_spec("moabb:Nope"))
