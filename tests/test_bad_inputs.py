"""Bad inputs get one clear error that names the input and says what to do (no silent results).

The input errors every model raises (rank, shape, positions, types, rate) are checked on each
model in tests/test_models_common.py."""

import numpy as np
import pytest
import torch

from eegfm import MAPEEncoder, proportion_coordinates
from eegfm.data import EEGCorpus, Recording
from eegfm.data.specs import sources_from_spec
from eegfm.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder():
    return MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2).eval()


def test_int_n_times_means_every_recording_and_zero_channels_are_refused(encoder):
    x, pos = torch.randn(2, 3, 200), torch.rand(3, 2) * 100
    a = encoder(x, pos, n_times=150)
    b = encoder(x, pos, n_times=torch.tensor([150, 150]))
    assert torch.equal(a.tokens, b.tokens) and int(a.token_mask.sum()) == 2 * 3 * 3
    with pytest.raises(TypeError, match=r"n_times must be an int or a tensor of shape \(2,\), got list"):
        encoder(x, pos, n_times=[150, 150])
    with pytest.raises(ValueError, match=r"x has no channels \(shape \(2, 0, 200\)\)"):
        encoder(torch.zeros(2, 0, 200), torch.zeros(0, 2))


@pytest.mark.parametrize("seconds", [float("nan"), 0.0, -1.0, float("inf")])
def test_windows_need_a_positive_length(tmp_path, seconds):
    data = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    corpus = EEGCorpus([Recording(data, ["Cz", "Pz"], 200.0, "rec")], tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"seconds must be a positive number of seconds, got seconds="):
        corpus.windows(seconds)
    with pytest.raises(ValueError, match=r"stride_seconds must be a positive number of seconds"):
        corpus.windows(1.0, seconds)


@pytest.mark.parametrize("name", ["lr", "min_lr", "weight_decay"])
def test_a_nan_or_negative_rate_is_refused(name):
    model = torch.nn.Linear(2, 2)
    model.training_step = lambda batch: {"loss_sum": model(batch).sum(), "count": 1}
    for bad in (float("nan"), -1.0):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number >= 0, got {name}="):
            Trainer(model, TrainConfig(**{name: bad}), lambda epoch, start: iter([]))


def test_a_glob_that_matches_a_folder_says_so(tmp_path):
    (tmp_path / "sub-01").mkdir()
    with pytest.raises(IsADirectoryError, match=r"matches the folder .*sub-01; match files, e.g. .*sub-01/\*.edf"):
        list(sources_from_spec(f"files:{tmp_path}/sub-*"))


def test_microvolt_numbers_stored_as_volts_are_skipped_with_check_the_units(tmp_path):
    import mne

    rng = np.random.default_rng(0)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 200.0, "eeg")
    volts = rng.standard_normal((4, 2000)) * 20e-6
    good = mne.io.RawArray(volts, info, verbose="error")
    wrong = mne.io.RawArray(volts * 1e6, info, verbose="error")  # 20 "V": µV numbers read as volts
    corpus = EEGCorpus([good, wrong], tmp_path, progress=False)
    assert len(corpus) == 1 and len(corpus.skipped) == 1
    assert "median channel standard deviation is 1.9" in corpus.skipped[0][1]
    assert "check the units" in corpus.skipped[0][1]
    with pytest.raises(Exception, match="check the units"):
        EEGCorpus([wrong], tmp_path / "again", on_error="raise", progress=False)


def test_a_truncated_edf_is_a_counted_skip_naming_the_file(tmp_path):
    import mne

    from eegfm.data import from_files

    info = mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((3, 200 * 20)) * 1e-5, info, verbose="error")
    whole = tmp_path / "whole.edf"
    mne.export.export_raw(whole, raw, overwrite=True, verbose="error")
    half = tmp_path / "half.edf"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    corpus = EEGCorpus(from_files([whole, half]), tmp_path / "cache", progress=False)
    assert len(corpus) == 1 and len(corpus.skipped) == 1
    key, reason = corpus.skipped[0]
    assert key.endswith("half.edf")
    assert reason.startswith("TruncatedFileError:") and "half.edf: the file is shorter than its header says" in reason
    with pytest.raises(OSError, match=r"half.edf: the file is shorter than its header says"):
        EEGCorpus(from_files([half]), tmp_path / "cache2", on_error="raise", progress=False)


def test_a_cache_hit_means_the_same_samples_and_channels(tmp_path):
    import mne

    from eegfm.data import from_files

    rng = np.random.default_rng(0)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 200.0, "eeg")
    raw = mne.io.RawArray(rng.standard_normal((4, 4000)) * 1e-5, info, verbose="error")
    path = tmp_path / "rec.edf"
    mne.export.export_raw(path, raw, overwrite=True, verbose="error")
    cache = tmp_path / "cache"
    first = EEGCorpus(from_files([path]), cache, progress=False)
    assert first.n_built == 1
    read = mne.io.read_raw(path, preload=False, verbose="error")
    assert EEGCorpus([read], cache, progress=False).n_built == 1  # a Raw of the file: another reader's entry
    assert EEGCorpus([mne.io.read_raw(path, verbose="error")], cache, progress=False).n_reused == 1  # same again
    cropped = mne.io.read_raw(path, verbose="error").crop(0, 10)
    rescaled = mne.io.read_raw(path, preload=True, verbose="error")
    rescaled._data *= 2
    reref = mne.io.read_raw(path, preload=True, verbose="error").set_eeg_reference("average", verbose="error")
    for changed in (cropped, rescaled, reref):
        corpus = EEGCorpus([changed], cache, progress=False)
        assert corpus.n_built == 1 and corpus.n_reused == 0
    # two in-memory recordings with one name and shape but other channels / samples: two entries
    a = Recording(rng.standard_normal((2, 1000)).astype(np.float32) * 10, ["Cz", "Pz"], 200.0, "mem")
    b = Recording(rng.standard_normal((2, 1000)).astype(np.float32) * 10, ["Fz", "Oz"], 200.0, "mem")
    c = Recording(a.data * 2, ["Cz", "Pz"], 200.0, "mem")
    built = [EEGCorpus([r], cache, progress=False).n_built for r in (a, b, c)]
    assert built == [1, 1, 1]
    assert EEGCorpus([a], cache, progress=False).n_reused == 1


