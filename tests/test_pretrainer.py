import numpy as np
import pytest
import torch
from torch import nn

from eegfm.data import pad_recordings
from eegfm.models.pretrainer import SLOW_BINS, MaskedPretrainer, signal_target, slow_target

TINY = dict(patch_size=25, embed_dim=32, depth=1, num_heads=2, num_codes=8)


class AmplitudeBins(nn.Module):
    """A stand-in tokenizer: the code of a patch is its amplitude bin (0..7)."""

    def __init__(self, patch_size=25):
        super().__init__()
        self.patch_size = patch_size
        self.dummy = nn.Parameter(torch.zeros(()))

    def tokenize(self, x, positions, *, channel_mask=None, n_times=None):
        k = x.shape[-1] // self.patch_size
        std = x[..., : k * self.patch_size].unflatten(-1, (k, self.patch_size)).std(-1)  # (B, C, K)
        return torch.bucketize(std, torch.tensor([4, 6, 8, 10, 12, 14, 16.0])).flatten(1), None


def batch_of(seed=0):
    g = torch.Generator().manual_seed(seed)
    recs = []
    for n_chans, n_times in [(6, 200), (4, 125)]:
        scale = torch.rand(n_chans, 1, generator=g) * 16 + 2  # channels of different amplitude
        recs.append((torch.randn(n_chans, n_times, generator=g) * scale, torch.rand(n_chans, 2, generator=g) * 100))
    return pad_recordings(recs)


def model(**kw):
    return MaskedPretrainer(**{**TINY, **kw}).attach_tokenizer(AmplitudeBins())


def test_loss_accuracy_and_baseline():
    out = model()(**batch_of().encoder_inputs(), generator=torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.accuracy) == {"random", "channel", "temporal"}
    # random: half of (6*8 + 4*5) valid tokens; channel: 3 of 6 + 2 of 4 channels;
    # temporal: 4 of 8 + 2 of 5 time steps (round half to even)
    assert out.n_masked["random"] == 24 + 10
    assert out.n_masked["channel"] == 3 * 8 + 2 * 5
    assert out.n_masked["temporal"] == 4 * 6 + 2 * 4
    assert 0 <= out.baseline_accuracy <= 1 and all(0 <= a <= 1 for a in out.accuracy.values())
    assert out.count == sum(out.n_masked.values()) / 3


def test_loss_ignores_padding_and_targets_at_padding():
    pre = model().eval()
    batch = batch_of()
    targets = pre._targets(batch.x, batch.positions, batch.channel_mask, batch.n_times)
    ref = pre(**batch.encoder_inputs(), targets=targets, generator=torch.Generator().manual_seed(3))
    batch.x[1, 4:] = 1e4
    batch.x[1, :, 125:] = -1e4
    garbage = targets.clone().view(2, 6, 8)
    garbage[1, 4:] = 7
    garbage[1, :, 5:] = 7
    out = pre(**batch.encoder_inputs(), targets=garbage.flatten(1), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out.loss, ref.loss, atol=1e-5)


def test_masked_tokens_get_the_mask_embedding_before_position_embedding():
    pre = model().eval()
    seen = {}
    original = pre.encoder.block_inputs

    def spy(embeddings, *args, **kwargs):
        seen.setdefault("embeddings", []).append(embeddings.detach().clone())
        return original(embeddings, *args, **kwargs)

    pre.encoder.block_inputs = spy
    pre(**batch_of().encoder_inputs(), generator=torch.Generator().manual_seed(0))
    first = seen["embeddings"][0]  # (B, C, K, D) given to block_inputs(), which adds MAPE
    is_mask = (first == pre.mask_embedding.detach()).all(-1)
    assert 30 <= int(is_mask.sum()) <= 40  # the random strategy's masked tokens, nothing else


