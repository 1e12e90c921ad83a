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


def _cls_and_grads(model, x, pos, only_cls, **kw):
    model.zero_grad()
    cls = model.forward_cls(x, pos, **kw) if only_cls else model(x, pos, **kw).cls
    cls.square().sum().backward()
    return cls.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bias", ["none", "distance"])
@pytest.mark.parametrize("padded", [False, True])
def test_forward_cls_equals_the_full_forwards_cls_and_gradients(bias, padded):
    torch.manual_seed(0)
    model = MAPEEncoder(**TINY, attention_bias=bias).train()  # no dropout in TINY: train mode is deterministic
    recs = [recording(6, 100, 0), recording(3, 75, 1), recording(6, 50, 2)] if padded else [recording(6, 100, s)
                                                                                         for s in range(3)]
    batch = pad_recordings(recs)
    kw = dict(channel_mask=batch.channel_mask, n_times=batch.n_times) if padded else {}
    want, want_grads = _cls_and_grads(model, batch.x, batch.positions, False, **kw)
    got, got_grads = _cls_and_grads(model, batch.x, batch.positions, True, **kw)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the last block's query, output projection and MLP get no gradient from its other tokens: same sums
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        scale = want_grads[name].abs().max().item()  # float rounding of sums in another order: relative to it
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-3, atol=1e-3 * scale, msg=name)


def test_forward_cls_runs_the_last_blocks_mlp_on_the_cls_token_only():
    model = tiny(depth=3)
    seen = {}
    for i, block in enumerate(model.blocks):
        block.mlp.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(i, tuple(args[0].shape)))
    x, pos = recording(5, 100, 0)  # 5 channels x 4 patches: 21 tokens with the CLS
    model.forward_cls(x[None].expand(2, -1, -1), pos)
    assert seen == {0: (2, 21, 32), 1: (2, 21, 32), 2: (2, 1, 32)}


def test_forward_cls_checks_its_inputs_as_forward_does():
    x, pos = recording(3, 100, 0)
    x[1, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tiny().forward_cls(x[None], pos)
    with pytest.raises(ValueError, match="sfreq"):
        tiny().forward_cls(x[None].nan_to_num(), pos, sfreq=123.0)