def test_nan_or_inf_in_a_real_channel_is_named(encoder):
    x, pos = torch.randn(2, 3, 200), torch.rand(2, 3, 2) * 100
    x[1, 2, 17] = float("nan")
    with pytest.raises(ValueError, match=r"x\[1, 2\] \(sample 1, channel 2\) has a NaN/Inf sample; 1 channel"):
        encoder(x, pos)
    x[1, 2, 17] = 0.0
    pos[0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match=r"x\[0, 1\] .* has a NaN/Inf position"):
        encoder(x, pos)
    # padding may hold anything: a masked channel and samples past n_times are not checked
    mask = torch.tensor([[True, False, True], [True, True, True]])
    x[0, 1] = float("nan")
    x[1, 0, 150:] = float("inf")
    out = encoder(x, pos, channel_mask=mask, n_times=torch.tensor([200, 150]))
    assert torch.isfinite(out.tokens[out.token_mask]).all()
    encoder(x, pos, check_finite=False)  # opted out: no error (the output is the caller's business)


def test_positions_in_metres_or_on_a_unit_sphere_are_refused_naming_the_recording(encoder):
    import mne

    names = ["Fz", "Cz", "Pz"]
    metres = mne.channels.make_standard_montage("colin27_1020").get_positions()["ch_pos"]
    head = torch.tensor(np.array([metres[n][:2] for n in names]), dtype=torch.float32)  # MNE head frame, |p| < 0.1
    proportion = torch.tensor(proportion_coordinates(names), dtype=torch.float32)
    x = torch.randn(2, 3, 200)
    with pytest.raises(ValueError, match=r"positions of recording 0 of the batch are not proportion coordinates: "
                                         r"every real channel lies within 10 of \(0, 0\) \(largest \|coordinate\| "
                                         r"0\.0[0-9]+\).*Pass eegfm\.proportion_coordinates"):
        encoder(x, head)
    unit_sphere = torch.stack([proportion, head / head.norm(dim=-1, keepdim=True)])  # recording 1 only
    with pytest.raises(ValueError, match=r"positions of recording 1 of the batch .*largest \|coordinate\| 1\b"):
        encoder(x, unit_sphere)
    # only real channels count: a padded channel at (0, 0) beside real ones is fine, and so is a real channel
    # near the corner of the grid beside others (F9, the 10-05 electrode nearest to (0, 0), is at (11.7, 16.8))
    padded = torch.stack([proportion, proportion])
    padded[1, 2] = 0.0
    encoder(x, padded, channel_mask=torch.tensor([[True, True, True], [True, True, False]]))
    encoder(x[:, :1], torch.tensor(proportion_coordinates(["F9"]), dtype=torch.float32))
    # millimetres (EEGLAB, BIDS electrodes.tsv): Pz lies 81 mm behind the origin, far off the head
    with pytest.raises(ValueError, match=r"positions\[0, 2\] = \(-?[0-9.]+, -8[0-9.]+\) \(sample 0, channel 2\) is "
                                         r"off the head: more than 100 from Cz \(50, 50\).*; 1 channel\(s\) in the "
                                         r"batch are\. Millimetres .*Pass eegfm\.proportion_coordinates"):
        encoder(x, torch.stack([head * 1000, proportion]))
    # the edge of the 10-05 system is not off the head (A1 at x = -3.3, A2 at 103.8)
    encoder(x[:, :2], torch.tensor(proportion_coordinates(["A1", "A2"]), dtype=torch.float32))
    encoder(x, head, check_finite=False)  # opted out, as for NaN/Inf


def test_volts_are_refused_naming_the_recording_and_the_fix(encoder):
    pos = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
    uv = torch.randn(2, 3, 200) * 20
    x = torch.stack([uv[0], uv[1] * 1e-6])  # recording 1 as raw.get_data() gives it
    with pytest.raises(ValueError, match=r"x\[1\] \(recording 1 of the batch\) looks like volts: its largest "
                                         r"\|sample\| is [0-9.]+e-05, where the encoder takes µV .*Multiply it by "
                                         r"1e6 .*input_scale=1e6"):
        encoder(x, pos)
    # only real samples count: a loud padded channel or loud samples past n_times do not hide volts ...
    x = uv * 1e-6
    x[0, 2] = 500.0
    x[1, :, 150:] = 500.0
    with pytest.raises(ValueError, match=r"x\[0\] .* looks like volts"):
        encoder(x, pos, channel_mask=torch.tensor([[True, True, False], [True, True, True]]),
                n_times=torch.tensor([200, 150]))
    # ... an all-zero recording (flat, not volts) and quiet µV are accepted
    encoder(torch.stack([torch.zeros(3, 200), uv[1]]), pos)
    encoder(uv * 0.01, pos)
    encoder(uv * 1e-6, pos, check_finite=False)  # opted out
