import pytest
import torch

from eegfm import MAPEClassifier, proportion_coordinates
from eegfm.modules import AttentionPool


def test_output_shape_and_token_order_does_not_matter():
    torch.manual_seed(0)
    pool = AttentionPool(16, num_queries=3, num_heads=4)
    tokens = torch.randn(2, 10, 16)
    mask = torch.ones(2, 10, dtype=torch.bool)
    out = pool(tokens, mask)
    assert out.shape == (2, 3 * 16) and pool.num_features == 48
    perm = torch.randperm(10)
    torch.testing.assert_close(pool(tokens[:, perm], mask[:, perm]), out)


def test_padding_tokens_are_ignored():
    torch.manual_seed(0)
    pool = AttentionPool(8, num_queries=2, num_heads=2)
    tokens = torch.randn(1, 6, 8)
    padded = torch.cat((tokens, 1e3 * torch.randn(1, 4, 8)), dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 4])
    torch.testing.assert_close(pool(padded, mask), pool(tokens, torch.ones(1, 6, dtype=torch.bool)))


def test_one_query_reads_a_weighted_mean_of_the_values():
    pool = AttentionPool(4, num_queries=1, num_heads=1)
    with torch.no_grad():  # zero query: uniform attention, so the read-out is proj(mean of the values)
        pool.queries.zero_()
    tokens = torch.randn(1, 5, 4)
    values = pool.kv(pool.norm(tokens))[..., 4:]
    expected = pool.proj(values.mean(1))
    torch.testing.assert_close(pool(tokens, torch.ones(1, 5, dtype=torch.bool)), expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(embed_dim=8, num_queries=0), "num_queries must be >= 1, got 0"),
    (dict(embed_dim=10, num_heads=4), "num_heads=4 must divide embed_dim=10"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionPool(**kwargs)


def test_classifier_with_attention_pooling_round_trips(tmp_path):
    torch.manual_seed(0)
    model = MAPEClassifier(2, encoder=dict(embed_dim=32, depth=1, num_heads=2, patch_size=50), pooling="attention",
                           class_names=["left", "right"]).eval()
    pos = torch.tensor(proportion_coordinates(["C3", "Cz", "C4"]), dtype=torch.float32)
    x = torch.randn(3, 3, 400)
    assert model.num_features == 4 * 32 and model.forward_features(x, pos).shape == (3, 128)
    model.save_pretrained(tmp_path / "clf")
    loaded = MAPEClassifier.from_pretrained(tmp_path / "clf")
    assert loaded.pooling == "attention"
    torch.testing.assert_close(loaded(x, pos), model(x, pos))
    # the pool is part of the head for layer-wise lr decay
    assert model.layer_id("pool.queries") == model.num_layers - 1
