"""The whole data path on real EEG: three sources, three caps, one DataLoader."""

import logging
import os
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from eegfm.data import EEGCorpus, PreprocessConfig, Recording, collate_windows, from_bids, from_files, from_moabb


@pytest.fixture(scope="module")
def real_sources(shared_data):
    os.environ["MNE_DATASETS_EEGBCI_PATH"] = str(shared_data / "eegbci")
    os.environ["MOABB_DOWNLOAD_PROVIDER"] = "upstream"
    from moabb.datasets import PhysionetMI

    return (from_moabb(PhysionetMI(), subjects=[1])  # 6 runs, 64 channels, 160 Hz
            + from_files([shared_data / "eeglab" / "eeglab_data.set"])  # 30 EEG + 2 EOG, 128 Hz
            + from_bids(shared_data / "eegmat_bids", subjects=["02", "03"]))  # 19 EEG, 500 Hz


@pytest.fixture(scope="module")
def corpus(real_sources, tmp_path_factory):
    return EEGCorpus(real_sources, tmp_path_factory.mktemp("cache"), progress=False)


def test_three_sources_three_caps_in_one_dataloader(corpus):
    assert len(corpus) == 11 and corpus.skipped == [] and corpus.n_built == 11
    assert sorted({e.n_channels for e in corpus.entries}) == [19, 30, 64]
    assert {e.sfreq for e in corpus.entries} == {200.0}
    windows = corpus.windows(seconds=4.0)
    loader = DataLoader(windows, batch_size=64, shuffle=True, collate_fn=collate_windows, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    mixed, n_windows = 0, 0
    for batch in loader:
        counts = set(batch.channel_mask.sum(1).tolist())
        mixed += counts == {19, 30, 64}
        n_windows += len(batch.x)
        assert batch.x.shape[1:] == (64, 800) and batch.positions.shape[1:] == (64, 2)
        for i, c in enumerate(batch.channel_mask.sum(1).tolist()):
            assert (batch.x[i, c:] == 0).all() and batch.positions[i, c:].isnan().all()
            assert not batch.positions[i, :c].isnan().any()
        real = batch.x[batch.channel_mask]  # (channels, 800) µV
        assert 1.0 < real.abs().median() < 100.0  # microvolts, not volts
    assert n_windows == len(windows) and mixed >= 3


def test_token_bucketing_keeps_padding_low(corpus):
    windows = corpus.windows(seconds=4.0)
    loader = corpus.dataloader(windows, batch_size=16, patch_size=100, num_workers=2)
    padding = loader.batch_sampler.padding_fraction()
    measured_real = measured_total = 0
    for batch in loader:
        measured_real += int(batch.channel_mask.sum())
        measured_total += batch.channel_mask.numel()
    assert padding == pytest.approx(1 - measured_real / measured_total)
    assert padding < 0.05


def test_works_with_distributed_sampler(corpus):
    windows = corpus.windows(seconds=4.0)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(windows, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(windows, batch_size=32, sampler=sampler, collate_fn=collate_windows)
        seen.append([int(b.x.shape[0]) for b in loader])
    assert sum(seen[0]) == sum(seen[1]) == (len(windows) + 1) // 2


def test_cache_is_reused_and_invalidated(real_sources, corpus, tmp_path):
    again = EEGCorpus(real_sources, corpus.cache.root, progress=False)
    assert (again.n_reused, again.n_built) == (11, 0)
    assert [e.path for e in again.entries] == [e.path for e in corpus.entries]
    other = EEGCorpus(real_sources[-2:], corpus.cache.root, PreprocessConfig(h_freq=40.0), progress=False)
    assert (other.n_reused, other.n_built) == (0, 2)
    # a changed source file is preprocessed again
    src = tmp_path / "eeglab_data.set"
    for suffix in (".set", ".fdt"):
        shutil.copy(real_sources[6].key.replace(".set", suffix), src.with_suffix(suffix))
    first = EEGCorpus(from_files([src]), tmp_path / "cache", progress=False)
    os.utime(src.with_suffix(".fdt"), ns=(1, 1))
    second = EEGCorpus(from_files([src]), tmp_path / "cache", progress=False)
    assert (first.n_built, second.n_built) == (1, 1) and first.entries[0].path != second.entries[0].path


def _recording(name, data, ch_names=("Fz", "Cz", "Pz", "Oz")):
    return Recording(np.asarray(data, dtype=np.float32), list(ch_names), 200.0, name)


def test_bad_recordings_are_skipped_by_name_and_counted(tmp_path, shared_data, caplog):
    rng = np.random.default_rng(0)
    good = _recording("good", rng.normal(0, 10, (4, 2000)))
    nan = rng.normal(0, 10, (4, 2000))
    nan[2, 5:9] = np.nan
    unknown = _recording("unknown", rng.normal(0, 10, (4, 2000)), ("Fz", "Cz", "X9", "Oz"))
    truncated = tmp_path / "truncated.edf"
    edf = shared_data / "eegbci" / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0" / "S001" / "S001R04.edf"
    truncated.write_bytes(edf.read_bytes()[:5000])
    sources = [good, _recording("with_nan", nan), unknown] + from_files([truncated])
    with caplog.at_level(logging.WARNING, logger="eegfm.data"):
        corpus = EEGCorpus(sources, tmp_path / "cache", progress=False)
    assert len(corpus) == 1 and len(corpus.skipped) == 3
    reasons = dict(corpus.skipped)
    assert "Pz" in reasons["with_nan"] and "non-finite" in reasons["with_nan"]
    assert "X9" in reasons["unknown"]
    assert str(truncated.resolve()) in reasons
    assert "skipped with_nan" in caplog.text and "truncated.edf" in caplog.text
    with pytest.raises(ValueError, match="X9"):
        EEGCorpus([unknown], tmp_path / "cache2", on_error="raise", progress=False)
    with pytest.raises(ValueError, match="on_error must be 'skip' or 'raise'"):
        EEGCorpus([], tmp_path, on_error="ignore")
    with pytest.raises(TypeError, match="cannot use a str as an EEG source"):
        EEGCorpus(["file.edf"], tmp_path, progress=False)


def test_flat_channels_are_dropped_and_recorded(tmp_path):
    data = np.random.default_rng(1).normal(0, 10, (4, 2000))
    data[1] = 0.0
    corpus = EEGCorpus([_recording("flat", data)], tmp_path, progress=False)
    entry = corpus.entries[0]
    assert entry.ch_names == ["Fz", "Pz", "Oz"]
    assert entry.meta["metadata"]["dropped_channels"] == ["Cz"]


def test_paper_dataset_loaders_feed_the_corpus(tmp_path):
    """SEED's layout (Preprocessed_EEG/<subject>_<date>.mat, 15 trials of (62, T) at 200 Hz)."""
    from scipy.io import savemat

    from eegfm.datasets import load_seed

    folder = tmp_path / "SEED" / "Preprocessed_EEG"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    savemat(folder / "1_20131027.mat", {f"djc_eeg{t}": rng.normal(0, 10, (62, 1000)) for t in range(1, 16)})
    corpus = EEGCorpus(load_seed(tmp_path / "SEED"), tmp_path / "cache", progress=False)
    assert len(corpus) == 15 and corpus.skipped == []
    entry = corpus.entries[0]
    assert entry.n_channels == 62 and entry.ch_names[-1] == "CB2" and entry.meta["metadata"]["trial"] == 1
    assert len(corpus.windows(seconds=2.0)) == 15 * 2
    again = EEGCorpus(load_seed(tmp_path / "SEED"), tmp_path / "cache", progress=False)
    assert (again.n_reused, again.n_built) == (15, 0)
