import numpy as np
import pytest

from eegfm.data import EEGCorpus, Recording
from eegfm.montage import DuplicateChannelError


def _data(n_chans=3, n_times=400):
    return np.random.default_rng(0).standard_normal((n_chans, n_times)).astype(np.float32) * 10


def test_duplicate_channels_are_refused_by_name():
    with pytest.raises(DuplicateChannelError, match=r"rec.edf: duplicate channels .*'Fz' and 'FZ'"):
        Recording(_data(), ["Fz", "FZ", "Cz"], 200.0, "rec.edf")


@pytest.mark.parametrize("sfreq", [0.0, -200.0, float("nan"), float("inf"), "200"])
def test_sfreq_must_be_a_positive_number(sfreq):
    with pytest.raises(ValueError, match=r"rec: sfreq must be a positive number of Hz, got sfreq="):
        Recording(_data(), ["Fz", "Cz", "Pz"], sfreq, "rec")


def test_a_corpus_skips_a_recording_with_duplicates_and_says_why(tmp_path):
    import mne

    info = mne.create_info(["Fz", "FZ", "Cz"], 200.0, "eeg")
    raw = mne.io.RawArray(_data().astype(np.float64) * 1e-6, info, verbose="error")
    corpus = EEGCorpus([raw], tmp_path, progress=False)
    assert len(corpus) == 0 and len(corpus.skipped) == 1
    assert "duplicate channels name the same electrode: 'Fz' and 'FZ'" in corpus.skipped[0][1]