def _train(pre, steps: int, batch=None):
    """AdamW steps on one batch (default ``batch_of()``); returns (losses, the last training_step output)."""
    opt = torch.optim.AdamW(pre.parameters(), lr=3e-3)
    batch = batch_of() if batch is None else batch
    losses = []
    for _ in range(steps):
        out = pre.training_step(batch)
        loss = out["loss_sum"] / out["count"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, out


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    pre = model(strategies=["random"])
    losses, out = _train(pre, steps=30)
    assert losses[-1] < 0.7 * losses[0], losses
    assert set(out) == {"loss_sum", "count", "accuracy_random", "baseline_accuracy"}
    assert pre.target_counts.sum() == 30 * (48 + 20)


def test_symmetric_pass_adds_the_complement():
    out = model(strategies=["random"], symmetric=True)(**batch_of().encoder_inputs())
    assert set(out.accuracy) == {"random", "random_complement"}
    assert out.n_masked["random"] + out.n_masked["random_complement"] == 48 + 20


def test_the_frozen_tokenizer_is_not_saved():
    """Save/load round trip, padding, determinism, bf16: tests/test_models_common.py."""
    assert not any(k.startswith("_tokenizer") for k in model().state_dict())


def test_errors():
    with pytest.raises(ValueError, match="strategies must be a non-empty subset"):
        MaskedPretrainer(**TINY, strategies=["spatial"])
    with pytest.raises(ValueError, match=r"channel_ratio must be in \(0, 1\), got 1.5"):
        MaskedPretrainer(**TINY, channel_ratio=1.5)
    with pytest.raises(RuntimeError, match="no tokenizer: call pretrainer.attach_tokenizer"):
        MaskedPretrainer(**TINY)(**batch_of().encoder_inputs())
    with pytest.raises(ValueError, match="tokenizer patch_size=50 differs from the encoder's 25"):
        MaskedPretrainer(**TINY).attach_tokenizer(AmplitudeBins(patch_size=50))
    with pytest.raises(TypeError, match="must have a tokenize"):
        MaskedPretrainer(**TINY).attach_tokenizer(nn.Linear(2, 2))


def _spy_encode(pre):
    """The masked tokens (B, C, K) of each encoder pass (what the block inputs are built from)."""
    calls = []
    original = pre.encoder.block_inputs

    def spy(embeddings, *args, **kwargs):
        calls.append((embeddings == pre.mask_embedding.detach()).all(-1))  # (B, C, K): masked tokens
        return original(embeddings, *args, **kwargs)

    pre.encoder.block_inputs = spy
    return calls


def test_single_pass_masks_each_sample_with_one_strategy_in_one_pass():
    torch.manual_seed(0)
    batch = pad_recordings([(torch.randn(6, 200) * 10, torch.rand(6, 2) * 100) for _ in range(6)])
    pre = model(single_pass=True)
    calls = _spy_encode(pre)
    out = pre(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1  # one encoder pass for all three strategies
    masked = calls[0]  # (6, 6, 8)
    kinds = []
    for sample in masked:
        whole_channels = bool(((sample.all(1)) | (~sample.any(1))).all())
        whole_steps = bool(((sample.all(0)) | (~sample.any(0))).all())
        kinds.append("channel" if whole_channels else "temporal" if whole_steps else "random")
        assert int(sample.sum()) == 24  # half of 48 tokens whatever the strategy
    # strategies in turn: each one on two of the six samples, consecutive samples differ
    assert sorted(kinds) == ["channel"] * 2 + ["random"] * 2 + ["temporal"] * 2
    assert all(a != b for a, b in zip(kinds, kinds[1:]))
    assert set(out.accuracy) == {"random", "channel", "temporal"}
    assert all(int(out.n_masked[k]) == 48 for k in out.n_masked)
    assert out.count == 144  # the loss is the mean over the one pass's masked tokens


def test_single_pass_loss_is_the_mean_cross_entropy_and_trains():
    torch.manual_seed(0)
    pre = model(single_pass=True)
    losses, out = _train(pre, steps=30)
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"accuracy_random", "accuracy_channel", "accuracy_temporal"} <= set(out)


def test_evaluate_runs_every_strategy_on_every_sample_in_either_mode():
    batch = batch_of()
    one, three = model(single_pass=True), model()
    three.load_state_dict(one.state_dict())
    calls = _spy_encode(one)
    a, b = one.evaluate([batch], seed=5), three.evaluate([batch], seed=5)
    assert len(calls) == 3 and one.single_pass  # evaluate used all passes, then restored the mode
    assert a == b


# ---------------------------------------------------------------- target="spectrum"
SPECTRUM = dict(patch_size=25, embed_dim=32, depth=1, num_heads=2, target="spectrum")
N_BINS = 25 // 2 + 1


def _reference_target(batch, patch_size=25) -> np.ndarray:
    """Per-sample z-scored |rfft| of every patch, float64, written out with numpy: (B, C, K, F)."""
    x = batch.x.double().numpy()
    n_chans = batch.channel_mask.numpy()
    b, c, t = x.shape
    k = t // patch_size
    amp = np.abs(np.fft.rfft(x[..., : k * patch_size].reshape(b, c, k, patch_size), axis=-1))
    out = np.zeros_like(amp)
    for i in range(b):
        kv = int(batch.n_times[i]) // patch_size
        valid = amp[i][n_chans[i]][:, :kv]  # (C_i, K_i, F)
        out[i][np.ix_(n_chans[i], np.arange(kv))] = (valid - valid.mean()) / valid.std()
    return out


def _constant_head(pre, bias):
    """Every token predicts ``bias`` (F,): the prediction no longer depends on the encoder."""
    with torch.no_grad():
        pre.head.weight.zero_()
        pre.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return pre


def _fixed_masks(pre, masks):
    """Replace the random masks by ``masks(token_mask) -> [(name, mask (B, C, K), strategy (B,) or None)]``."""
    # no bound on the masked tokens, every token a slot for the visible ones (decoder_depth > 0)
    pre._masks = lambda token_mask, generator: [(*item, None, (None, False)) for item in masks(token_mask)]
    return pre


@pytest.mark.parametrize("target", ["spectrum", "signal", "spectrum_slow"])
def test_regression_loss_and_r2_equal_a_reference_computation_and_ignore_padding(target):
    """Every regression target: the loss is the sum over strategies of the mean per-token (weighted)
    MSE, the score the masked (weighted) R^2, both against numpy; garbage in the padding changes nothing."""
    config, n_out, reference_target = {"spectrum": (SPECTRUM, N_BINS, _reference_target),
                                       "signal": (SIGNAL, 25, _reference_signal),
                                       "spectrum_slow": (SPECTRUM_SLOW, N_BINS + SLOW_BINS, _reference_spectrum_slow),
                                       }[target]
    # spectrum_slow: the F amplitudes weigh 1/2 in all, the S slow means 1/2 in all
    column = (np.r_[np.full(N_BINS, 0.5 / N_BINS), np.full(SLOW_BINS, 0.5 / SLOW_BINS)]
              if target == "spectrum_slow" else np.full(n_out, 1.0 / n_out))
    batch = batch_of()  # (2, 6, 200): sample 1 has 4 channels and 125 samples (5 of 8 patches)
    bias = np.linspace(-1.0, 1.0, n_out)
    pre = _constant_head(MaskedPretrainer(**config, strategies=["random", "temporal"]), bias)
    assert pre.head.out_features == n_out and "target_counts" not in pre.state_dict()
    g = torch.Generator().manual_seed(0)
    m1 = torch.rand(2, 6, 8, generator=g) < 0.5
    m2 = torch.zeros(2, 6, 8, dtype=torch.bool)
    m2[:, :, ::2] = True
    _fixed_masks(pre, lambda tm: [("random", m1 & tm, None), ("temporal", m2 & tm, None)])
    out = pre(**batch.encoder_inputs())

    truth_all = reference_target(batch)
    token_mask = pre.encoder.token_mask(batch.channel_mask, batch.n_times, 8).numpy()
    errors, r2 = [], {}
    for name, mask in (("random", m1.numpy() & token_mask), ("temporal", m2.numpy() & token_mask)):
        truth = truth_all[mask]  # (M, F)
        errors.append((column * (bias - truth) ** 2).sum(-1))  # per-token (weighted) MSE (M,)
        r2[name] = 1 - (column * (bias - truth) ** 2).sum() / (column * truth ** 2).sum()
    reference = np.concatenate(errors).sum() / (sum(map(len, errors)) / 2)  # two strategies: sum of their means
    assert out.loss.item() == pytest.approx(reference, rel=1e-5)
    assert {k: float(v) for k, v in out.accuracy.items()} == pytest.approx(r2, rel=1e-5, abs=1e-6)
    assert float(out.baseline_accuracy) == 0.0
    assert {k: int(v) for k, v in out.n_masked.items()} == {k: len(e) for k, e in zip(r2, errors)}

    batch.x[1, 4:] = 1e4  # garbage in the padded channels and time steps changes nothing
    batch.x[1, :, 125:] = -1e4
    again = pre(**batch.encoder_inputs())
    assert again.loss.item() == pytest.approx(out.loss.item(), rel=1e-6)
    assert {k: float(v) for k, v in again.accuracy.items()} == pytest.approx(r2, rel=1e-5, abs=1e-6)

    _constant_head(pre, np.zeros(n_out))  # predicting 0 (each target's mean) scores R^2 0
    zero = pre(**batch.encoder_inputs())
    assert all(float(v) == 0.0 for v in zero.accuracy.values())
    if target == "signal":  # each patch's target has unit variance: a loss of 1 per strategy
        assert zero.loss.item() == pytest.approx(2.0, rel=1e-5)
    if target == "spectrum_slow":  # the slow half moves the loss: a head that gets it right scores higher
        truth = truth_all[m1.numpy() & token_mask]
        _constant_head(pre, np.r_[np.zeros(N_BINS), truth[:, N_BINS:].mean(0)])
        assert float(pre(**batch.encoder_inputs()).accuracy["random"]) > 0.0


def test_spectrum_r2_of_predicting_zero_is_zero_and_single_pass_splits_it_per_strategy():
    batch = batch_of()
    pre = _constant_head(MaskedPretrainer(**SPECTRUM, strategies=["random", "temporal"], single_pass=True),
                         np.zeros(N_BINS))
    out = pre(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0))
    assert set(out.accuracy) == {"random", "temporal"} and all(float(v) == 0.0 for v in out.accuracy.values())
    target = _reference_target(batch)
    masked = target[_last_mask(pre, batch)]  # (M, F): predicting 0 costs the mean squared target
    assert len(masked) == int(out.count) and out.loss.item() == pytest.approx((masked ** 2).mean(), rel=1e-5)

    bias = np.linspace(-1.0, 1.0, N_BINS)
    _constant_head(pre, bias)
    mixed = torch.zeros(2, 6, 8, dtype=torch.bool)
    mixed[0, :3] = True  # sample 0: channels 0-2 ("channel"-like), sample 1: patches 0-1
    mixed[1, :, :2] = True
    _fixed_masks(pre, lambda tm: [("mixed", mixed & tm, torch.tensor([1, 0]))])  # sample 0 temporal, 1 random
    out = pre(**batch.encoder_inputs())
    token_mask = pre.encoder.token_mask(batch.channel_mask, batch.n_times, 8).numpy()
    expected = {}
    for name, sample in (("temporal", 0), ("random", 1)):
        truth = target[sample][(mixed.numpy() & token_mask)[sample]]
        expected[name] = 1 - ((bias - truth) ** 2).sum() / (truth ** 2).sum()
    assert {k: float(v) for k, v in out.accuracy.items()} == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert {k: int(v) for k, v in out.n_masked.items()} == {"temporal": 3 * 8, "random": 4 * 2}
    assert int(out.count) == 3 * 8 + 4 * 2  # single pass: the mean over the pass's masked tokens


