"""Seq2SeqLatentDecoder: autoregressive for real (eegfm_video.models.seq2seq).

The checks every model passes (save/load, padded memory, a sample alone vs padded, token
permutation, determinism, bf16, input errors) are in tests/test_models_common.py."""

import inspect

import pytest
import torch

from eegfm import MAPEEncoder, proportion_coordinates
from eegfm_video.models import Seq2SeqLatentDecoder

TINY = dict(encoder_dim=32, d_model=32, num_layers=2, num_heads=2, latent_channels=4,
            latent_height=3, latent_width=5, num_frames=6)


@pytest.fixture
def model():
    return Seq2SeqLatentDecoder(**TINY).eval()


@pytest.fixture
def memory():
    tokens = torch.randn(3, 10, 32)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 7:] = False  # sample 1 has 3 padded tokens
    return tokens, mask


def test_defaults_follow_the_paper():
    defaults = {k: p.default for k, p in inspect.signature(Seq2SeqLatentDecoder.__init__).parameters.items()
                if k != "self"}
    assert defaults["num_layers"] == 6  # the paper's 6 Transformer decoder layers
    assert defaults["num_frames"] == 6  # 2 s at 3 fps
    assert (defaults["latent_channels"], defaults["latent_height"], defaults["latent_width"]) == (4, 36, 64)
    small = Seq2SeqLatentDecoder(encoder_dim=32, d_model=32, num_heads=2, latent_height=2, latent_width=2)
    assert len(small.blocks) == 6


def test_shapes(model, memory):
    tokens, mask = memory
    latents = torch.randn(3, 6, 4, 3, 5)
    assert model(tokens, latents, mask).shape == (3, 6, 4, 3, 5)
    assert model.generate(tokens, mask).shape == (3, 6, 4, 3, 5)
    assert model.generate(tokens, mask, num_frames=2).shape == (3, 2, 4, 3, 5)
    assert model(tokens, latents[:, :1]).shape == (3, 1, 4, 3, 5)  # no mask: every token is real
    assert model.latent_shape == (4, 3, 5)


def test_generate_feeds_back_its_own_previous_frame(model, memory):
    tokens, mask = memory
    seen = []
    handle = model.frame_in.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        generated = model.generate(tokens, mask)
    handle.remove()
    # step i feeds exactly the frames it generated at steps < i (none at step 0), nothing else
    assert len(seen) == 6
    for step, fed in enumerate(seen):
        assert fed.shape == (3, step, 60)
        assert torch.equal(fed, generated[:, :step].flatten(2))


def test_generate_is_teacher_forcing_on_its_own_outputs(model, memory):
    tokens, mask = memory
    with torch.no_grad():
        generated = model.generate(tokens, mask)
        # step i of generate is the teacher-forced forward on [start, its frames < i]: exactly
        for step in range(6):
            assert torch.equal(model(tokens, generated[:, : step + 1], mask)[:, step], generated[:, step])
        # in one teacher-forced pass over all 6 frames, equal up to float rounding of longer sequences
        torch.testing.assert_close(model(tokens, generated, mask), generated, rtol=0, atol=1e-6)


def test_generate_prefix_does_not_change_when_more_frames_are_asked(model, memory):
    tokens, mask = memory
    with torch.no_grad():
        six = model.generate(tokens, mask)
        for frames in (1, 3, 5):
            assert torch.equal(model.generate(tokens, mask, num_frames=frames), six[:, :frames])
        assert torch.equal(model.generate(tokens, mask, num_frames=8)[:, :6], six)  # past config.num_frames


def test_training_mask_is_causal(model, memory):
    tokens, mask = memory
    latents = torch.randn(3, 6, 4, 3, 5)
    with torch.no_grad():
        base = model(tokens, latents, mask)
        for j in range(6):
            changed = latents.clone()
            changed[:, j] += 1.0
            out = model(tokens, changed, mask)
            assert torch.equal(out[:, : j + 1], base[:, : j + 1]), f"frame {j} leaked into predictions <= {j}"
            if j < 5:  # frame j is the input of prediction j + 1 onwards
                assert not torch.allclose(out[:, j + 1], base[:, j + 1])
    # the first prediction comes from the EEG and the start token alone
    assert torch.equal(model(tokens, torch.randn(3, 6, 4, 3, 5), mask)[:, 0], base[:, 0])


def test_start_token_is_learned(memory):
    tokens, mask = memory
    model = Seq2SeqLatentDecoder(**TINY)
    assert any(p is model.start_token for p in model.parameters())
    pred = model(tokens, torch.randn(3, 6, 4, 3, 5), mask)
    pred.square().mean().backward()
    assert model.start_token.grad is not None and model.start_token.grad.abs().sum() > 0
    with torch.no_grad():
        before = model.eval().generate(tokens, mask)
        model.start_token.add_(0.5)
        assert not torch.allclose(model.generate(tokens, mask)[:, 0], before[:, 0])


def test_end_to_end_from_a_mixed_montage_encoder_batch():
    encoder = MAPEEncoder(embed_dim=32, depth=1, num_heads=2, patch_size=50).eval()
    positions = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32).expand(2, -1, -1)
    channel_mask = torch.tensor([[True, True, True], [True, True, False]])
    out = encoder(torch.randn(2, 3, 200), positions, channel_mask=channel_mask)
    assert not out.token_mask.all()
    model = Seq2SeqLatentDecoder(**TINY).eval()
    with torch.no_grad():
        frames = model.generate(out.tokens, out.token_mask)
    assert frames.shape == (2, 6, 4, 3, 5) and torch.isfinite(frames).all()


def test_teacher_forcing_training_fits_a_batch(memory):
    tokens, mask = memory
    model = Seq2SeqLatentDecoder(**TINY)
    latents = torch.randn(3, 6, 4, 3, 5)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = (model(tokens, latents, mask) - latents).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_bad_arguments_name_the_argument():
    """Input errors: tests/test_models_common.py."""
    with pytest.raises(ValueError, match=("d_model must be even and divisible by num_heads, got d_model=30, "
                                          "num_heads=4")):
        Seq2SeqLatentDecoder(**{**TINY, "d_model": 30, "num_heads": 4})
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1, got 0"):
        Seq2SeqLatentDecoder(**{**TINY, "num_layers": 0})
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got -0.1"):
        Seq2SeqLatentDecoder(**TINY, dropout=-0.1)
