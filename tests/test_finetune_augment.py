"""Fine-tuning augmentations: what each changes, what it never touches (padding), and errors."""

import numpy as np
import pytest
import torch

from eegfm import MAPEClassifier, proportion_coordinates
from eegfm.data.collate import pad_into
from eegfm.finetune import FinetuneConfig, LabeledEEG, augment_batch, finetune

NAMES = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    pos = proportion_coordinates(NAMES)
    signals = [rng.normal(0, 10, (6, 400)), rng.normal(0, 10, (4, 300)), rng.normal(0, 10, (5, 400))]
    return pad_into([s.astype(np.float32) for s in signals], [pos[:len(s)] for s in signals])


def test_all_off_is_the_identity():
    eeg = _batch()
    assert augment_batch(eeg, sfreq=200.0) is eeg


def test_channel_dropout_hides_real_channels_only_and_keeps_one():
    eeg = _batch()
    out = augment_batch(eeg, sfreq=200.0, channel_dropout=0.5, generator=torch.Generator().manual_seed(0))
    assert (out.channel_mask & ~eeg.channel_mask).sum() == 0  # padding never becomes real
    np.testing.assert_array_equal(out.channel_mask.sum(1).numpy(), [3, 2, 3])  # floor(0.5 * 6, 4, 5)
    assert (out.x[~out.channel_mask] == 0).all()
    kept = out.channel_mask
    torch.testing.assert_close(out.x[kept], eeg.x[kept])
    one = augment_batch(_batch(), sfreq=200.0, channel_dropout=0.99)
    assert (one.channel_mask.sum(1) == 1).all()  # at least one channel of every example


def test_channel_dropout_draws_differ_per_example_and_step():
    eeg = _batch()
    g = torch.Generator().manual_seed(1)
    masks = {tuple(augment_batch(eeg, sfreq=200.0, channel_dropout=0.5, generator=g).channel_mask[0].tolist())
             for _ in range(20)}
    assert len(masks) > 5


def test_time_shift_rolls_valid_samples_only():
    eeg = _batch()
    out = augment_batch(eeg, sfreq=200.0, time_shift_seconds=0.5, generator=torch.Generator().manual_seed(0))
    for i, n in enumerate(eeg.n_times.tolist()):
        a, b = eeg.x[i, :, :n], out.x[i, :, :n]
        shifts = [s for s in range(-100, 101) if torch.equal(torch.roll(a, s, dims=1), b)]
        assert len(shifts) == 1  # a circular shift of at most 0.5 s = 100 samples
        assert (out.x[i, :, n:] == 0).all()  # padding stays zero
    assert torch.equal(out.channel_mask, eeg.channel_mask) and torch.equal(out.n_times, eeg.n_times)


def test_amplitude_scale_bounds_one_gain_per_example():
    eeg = _batch()
    out = augment_batch(eeg, sfreq=200.0, amplitude_scale=0.25, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        real = eeg.x[i] != 0
        ratio = out.x[i][real] / eeg.x[i][real]
        torch.testing.assert_close(ratio, ratio[0].expand_as(ratio))
        assert 1 / 1.25 <= float(ratio[0]) <= 1.25


@pytest.mark.parametrize("field, value, match", [
    ("channel_dropout", 1.0, "channel_dropout must be in \\[0, 1\\)"),
    ("time_shift_seconds", -1.0, "time_shift_seconds must be >= 0"),
    ("amplitude_scale", float("nan"), "amplitude_scale must be >= 0"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        FinetuneConfig(**{field: value})


def test_finetune_with_augmentation_trains_and_evaluation_is_untouched(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 10, (16, 4, 400)).astype(np.float32)
    y = np.arange(16) % 2
    X[y == 1, :, :] *= 3.0
    data = LabeledEEG.from_arrays(X, y, NAMES[:4], sfreq=200.0)
    torch.manual_seed(0)
    model = MAPEClassifier(2, encoder=dict(embed_dim=16, depth=1, num_heads=2, patch_size=100))
    cfg = FinetuneConfig(epochs=2, batch_size=8, run_dir=str(tmp_path), metrics="none", progress=False,
                         channel_dropout=0.3, time_shift_seconds=0.2, amplitude_scale=0.1)
    result = finetune(model, data, cfg, valid=data)
    assert result["steps"] == 4 and np.isfinite(result["train"]["loss"])
    model.eval()
    with torch.no_grad():  # evaluation sees the data as it is: deterministic
        eeg, _ = data.batch(np.arange(16))
        a = model(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
        b = model(eeg.x, eeg.positions, channel_mask=eeg.channel_mask, n_times=eeg.n_times)
    torch.testing.assert_close(a, b)