def _last_mask(pre, batch):
    """The single-pass mask ``pre`` draws for ``batch`` with seed 0 (as in forward)."""
    token_mask = pre.encoder.token_mask(batch.channel_mask, batch.n_times, 8)
    return pre._masks(token_mask, torch.Generator().manual_seed(0))[0][1].numpy()


def test_spectrum_evaluate_pools_r2_over_batches_in_either_mode():
    batches = [batch_of(0), batch_of(1)]
    bias = np.linspace(-0.5, 0.5, N_BINS)
    every_other = lambda tm: [("random", tm & (torch.arange(8) % 2 == 0), None)]  # noqa: E731
    results = []
    for single_pass in (False, True):
        pre = _fixed_masks(_constant_head(MaskedPretrainer(**SPECTRUM, strategies=["random"],
                                                           single_pass=single_pass), bias), every_other)
        results.append(pre.evaluate(batches, seed=0))
    sse = ss = n = 0
    for batch in batches:
        token_mask = (batch.channel_mask[:, :, None] & (torch.arange(8) < batch.n_times[:, None, None] // 25)).numpy()
        truth = _reference_target(batch)[token_mask & (np.arange(8) % 2 == 0)]
        sse, ss, n = sse + ((bias - truth) ** 2).sum(), ss + (truth ** 2).sum(), n + len(truth)
    assert results[0] == results[1]
    assert results[0]["accuracy"]["random"] == pytest.approx(1 - sse / ss, rel=1e-5)
    assert results[0]["baseline_accuracy"] == 0.0 and results[0]["masked_tokens"] == {"random": n}


@pytest.mark.parametrize("single_pass", [True, False])
def test_spectrum_target_trains_without_a_tokenizer(single_pass):
    torch.manual_seed(0)
    pre = MaskedPretrainer(**SPECTRUM, single_pass=single_pass)
    losses, out = _train(pre, steps=60)  # noisy: new masks each step
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5]), losses
    assert set(out) == {"loss_sum", "count", "accuracy_random", "accuracy_channel", "accuracy_temporal",
                        "baseline_accuracy"}
    batch = batch_of()
    batch.targets = torch.zeros(2, 48, dtype=torch.long)  # cached codes of a loader: ignored by the step
    assert torch.isfinite(pre.training_step(batch)["loss_sum"])
    evaluation = pre.evaluate([batch], seed=0)
    assert set(evaluation["accuracy"]) == {"random", "channel", "temporal"}
    assert all(r2 > 0.2 for r2 in evaluation["accuracy"].values()), evaluation  # learnt the channels' amplitudes


