import mne
import numpy as np
import pytest

from eegfm.data import from_bids, from_braindecode, from_files, from_moabb, from_raw, infer_channel_types


def _raw(names, sfreq=100.0, seconds=2.0):
    info = mne.create_info(names, sfreq, "eeg")
    return mne.io.RawArray(np.random.default_rng(0).normal(0, 1e-5, (len(names), int(sfreq * seconds))), info,
                           verbose=False)


def test_infer_channel_types_retypes_non_eeg_names():
    raw = _raw(["Fz", "EOG1", "HEOG", "EEG ECG", "EMG_chin", "EEG A2-A1", "Cz-REF", "STI 014"])
    infer_channel_types(raw, {"Fz": "misc"})
    assert raw.get_channel_types() == ["misc", "eog", "eog", "ecg", "emg", "misc", "eeg", "stim"]


def test_from_raw_keys_in_memory_data_by_content():
    raw = _raw(["Fz", "Cz"])
    a, b = from_raw(raw), from_raw(raw.copy())
    assert a.key == b.key and a.key.startswith("raw:")
    changed = raw.copy()
    changed._data[0, 0] += 1e-6
    assert from_raw(changed).key != a.key
    assert from_raw(raw, key="mine").key == "mine"
    loaded = a.load()
    assert loaded is not raw and loaded.ch_names == ["Fz", "Cz"]


def test_from_files_eeglab_types_eog_and_fingerprints_the_fdt(shared_data):
    (source,) = from_files([shared_data / "eeglab" / "eeglab_data.set"])
    assert any(key.endswith("eeglab_data.fdt") for key in source.fingerprint)
    raw = source.load()
    kinds = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert kinds["EOG1"] == kinds["EOG2"] == "eog" and kinds["Cz"] == "eeg"
    with pytest.raises(FileNotFoundError, match="EEG file .*missing.edf does not exist"):
        from_files([shared_data / "missing.edf"])


def test_from_bids_reads_channel_types_and_filters_subjects(shared_data):
    sources = from_bids(shared_data / "eegmat_bids", subjects=["02", "03"])
    assert [(s.metadata["subject"], s.metadata["task"]) for s in sources] == [
        ("02", "arithmetic"), ("02", "rest"), ("03", "arithmetic"), ("03", "rest")]
    raw = sources[1].load()
    assert raw.get_channel_types().count("eeg") == 19
    with pytest.raises(FileNotFoundError, match="no eeg recordings in BIDS root .* subjects=\\['99'\\]"):
        from_bids(shared_data / "eegmat_bids", subjects=["99"])
    with pytest.raises(FileNotFoundError, match="BIDS root .*nowhere does not exist"):
        from_bids(shared_data / "nowhere")


@pytest.fixture
def physionet_offline(shared_data, monkeypatch):
    monkeypatch.setenv("MNE_DATASETS_EEGBCI_PATH", str(shared_data / "eegbci"))
    monkeypatch.setenv("MOABB_DOWNLOAD_PROVIDER", "upstream")
    from moabb.datasets import PhysionetMI

    return PhysionetMI()


def test_from_moabb_offline(physionet_offline):
    sources = from_moabb(physionet_offline, subjects=[1])
    assert len(sources) == 6
    assert sources[0].metadata == {"dataset": "PhysionetMotorImagery", "subject": 1, "session": "0", "run": "0"}
    assert any(k.endswith("S001R04.edf") for k in sources[0].fingerprint)
    assert sources[0].load().get_channel_types().count("eeg") == 64


def test_from_braindecode_raw_and_windows_datasets(physionet_offline):
    from braindecode.datasets import MOABBDataset
    from braindecode.preprocessing import create_fixed_length_windows

    dataset = MOABBDataset("PhysionetMI", subject_ids=[1])
    sources = from_braindecode(dataset)
    assert len(sources) == 6 and sources[0].metadata["subject"] == 1
    windows = create_fixed_length_windows(dataset, window_size_samples=640, window_stride_samples=640,
                                          on_last_window="drop")
    wsources = from_braindecode(windows)
    assert len(wsources) == 6
    assert wsources[0].load().n_times == sources[0].load().n_times
