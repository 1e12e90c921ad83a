"""MAPEEncoder's own behaviour; the checks every model passes (save/load, padding, channel
permutation, determinism, bf16, input errors) are in tests/test_models_common.py."""

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


def test_mape_uses_positions_and_the_flat_baseline_does_not():
    x, pos = recording(4, 100, 2)
    moved = pos.clone()
    moved[0] += 7.0
    mape, flat = tiny(), tiny(position_embedding="sincos1d")
    assert not torch.allclose(mape(x[None], pos).cls, mape(x[None], moved).cls, atol=1e-4)
    assert torch.equal(flat(x[None], pos).cls, flat(x[None], moved).cls)


def test_embed_dim_must_divide_into_heads():
    """Input errors: tests/test_models_common.py (every model)."""
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


def test_patch_mean_is_saved_with_the_model_and_older_configs_load_without_it(tmp_path):
    import json

    model = tiny(patch_mean=True)
    assert model.get_config()["patch_mean"] is True and model.patch_embed.mean_feature
    x, pos = recording(3, 100, seed=1)
    model.save_pretrained(tmp_path / "with")
    loaded = MAPEEncoder.from_pretrained(tmp_path / "with").eval()
    assert loaded.patch_embed.mean_feature
    assert torch.equal(loaded(x[None], pos).tokens, model(x[None], pos).tokens)
    # a folder written before the field existed has no "patch_mean" key: it loads as the reference embedder
    plain = tiny()
    plain.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["patch_mean"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = MAPEEncoder.from_pretrained(tmp_path / "old").eval()
    assert not old.patch_embed.mean_feature
    assert torch.equal(old(x[None], pos).tokens, plain(x[None], pos).tokens)