def test_spectrum_target_is_saved_and_old_folders_load_as_codes(tmp_path):
    import json

    pre = MaskedPretrainer(**SPECTRUM)
    pre.save_pretrained(tmp_path / "spectrum")
    assert json.loads((tmp_path / "spectrum" / "config.json").read_text())["target"] == "spectrum"
    loaded = MaskedPretrainer.from_pretrained(tmp_path / "spectrum")
    assert loaded.target == "spectrum" and loaded.head.out_features == N_BINS
    assert torch.equal(loaded.head.weight, pre.head.weight)
    model().save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["target"]  # a folder saved before target= existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = MaskedPretrainer.from_pretrained(tmp_path / "old")
    assert old.target == "codes" and old.head.out_features == 8


def test_spectrum_errors():
    with pytest.raises(ValueError,
            match=r"^target must be one of 'codes', 'spectrum', 'signal', 'spectrum_slow', got 'fft'$"):
        MaskedPretrainer(**{**SPECTRUM, "target": "fft"})
    pre = MaskedPretrainer(**SPECTRUM)
    with pytest.raises(ValueError, match="target='spectrum' needs no tokenizer: attach_tokenizer"):
        pre.attach_tokenizer(AmplitudeBins())
    with pytest.raises(ValueError, match=r"target='spectrum' regresses amplitudes computed from x: targets="):
        pre(**batch_of().encoder_inputs(), targets=torch.zeros(2, 48, dtype=torch.long))


