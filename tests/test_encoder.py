import pytest
import torch

from eegfm import MAPEEncoder, pad_recordings

TINY = dict(patch_size=25, embed_dim=32, depth=2, num_heads=4)


def tiny(**kw):
    return MAPEEncoder(**{**TINY, **kw}).eval()


def recording(n_chans, n_times, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_chans, n_times, generator=g) * 20, torch.rand(n_chans, 2, generator=g) * 100


def test_shapes_and_leftover_samples_dropped():
    model = tiny()
    x, pos = recording(5, 110, 0)  # 4 patches of 25, 10 samples dropped
    out = model(x[None], pos)
    assert out.tokens.shape == (1, 20, 32) and out.cls.shape == (1, 32)
    assert out.grid().shape == (1, 5, 4, 32)
    assert out.token_mask.all()
    assert torch.equal(model(x[None, :, :100], pos).tokens, out.tokens)


def test_permuting_channels_with_positions_permutes_tokens():
    model = tiny()
    x, pos = recording(6, 100, 1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a = model(x[None], pos)
    b = model(x[None, perm], pos[perm])
    assert torch.allclose(b.grid()[0], a.grid()[0, perm], atol=1e-5)
    assert torch.allclose(b.cls, a.cls, atol=1e-5)


def test_mape_uses_positions_and_the_flat_baseline_does_not():
    x, pos = recording(4, 100, 2)
    moved = pos.clone()
    moved[0] += 7.0
    mape, flat = tiny(), tiny(position_embedding="sincos1d")
    assert not torch.allclose(mape(x[None], pos).cls, mape(x[None], moved).cls, atol=1e-4)
    assert torch.equal(flat(x[None], pos).cls, flat(x[None], moved).cls)


@pytest.mark.parametrize("kind", ["mape", "sincos1d"])
def test_output_alone_equals_output_padded_in_a_mixed_batch(kind):
    model = tiny(position_embedding=kind)
    small = recording(19, 200, 3)  # 19 channels, 8 patches
    big = recording(64, 325, 4)  # larger montage, longer recording (13 patches)
    alone = model(small[0][None], small[1])
    batch = pad_recordings([big, small])
    mixed = model(**batch.encoder_inputs())
    k = 200 // 25
    tokens = mixed.grid()[1, :19, :k].reshape(1, 19 * k, -1)
    assert torch.allclose(tokens, alone.tokens, atol=1e-5)
    assert torch.allclose(mixed.cls[1], alone.cls[0], atol=1e-5)
    assert torch.allclose(mixed.pooled()[1], alone.pooled()[0], atol=1e-5)
    assert mixed.token_mask[1].sum() == 19 * k
    assert not mixed.grid()[1, 19:].isnan().any()


def test_padded_tokens_are_never_attended_to():
    model = tiny()
    batch = pad_recordings([recording(3, 150, 5), recording(2, 100, 6)])
    ref = model(**batch.encoder_inputs())
    batch.x[1, 2:] = 1e4 * torch.randn_like(batch.x[1, 2:])  # garbage in padded channels
    batch.x[1, :, 100:] = -1e4  # and in padded time
    batch.positions[1, 2:] = 1234.0
    out = model(**batch.encoder_inputs())
    valid = ref.token_mask[1]
    assert torch.allclose(out.tokens[1, valid], ref.tokens[1, valid], atol=1e-5)
    assert torch.allclose(out.cls, ref.cls, atol=1e-5)


def test_trains_under_bf16_autocast():
    model = tiny().train()
    batch = pad_recordings([recording(3, 150, 7), recording(5, 100, 8)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch.encoder_inputs())
        loss = out.pooled().float().pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_input_errors_name_the_argument():
    model = tiny()
    x, pos = recording(4, 100, 9)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, channels, times\), got \(4, 100\)"):
        model(x, pos)
    with pytest.raises(ValueError, match=r"positions must have shape \(1, 4, 2\) or \(4, 2\).*got \(3, 2\)"):
        model(x[None], pos[:3])
    with pytest.raises(ValueError, match="fewer than one patch"):
        model(x[None, :, :10], pos)
    with pytest.raises(ValueError, match="sfreq=250 Hz but this model expects sfreq=200.0 Hz"):
        model(x[None], pos, sfreq=250)
    with pytest.raises(ValueError, match="channel_mask must be a bool tensor of shape"):
        model(x[None], pos, channel_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="embed_dim=30 must be divisible by num_heads=4"):
        MAPEEncoder(embed_dim=30, num_heads=4)


def test_pad_recordings_errors():
    with pytest.raises(ValueError, match="at least one"):
        pad_recordings([])
    with pytest.raises(ValueError, match=r"recordings\[0\]: x must be \(channels, times\)"):
        pad_recordings([(torch.zeros(3, 10), torch.zeros(2, 2))])


def test_preprocessing_contract_travels_with_the_model(tmp_path):
    from eegfm.data import PreprocessConfig

    model = tiny(preprocessing={"notch_freq": 50.0})
    assert model.preprocessing == PreprocessConfig(notch_freq=50.0)
    model.save_pretrained(tmp_path)
    loaded = MAPEEncoder.from_pretrained(tmp_path)
    assert loaded.preprocessing == PreprocessConfig(notch_freq=50.0)
    assert tiny().get_config()["preprocessing"] == PreprocessConfig().to_dict()
    loaded.check_preprocessing(PreprocessConfig(notch_freq=50.0))
    with pytest.raises(ValueError, match=r"h_freq=40.0 \(model expects 75.0\), notch_freq=None \(model expects 50.0\)"):
        loaded.check_preprocessing(PreprocessConfig(h_freq=40.0))
    with pytest.raises(ValueError, match=r"preprocessing\['sfreq'\]=250.0 differs from sfreq=200.0"):
        tiny(preprocessing={"sfreq": 250.0})
    with pytest.raises(ValueError, match="bandpass"):
        tiny(preprocessing={"bandpass": 1})
