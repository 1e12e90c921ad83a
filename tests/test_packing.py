"""Padding tokens dropped from the per-token work on the CPU (eegfm.modules.packing)."""

import pytest
import torch

import eegfm.modules.packing as packing_module
from eegfm import MAPEEncoder
from eegfm.models.pretrainer import MaskedPretrainer
from eegfm.modules.packing import TokenPacking


@pytest.fixture
def packing_off(monkeypatch):
    def turn_off():
        monkeypatch.setattr(packing_module, "PACK_ON_CPU", False)
    return turn_off


def padded_batch(seed=0):
    """4 recordings of 8 channels x 400 samples: 8, 5, 3 and 8 real channels, 400, 400, 300, 200 samples."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 8, 400, generator=gen) * 20
    channel_mask = torch.ones(4, 8, dtype=torch.bool)
    channel_mask[1, 5:] = False
    channel_mask[2, 3:] = False
    x[~channel_mask] = float("nan")  # padding may hold anything
    positions = torch.rand(4, 8, 2, generator=gen) * 80 + 10
    return x, positions, channel_mask, torch.tensor([400, 400, 300, 200])


def encode_and_backward(encoder, batch):
    x, positions, channel_mask, n_times = batch
    encoder.zero_grad()
    out = encoder(x, positions, channel_mask=channel_mask, n_times=n_times)
    (out.tokens[out.token_mask].square().sum() + out.cls.sum()).backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
    return out, grads


def test_pack_unpack_round_trip_and_zeros_at_the_padding():
    keep = torch.tensor([[True, False, True], [True, True, False]])
    packing = TokenPacking.of(keep)
    assert packing.index.tolist() == [0, 2, 3, 4] and (packing.batch, packing.n_tokens) == (2, 3)
    x = torch.arange(12.0).view(2, 3, 2)
    packed = packing.pack(x)
    assert packed.tolist() == [[0, 1], [4, 5], [6, 7], [8, 9]]
    unpacked = packing.unpack(packed)
    assert torch.equal(unpacked[keep], x[keep]) and not unpacked[~keep].any()


def test_no_packing_without_padding_off_the_cpu_or_when_turned_off(packing_off):
    assert TokenPacking.of(torch.ones(2, 5, dtype=torch.bool)) is None
    assert TokenPacking.of(torch.ones(2, 5, dtype=torch.bool, device="meta")) is None
    keep = torch.tensor([[True, False]])
    assert TokenPacking.of(keep) is not None
    packing_off()
    assert TokenPacking.of(keep) is None


def test_packed_encoder_gives_the_same_real_tokens_cls_and_gradients(packing_off):
    torch.manual_seed(0)
    encoder = MAPEEncoder(embed_dim=32, depth=2, num_heads=4, patch_size=50)
    batch = padded_batch()
    packed, packed_grads = encode_and_backward(encoder, batch)
    packing_off()
    plain, plain_grads = encode_and_backward(encoder, batch)
    mask = plain.token_mask
    torch.testing.assert_close(packed.tokens[mask], plain.tokens[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed.cls, plain.cls, rtol=1e-5, atol=1e-5)
    assert torch.equal(packed.token_mask, mask) and torch.isfinite(packed.tokens).all()
    assert packed_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(packed_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_blocks_and_embedder_see_only_the_real_tokens():
    encoder = MAPEEncoder(embed_dim=32, depth=2, num_heads=4, patch_size=50)
    x, positions, channel_mask, n_times = padded_batch()
    rows = {"qkv": [], "mlp": [], "convs": []}
    encoder.blocks[0].attn.qkv.register_forward_hook(lambda m, args, out: rows["qkv"].append(args[0].shape[0]))
    encoder.blocks[1].mlp.register_forward_hook(lambda m, args, out: rows["mlp"].append(args[0].shape[0]))
    encoder.patch_embed.convs.register_forward_hook(lambda m, args, out: rows["convs"].append(args[0].shape[0]))
    out = encoder(x, positions, channel_mask=channel_mask, n_times=n_times)
    real = int(out.token_mask.sum())  # 8*8 + 5*8 + 3*6 + 8*4 = 154 of 4 * 64
    assert real == 154
    assert rows["qkv"] == rows["mlp"] == [real + 4]  # + one CLS token per recording
    assert rows["convs"] == [real, 1]  # the real patches, then one zero patch for the padding


def test_unpadded_batches_are_not_packed():
    encoder = MAPEEncoder(embed_dim=32, depth=1, num_heads=4, patch_size=50)
    rows = []
    encoder.blocks[0].attn.qkv.register_forward_hook(lambda m, args, out: rows.append(tuple(args[0].shape)))
    encoder(torch.randn(2, 3, 200) * 20, torch.rand(3, 2) * 80 + 10)
    assert rows == [(2, 1 + 3 * 4, 32)]


def test_packed_pretraining_step_gives_the_same_loss(packing_off):
    torch.manual_seed(0)
    pre = MaskedPretrainer(embed_dim=32, depth=2, num_heads=4, patch_size=50, num_codes=8, target="spectrum",
                           single_pass=True)
    x, positions, channel_mask, n_times = padded_batch(seed=1)

    def step():
        out = pre(x, positions, channel_mask=channel_mask, n_times=n_times, generator=torch.Generator().manual_seed(3))
        return out.loss_sum / out.count

    packed = step()
    packing_off()
    torch.testing.assert_close(packed, step(), rtol=1e-5, atol=1e-6)


def test_padded_tokens_come_out_as_zeros_packed_or_not(packing_off):
    encoder = MAPEEncoder(embed_dim=32, depth=1, num_heads=4, patch_size=50)
    batch = padded_batch()
    packed, _ = encode_and_backward(encoder, batch)
    packing_off()
    plain, _ = encode_and_backward(encoder, batch)
    for out in (packed, plain):
        assert not out.tokens[~out.token_mask].any()
    torch.testing.assert_close(packed.tokens, plain.tokens, rtol=1e-5, atol=1e-5)


def test_packed_tokenizer_gives_the_same_codes_and_loss(packing_off):
    from eegfm.models.tokenizer import NeuralTokenizer

    torch.manual_seed(0)
    tokenizer = NeuralTokenizer(embed_dim=32, depth=1, num_heads=4, patch_size=50, num_codes=16, decoder_depth=2).eval()
    x, positions, channel_mask, n_times = padded_batch(seed=2)
    rows = []
    tokenizer.decoder[0].mlp.register_forward_hook(lambda m, args, out: rows.append(tuple(args[0].shape[:-1])))
    packed = tokenizer(x, positions, channel_mask=channel_mask, n_times=n_times)
    packing_off()
    plain = tokenizer(x, positions, channel_mask=channel_mask, n_times=n_times)
    assert rows == [(154,), (4, 64)]  # the decoder's real tokens, then every token
    assert torch.equal(packed.codes, plain.codes)
    torch.testing.assert_close(packed.loss, plain.loss, rtol=1e-5, atol=1e-6)


def test_rows_of_finds_each_samples_tokens_in_the_packed_matrix():
    keep = torch.tensor([[True, False, True], [True, True, False], [True, False, False]])
    packing = TokenPacking.of(keep)
    assert packing.rows_of(torch.zeros(3, 1, dtype=torch.long)).tolist() == [[0], [2], [4]]
    index = torch.tensor([[2, 0], [1, 0], [0, 0]])
    assert packing.rows_of(index).tolist() == [[1, 0], [3, 2], [4, 4]]
    x = torch.randn(3, 3, 2)
    torch.testing.assert_close(packing.pack(x)[packing.rows_of(index)], x.gather(1, index[..., None].expand(-1, -1, 2)),
                               rtol=0, atol=0)


def test_packed_forward_cls_equals_unpacked(packing_off):
    torch.manual_seed(0)
    encoder = MAPEEncoder(embed_dim=32, depth=2, num_heads=4, patch_size=50).eval()
    x, positions, channel_mask, n_times = padded_batch()
    packed = encoder.forward_cls(x, positions, channel_mask=channel_mask, n_times=n_times)
    packing_off()
    plain = encoder.forward_cls(x, positions, channel_mask=channel_mask, n_times=n_times)
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, encoder(x, positions, channel_mask=channel_mask, n_times=n_times).cls,
                               rtol=1e-5, atol=1e-5)