# ---------------------------------------------------------------- target="signal"
SIGNAL = {**SPECTRUM, "target": "signal"}


def _reference_signal(batch, patch_size=25) -> np.ndarray:
    """Every patch's samples z-scored on their own (population variance + 1e-6), float64, numpy: (B, C, K, W)."""
    x = batch.x.double().numpy()
    b, c, t = x.shape
    k = t // patch_size
    centred = x[..., : k * patch_size].reshape(b, c, k, patch_size)
    centred = centred - centred.mean(-1, keepdims=True)
    return centred / np.sqrt(centred.var(-1, keepdims=True) + 1e-6)


def test_signal_target_z_scores_each_patch_on_its_own():
    patches = torch.tensor([[[[1.0, 2.0, 3.0, 4.0], [5.0] * 4, [float("nan")] * 4, [9.0, -9.0, 9.0, -9.0]]]])
    token_mask = torch.tensor([[[True, True, False, True]]])  # (1, 1, 4): the third patch is padding
    out = signal_target(patches, token_mask)
    assert out.dtype == torch.float32 and out.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-6), rtol=1e-6)
    assert torch.equal(out[0, 0, 1], torch.zeros(4))  # a flat patch: 0, not NaN
    assert torch.equal(out[0, 0, 2], torch.zeros(4))  # padding, even NaN: 0
    np.testing.assert_allclose(out[0, 0, 3].numpy(), [1, -1, 1, -1], rtol=1e-6)  # its own scale, not the sample's
    shifted = signal_target(patches.to(torch.bfloat16) * 8 + 16, token_mask)  # any offset and scale, any dtype
    assert shifted.dtype == torch.float32
    np.testing.assert_allclose(shifted.numpy(), out.numpy(), rtol=1e-5, atol=1e-6)


def _assert_round_trip(pre, folder, width: int) -> MaskedPretrainer:
    """save_pretrained -> from_pretrained keeps the target (in config.json), the head's width and weights."""
    import json

    pre.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["target"] == pre.target
    loaded = MaskedPretrainer.from_pretrained(folder)
    assert loaded.target == pre.target and loaded.head.out_features == width
    assert torch.equal(loaded.head.weight, pre.head.weight)
    return loaded


def test_signal_target_trains_evaluates_and_is_saved(tmp_path):
    torch.manual_seed(0)
    pre = MaskedPretrainer(**SIGNAL, single_pass=True)
    batch = batch_of()
    t = torch.arange(200, dtype=torch.float32)
    batch.x = batch.x * 0.1 + 20 * torch.sin(2 * torch.pi * t / 25) * batch.channel_mask[..., None]  # learnable
    losses, out = _train(pre, 40, batch)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert set(out) == {"loss_sum", "count", "accuracy_random", "accuracy_channel", "accuracy_temporal",
                        "baseline_accuracy"}
    batch.targets = torch.zeros(2, 48, dtype=torch.long)  # cached codes of a loader: ignored by the step
    assert torch.isfinite(pre.training_step(batch)["loss_sum"])
    evaluation = pre.evaluate([batch], seed=0)
    assert set(evaluation["accuracy"]) == {"random", "channel", "temporal"}
    assert all(r2 > 0.5 for r2 in evaluation["accuracy"].values()), evaluation

    _assert_round_trip(pre, tmp_path / "signal", width=25)


def test_signal_errors():
    pre = MaskedPretrainer(**SIGNAL)
    with pytest.raises(ValueError, match="target='signal' needs no tokenizer: attach_tokenizer"):
        pre.attach_tokenizer(AmplitudeBins())
    with pytest.raises(ValueError, match=r"target='signal' regresses samples computed from x: targets="):
        pre(**batch_of().encoder_inputs(), targets=torch.zeros(2, 48, dtype=torch.long))


# ---------------------------------------------------------------- target="spectrum_slow"
SPECTRUM_SLOW = {**SPECTRUM, "target": "spectrum_slow"}


