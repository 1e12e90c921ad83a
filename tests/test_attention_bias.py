"""The fixed scalp-distance / patch-lag attention bias (``EncoderConfig(attention_bias="distance")``).

Padding, channel permutation, save/load and bf16 are checked with every model in
tests/test_models_common.py (case ``MAPEEncoder-distance-bias``)."""

import json
import math

import pytest
import torch

from eegfm import MAPEEncoder
from eegfm.modules.attention_bias import HEAD_KINDS, distance_bias, head_slopes

from conftest import load_script

TINY = dict(patch_size=25, embed_dim=32, depth=2, num_heads=4)


def test_head_slopes_cycle_the_four_kinds():
    space, time = head_slopes(6)
    assert space.tolist() == [0.0, 1.0, 2.0, 0.5, 0.0, 1.0]
    assert time.tolist() == [0.0, 2.0, 0.25, 0.5, 0.0, 2.0]
    assert len(HEAD_KINDS) == 4
    with pytest.raises(ValueError, match="num_heads must be >= 1, got 0"):
        head_slopes(0)


def test_bias_values_written_out():
    """Two channels 30 units (3 neighbours) apart, two patches: every entry by hand."""
    positions = torch.tensor([[[20.0, 50.0], [50.0, 90.0]]])  # distance sqrt(30^2 + 40^2) = 50 -> 5 neighbours
    token_mask = torch.ones(1, 2, 2, dtype=torch.bool)
    bias = distance_bias(positions, token_mask, num_heads=2)
    assert bias.shape == (1, 2, 5, 5)
    assert torch.equal(bias[:, :, 0], torch.zeros(1, 2, 5)) and torch.equal(bias[:, :, :, 0], torch.zeros(1, 2, 5))
    tokens = [(c, k) for c in range(2) for k in range(2)]  # channel-major: token 1 + c*K + k
    for h, (s, t) in enumerate(HEAD_KINDS[:2]):
        for i, (ci, ki) in enumerate(tokens):
            for j, (cj, kj) in enumerate(tokens):
                expected = -(s * (5.0 if ci != cj else 0.0) + t * abs(ki - kj))
                assert bias[0, h, 1 + i, 1 + j].item() == pytest.approx(expected, abs=1e-5)


def test_padded_keys_get_minus_infinity_and_nothing_else_does():
    positions = torch.rand(2, 3, 2) * 100
    token_mask = torch.ones(2, 3, 2, dtype=torch.bool)
    token_mask[0, 2] = False  # a padded channel
    token_mask[1, :, 1] = False  # a padded patch
    bias = distance_bias(positions, token_mask, num_heads=3)
    keep = torch.cat((torch.ones(2, 1, dtype=torch.bool), token_mask.flatten(1)), dim=1)
    assert torch.isneginf(bias).equal(~keep[:, None, None, :].expand_as(bias))
    assert torch.isfinite(distance_bias(positions, token_mask, num_heads=3, padded=False)).all()


def test_the_bias_changes_attention_and_a_zero_slope_head_is_plain_attention():
    torch.manual_seed(0)
    x, pos = torch.randn(1, 4, 100) * 20, torch.rand(4, 2) * 100
    plain = MAPEEncoder(**TINY).eval()
    biased = MAPEEncoder(**TINY, attention_bias="distance").eval()
    biased.load_state_dict(plain.state_dict())  # same weights: the bias adds no parameter
    assert not torch.allclose(plain(x, pos).tokens, biased(x, pos).tokens, atol=1e-4)
    one_head = dict(TINY, num_heads=1)  # head kind 0: slopes (0, 0), so the bias is all zeros
    plain1 = MAPEEncoder(**one_head).eval()
    biased1 = MAPEEncoder(**one_head, attention_bias="distance").eval()
    biased1.load_state_dict(plain1.state_dict())
    torch.testing.assert_close(plain1(x, pos).tokens, biased1(x, pos).tokens)


def test_nearer_channels_get_more_attention():
    """A query's attention weight on a key falls with scalp distance in a spatial head."""
    pos = torch.tensor([[[10.0, 50.0], [20.0, 50.0], [60.0, 50.0], [90.0, 50.0]]])
    bias = distance_bias(pos, torch.ones(1, 4, 1, dtype=torch.bool), num_heads=2)
    weights = torch.softmax(bias[0, 1, 1, 1:], dim=-1)  # head 1 (spatial), query channel 0, keys: the 4 channels
    assert weights.argsort(descending=True).tolist() == [0, 1, 2, 3]
    assert weights[1] / weights[2] == pytest.approx(math.exp(4.0), rel=1e-4)  # 1 vs 5 neighbours away


def test_saved_with_the_model_and_older_configs_load_without_it(tmp_path):
    x, pos = torch.randn(1, 3, 100) * 20, torch.rand(3, 2) * 100
    model = MAPEEncoder(**TINY, attention_bias="distance").eval()
    model.save_pretrained(tmp_path / "with")
    assert json.loads((tmp_path / "with" / "config.json").read_text())["attention_bias"] == "distance"
    loaded = MAPEEncoder.from_pretrained(tmp_path / "with").eval()
    assert torch.equal(loaded(x, pos).tokens, model(x, pos).tokens)
    plain = MAPEEncoder(**TINY).eval()
    plain.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["attention_bias"]  # a folder written before the field existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = MAPEEncoder.from_pretrained(tmp_path / "old").eval()
    assert old.config.attention_bias == "none"
    assert torch.equal(old(x, pos).tokens, plain(x, pos).tokens)


def test_an_unknown_bias_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"attention_bias='alibi' is not one of \['none', 'distance'\]; use 'none'"):
        MAPEEncoder(**TINY, attention_bias="alibi")


def _plain_bias():
    """The plain construction (distance and lag repeated to (CK, CK), CLS padded on), kept in the benchmark
    that times it against ``distance_bias``: the reference here."""
    return load_script("benchmarks/attention_bias_step.py").plain_bias


@pytest.mark.parametrize("batch,n_chans,n_patches,num_heads,padded",
                         [(3, 5, 2, 10, None), (2, 19, 4, 3, True), (2, 7, 3, 4, False), (1, 1, 1, 1, None)])
def test_bias_equals_the_plain_construction_bit_for_bit(batch, n_chans, n_patches, num_heads, padded):
    torch.manual_seed(batch + n_chans)
    positions = torch.rand(batch, n_chans, 2) * 100
    token_mask = torch.rand(batch, n_chans, 1).expand(-1, -1, n_patches) > 0.3
    fast = distance_bias(positions, token_mask, num_heads, padded)
    assert fast.is_contiguous() and fast.shape == (batch, num_heads, 1 + n_chans * n_patches, 1 + n_chans * n_patches)
    assert torch.equal(fast, _plain_bias()(positions, token_mask, num_heads, padded))
