import pytest
import torch
from torch import nn

from eegfm.data import pad_recordings
from eegfm.models.pretrainer import MaskedPretrainer

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
    original = pre.encoder.encode

    def spy(embeddings, *args, **kwargs):
        seen.setdefault("embeddings", []).append(embeddings.detach().clone())
        return original(embeddings, *args, **kwargs)

    pre.encoder.encode = spy
    pre(**batch_of().encoder_inputs(), generator=torch.Generator().manual_seed(0))
    first = seen["embeddings"][0]  # (B, C, K, D) given to encode(), which adds MAPE
    is_mask = (first == pre.mask_embedding.detach()).all(-1)
    assert 30 <= int(is_mask.sum()) <= 40  # the random strategy's masked tokens, nothing else


def _train(pre, steps: int):
    """AdamW steps on one batch; returns (losses, the last training_step output)."""
    opt = torch.optim.AdamW(pre.parameters(), lr=3e-3)
    batch = batch_of()
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


def test_hub_round_trip_keeps_the_encoder_and_not_the_tokenizer(tmp_path):
    pre = model()
    assert not any(k.startswith("_tokenizer") for k in pre.state_dict())
    pre.encoder.save_pretrained(tmp_path / "encoder")
    pre.save_pretrained(tmp_path / "full")
    loaded = MaskedPretrainer.from_pretrained(tmp_path / "full")
    assert loaded.strategies == ["random", "channel", "temporal"]
    assert torch.equal(loaded.head.weight, pre.head.weight)


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
    calls = []
    original = pre.encoder.encode

    def spy(embeddings, *args, **kwargs):
        calls.append((embeddings == pre.mask_embedding.detach()).all(-1))  # (B, C, K): masked tokens
        return original(embeddings, *args, **kwargs)

    pre.encoder.encode = spy
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