def _reference_slow(batch, patch_size=25, n_bins=SLOW_BINS) -> np.ndarray:
    """asinh of each patch's sub-window means (adaptive pooling's windows), z-scored per sample over its
    valid patches, float64, numpy: (B, C, K, S)."""
    x = batch.x.double().numpy()
    n_chans = batch.channel_mask.numpy()
    b, c, t = x.shape
    k = t // patch_size
    patches = x[..., : k * patch_size].reshape(b, c, k, patch_size)
    edges = [(i * patch_size // n_bins, -(-(i + 1) * patch_size // n_bins)) for i in range(n_bins)]
    level = np.arcsinh(np.stack([patches[..., lo:hi].mean(-1) for lo, hi in edges], -1))  # (B, C, K, S)
    out = np.zeros_like(level)
    for i in range(b):
        kv = int(batch.n_times[i]) // patch_size
        valid = level[i][n_chans[i]][:, :kv]
        out[i][np.ix_(n_chans[i], np.arange(kv))] = (valid - valid.mean()) / valid.std()
    return out


def _reference_spectrum_slow(batch, patch_size=25) -> np.ndarray:
    return np.concatenate([_reference_target(batch, patch_size), _reference_slow(batch, patch_size)], -1)


def test_slow_target_keeps_the_sign_and_the_level_across_channels():
    # two channels, one 8-sample patch each: a slow positive and a slow negative potential
    patches = torch.tensor([[[[10.0] * 4 + [30.0] * 4], [[-10.0] * 4 + [-30.0] * 4], [[float("nan")] * 8]]])
    token_mask = torch.tensor([[[True], [True], [False]]])  # (1, 3, 1): the third channel is padding
    out = slow_target(patches, token_mask, n_bins=2)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 1, 2)
    level = np.arcsinh([10.0, 30.0, -10.0, -30.0])
    np.testing.assert_allclose(out[0, :2, 0].flatten().numpy(), (level - level.mean()) / level.std(), rtol=1e-5)
    assert torch.equal(out[0, 2, 0], torch.zeros(2))  # padding, even NaN: 0
    assert (out[0, 0, 0] > 0).all() and (out[0, 1, 0] < 0).all()  # the sign the amplitude spectrum drops
    flipped = slow_target(-patches, token_mask, n_bins=2)  # a mirrored potential: a mirrored target
    np.testing.assert_allclose(flipped.numpy(), -out.numpy(), atol=1e-6)
    flat = slow_target(torch.full((1, 2, 3, 8), 5.0), torch.ones(1, 2, 3, dtype=torch.bool))
    assert flat.abs().max() < 1e-4  # nothing varies: ~0, not NaN and not rounding noise / 1e-6
    with pytest.raises(ValueError, match=r"^n_bins must be >= 1, got 0$"):
        slow_target(patches, token_mask, n_bins=0)


def test_spectrum_slow_target_trains_evaluates_and_is_saved(tmp_path):
    torch.manual_seed(0)
    pre = MaskedPretrainer(**SPECTRUM_SLOW, single_pass=True)
    assert pre.head.out_features == N_BINS + SLOW_BINS and "target_counts" not in pre.state_dict()
    batch = batch_of()
    t = torch.arange(200, dtype=torch.float32)
    slow = 30 * torch.sin(2 * torch.pi * t / 200) * torch.linspace(-1, 1, 6)[:, None]  # signed, spread over the cap
    batch.x = (batch.x * 0.1 + slow) * batch.channel_mask[..., None]
    losses, out = _train(pre, 40, batch)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    evaluation = pre.evaluate([batch], seed=0)
    assert set(evaluation["accuracy"]) == {"random", "channel", "temporal"}
    assert all(r2 > 0.2 for r2 in evaluation["accuracy"].values()), evaluation

    loaded = _assert_round_trip(pre, tmp_path / "slow", width=N_BINS + SLOW_BINS)
    again = loaded(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(3))
    assert again.loss.item() == pytest.approx(pre(**batch.encoder_inputs(),
                                                  generator=torch.Generator().manual_seed(3)).loss.item(), rel=1e-6)


def test_spectrum_slow_errors():
    pre = MaskedPretrainer(**SPECTRUM_SLOW)
    with pytest.raises(ValueError, match="target='spectrum_slow' needs no tokenizer: attach_tokenizer"):
        pre.attach_tokenizer(AmplitudeBins())
    with pytest.raises(ValueError, match=r"target='spectrum_slow' regresses amplitudes and slow means computed from "
                                         r"x: targets="):
        pre(**batch_of().encoder_inputs(), targets=torch.zeros(2, 48, dtype=torch.long))


# ---------------------------------------------------------------- decoder_depth: the encoder sees the visible tokens
def _blocks_input_lengths(pre):
    """Token counts each encoder block and each decoder block is called with (a forward pre-hook)."""
    seen = {"encoder": [], "decoder": []}
    pre.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen["encoder"].append(args[0].shape[-2]))
    pre.decoder_blocks[0].register_forward_pre_hook(lambda m, args: seen["decoder"].append(args[0].shape[-2]))
    return seen


@pytest.mark.parametrize("strategy", ["random", "channel", "temporal"])
def test_decoder_encoder_sees_only_the_visible_tokens(strategy):
    """Unpadded batch: the encoder's blocks take CLS + the visible half, the decoder every token."""
    torch.manual_seed(0)
    pre = MaskedPretrainer(**SPECTRUM, strategies=[strategy], decoder_depth=1).eval()
    x = torch.randn(3, 4, 200) * 10  # 4 channels x 8 patches, no padding
    seen = _blocks_input_lengths(pre)
    out = pre(x, torch.rand(4, 2) * 100, generator=torch.Generator().manual_seed(0))
    assert seen == {"encoder": [1 + 16], "decoder": [1 + 32]}
    assert out.n_masked[strategy] == 3 * 16


