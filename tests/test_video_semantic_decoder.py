"""SemanticDecoder: pooled EEG embedding -> CLIP text embedding (eegfm_video.models.semantic_decoder).

The checks every model passes (save/load, batch independence, determinism, bf16, input errors)
are in tests/test_models_common.py."""

import inspect

import pytest
import torch

from eegfm import EncoderConfig, MAPEEncoder, proportion_coordinates
from eegfm_video.losses import alignment_text_loss
from eegfm_video.models import SemanticDecoder

TINY = dict(encoder_dim=32, hidden_dim=24, num_blocks=2, seq_len=5, width=6)


def test_defaults_are_sd1_text_embeddings_from_the_base_encoder():
    defaults = {k: p.default for k, p in inspect.signature(SemanticDecoder.__init__).parameters.items() if k != "self"}
    assert defaults["seq_len"] == 77 and defaults["width"] == 768
    assert defaults["encoder_dim"] == EncoderConfig().embed_dim


def test_from_encoder_pooled_output():
    encoder = MAPEEncoder(embed_dim=32, depth=1, num_heads=2, patch_size=50).eval()
    positions = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
    pooled = encoder(torch.randn(2, 3, 200), positions).pooled()
    decoder = SemanticDecoder(**TINY).eval()
    out = decoder(pooled)
    assert out.shape == (2, 5, 6) and torch.isfinite(out).all()


def test_output_layout_is_tokens_then_width():
    decoder = SemanticDecoder(**TINY).eval()
    with torch.no_grad():
        decoder.out_proj.weight.zero_()
        decoder.out_proj.bias.copy_(torch.arange(30.0))
    out = decoder(torch.randn(3, 32))
    expected = torch.arange(30.0).view(5, 6)  # element [l, w] is flat index l * width + w
    for row in out:
        assert torch.equal(row, expected)


def test_residual_blocks_start_as_identity_when_zeroed():
    decoder = SemanticDecoder(**TINY).eval()
    plain = SemanticDecoder(**{**TINY, "num_blocks": 0}).eval()
    plain.load_state_dict({k: v for k, v in decoder.state_dict().items() if not k.startswith("blocks.")})
    with torch.no_grad():
        for block in decoder.blocks:
            block[1].weight.zero_()
            block[1].bias.zero_()  # GELU(0) = 0: each block adds exactly nothing
    x = torch.randn(4, 32)
    assert torch.equal(decoder(x), plain(x))
    assert len(plain.blocks) == 0


def test_learns_to_fit_targets_with_the_alignment_loss():
    decoder = SemanticDecoder(**TINY)
    x, target = torch.randn(8, 32), torch.randn(8, 5, 6)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=2e-2)
    first = None
    for _ in range(12):
        loss = alignment_text_loss(decoder(x), target, temperature=0.1)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in decoder.parameters())
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_bad_arguments_name_the_argument():
    """Input errors: tests/test_models_common.py."""
    with pytest.raises(ValueError, match="encoder_dim must be an integer >= 1, got 0"):
        SemanticDecoder(encoder_dim=0)
    with pytest.raises(ValueError, match="num_blocks must be an integer >= 0, got -1"):
        SemanticDecoder(**{**TINY, "num_blocks": -1})
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1, got 7.5"):
        SemanticDecoder(**{**TINY, "seq_len": 7.5})
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        SemanticDecoder(**TINY, dropout=1.0)