@pytest.mark.parametrize("bias", ["none", "distance"])
def test_decoder_predictions_ignore_masked_patches_and_padding(bias):
    """What the head reads does not move when the masked patches or the padding change (nothing of a
    masked patch reaches the encoder), and equals the computation over every token with a key mask."""
    torch.manual_seed(0)
    pre = MaskedPretrainer(**SPECTRUM, decoder_depth=2, attention_bias=bias).eval()
    batch = batch_of()
    inputs = pre.encoder.prepare_inputs(**batch.encoder_inputs(), embed=False)
    for name, mask, _, _, visible in pre._masks(inputs.token_mask, torch.Generator().manual_seed(1)):
        got = pre.masked_output(inputs, mask, visible)
        torch.testing.assert_close(got, pre.masked_output(inputs, mask), rtol=1e-5, atol=1e-5)  # every token as a slot
        changed = batch.x.clone().view(2, 6, 8, 25)
        changed[mask | ~inputs.token_mask] = torch.randn_like(changed[mask | ~inputs.token_mask]) * 1e3
        moved = pre.encoder.prepare_inputs(changed.view(2, 6, 200), batch.positions, channel_mask=batch.channel_mask,
                                           n_times=batch.n_times, embed=False)
        torch.testing.assert_close(pre.masked_output(moved, mask, visible), got, rtol=0, atol=0)
        assert not got[~inputs.token_mask.flatten(1)].any()  # zeros at padding


@pytest.mark.parametrize("strategy", ["random", "channel", "temporal"])
@pytest.mark.parametrize("ratio", [0.1, 0.25, 1 / 3, 0.5, 0.55, 0.75, 0.9])
def test_visible_slots_hold_every_sample_and_are_exact_unpadded(strategy, ratio):
    """The slots the encoder gets per sample (known from shapes and ratios alone) hold every visible
    token of every sample, whatever its padding, and a full sample fills them when said exact; a
    complement's visible tokens are the original mask's."""
    from eegfm.models.pretrainer import _visible_slots
    from eegfm.modules.masking import MASK_STRATEGIES

    for n_chans, n_patches in [(1, 1), (1, 2), (2, 3), (3, 5), (7, 4), (19, 4), (64, 4), (5, 30)]:
        samples = [(c, k) for c in range(1, n_chans + 1) for k in range(1, n_patches + 1)]  # full grid last
        grid = torch.zeros(len(samples), n_chans, n_patches, dtype=torch.bool)
        for row, (c, k) in enumerate(samples):
            grid[row, :c, :k] = True
        masked = MASK_STRATEGIES[strategy](grid, ratio, torch.Generator().manual_seed(0))
        for complement, visible in ((False, grid & ~masked), (True, masked)):
            count = visible.flatten(1).sum(1)
            slots, exact = _visible_slots(strategy, ratio, n_chans, n_patches, complement)
            assert int(count.max()) <= slots, (n_chans, n_patches, complement)
            if exact and int(count[-1]) > 0:
                assert int(count[-1]) == slots, (n_chans, n_patches, complement)


def test_decoder_trains_evaluates_and_is_saved(tmp_path):
    import json

    torch.manual_seed(0)
    pre = MaskedPretrainer(**SPECTRUM, decoder_depth=1, single_pass=True)
    losses, out = _train(pre, 40)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert pre.mask_embedding.grad is not None and pre.decoder_blocks[0].mlp[0].weight.grad is not None
    evaluation = pre.evaluate([batch_of()], seed=0)
    assert set(evaluation["accuracy"]) == {"random", "channel", "temporal"}
    loaded = _assert_round_trip(pre, tmp_path / "decoder", width=N_BINS)
    assert loaded.decoder_depth == 1
    for name, value in pre.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    config = json.loads((tmp_path / "decoder" / "config.json").read_text())
    assert config["decoder_depth"] == 1
    MaskedPretrainer(**SPECTRUM).save_pretrained(tmp_path / "old")
    old_config = json.loads((tmp_path / "old" / "config.json").read_text())
    del old_config["decoder_depth"]  # a folder saved before decoder_depth existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(old_config))
    old = MaskedPretrainer.from_pretrained(tmp_path / "old")
    assert old.decoder_depth == 0 and old.decoder_blocks is None


def test_decoder_errors():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"^decoder_depth must be an int >= 0 \(0: the encoder sees every token"):
            MaskedPretrainer(**SPECTRUM, decoder_depth=bad)


# ---------------------------------------------------------------- visible_blocks: k blocks see the visible tokens
@pytest.mark.parametrize("bias", ["none", "distance"])
def test_visible_path_with_no_visible_block_is_the_every_token_maths_bit_for_bit(bias):
    """The gather -> k blocks -> scatter path with k = 0 gives exactly what the encoder gives on every
    token with the mask embedding (the paper's step), padded or not: the path adds no maths."""
    from eegfm.models.pretrainer import _visible_slots
    from eegfm.modules.masking import make_mask

    torch.manual_seed(0)
    pre = MaskedPretrainer(**{**SPECTRUM, "depth": 2}, attention_bias=bias).eval()
    batch = batch_of()
    for inputs in (pre.encoder.prepare_inputs(**batch.encoder_inputs()),
                   pre.encoder.prepare_inputs(batch.x[:1, :, :200], batch.positions[:1])):  # padded, then not
        for strategy in ("random", "channel", "temporal"):
            mask = make_mask(strategy, inputs.token_mask, 0.5, torch.Generator().manual_seed(2))
            slots = _visible_slots(strategy, 0.5, *inputs.token_mask.shape[1:])
            torch.testing.assert_close(pre._visible_first(inputs, mask, slots, 0), pre.masked_output(inputs, mask),
                                       rtol=0, atol=0)
            rows = torch.argsort((~mask.flatten(1)).to(torch.uint8), dim=1, stable=True)[:, :5]  # the loss's slots
            got = pre._visible_first(inputs, mask, slots, 0, rows)
            torch.testing.assert_close(got, pre.masked_output(inputs, mask, rows=rows), rtol=0, atol=0)
            full = pre.masked_output(inputs, mask).gather(1, rows[..., None].expand(-1, -1, got.shape[-1]))
            torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)  # the last block at those rows only


def test_visible_blocks_split_the_encoder_and_ignore_masked_patches():
    torch.manual_seed(0)
    pre = MaskedPretrainer(**{**SPECTRUM, "depth": 2}, strategies=["random"], visible_blocks=1).eval()
    seen = []
    for block in pre.encoder.blocks:
        block.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2]))
    x, positions = torch.randn(3, 4, 200) * 10, torch.rand(4, 2) * 100  # 32 tokens, no padding
    pre(x, positions, generator=torch.Generator().manual_seed(0))
    assert seen == [1 + 16, 1 + 32]  # block 0: CLS + the visible half; block 1: every token
    inputs = pre.encoder.prepare_inputs(x, positions, embed=False)
    mask = pre._masks(inputs.token_mask, torch.Generator().manual_seed(1))[0][1]
    got = pre.masked_output(inputs, mask, (16, True))
    changed = x.clone().view(3, 4, 8, 25)
    changed[mask] = torch.randn_like(changed[mask]) * 1e3
    moved = pre.encoder.prepare_inputs(changed.view(3, 4, 200), positions, embed=False)
    torch.testing.assert_close(pre.masked_output(moved, mask, (16, True)), got, rtol=0, atol=0)
    torch.testing.assert_close(pre.masked_output(inputs, mask), got, rtol=1e-5, atol=1e-5)  # every token a slot


def test_visible_blocks_train_are_saved_and_errors(tmp_path):
    import json

    torch.manual_seed(0)
    pre = MaskedPretrainer(**{**SPECTRUM, "depth": 2}, visible_blocks=1, single_pass=True)
    losses, _ = _train(pre, 40)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    loaded = _assert_round_trip(pre, tmp_path / "visible", width=N_BINS)
    assert loaded.visible_blocks == 1 and loaded.decoder_blocks is None
    config = json.loads((tmp_path / "visible" / "config.json").read_text())
    del config["visible_blocks"]  # a folder saved before visible_blocks existed
    (tmp_path / "visible" / "config.json").write_text(json.dumps(config))
    assert MaskedPretrainer.from_pretrained(tmp_path / "visible").visible_blocks == 0
    for bad in (-1, 2, 1.0, True):
        with pytest.raises(ValueError, match=r"^visible_blocks must be an int from 0 to the encoder's depth 1 \(0:"):
            MaskedPretrainer(**SPECTRUM, visible_blocks=bad)
    with pytest.raises(ValueError, match=r"^visible_blocks=1 and decoder_depth=1: choose one"):
        MaskedPretrainer(**SPECTRUM, visible_blocks=1, decoder_depth=1)


@pytest.mark.parametrize("visible_blocks", [0, 1])
def test_the_last_block_runs_its_mlp_on_the_masked_slots_only(visible_blocks):
    """The loss reads the masked tokens only: the encoder's last block attends from and runs its MLP on
    the step's ``most`` slots (16 of 32 tokens here), every other block on every token (+ CLS)."""
    torch.manual_seed(0)
    pre = MaskedPretrainer(**{**SPECTRUM, "depth": 2}, strategies=["random"], visible_blocks=visible_blocks).eval()
    seen = []
    for block in pre.encoder.blocks:
        block.mlp.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[:-1])))
    pre(torch.randn(3, 4, 200) * 10, torch.rand(4, 2) * 100, generator=torch.Generator().manual_seed(0))
    assert seen == [(3, 1 + (16 if visible_blocks else 32)), (3, 16)]
