"""The one input stage (check -> patchify -> token mask -> patch embedding -> valid patches) every model runs."""

import pytest
import torch

from eegfm import MAPEEncoder, MaskedPretrainer, NeuralTokenizer
from eegfm.data import pad_recordings
from eegfm.modules.input_stage import EncoderInputs, prepare_inputs

TINY = dict(patch_size=25, embed_dim=32, depth=1, num_heads=2)


def padded_batch():
    g = torch.Generator().manual_seed(0)
    return pad_recordings([(torch.randn(c, t, generator=g) * 20, torch.rand(c, 2, generator=g) * 100)
                           for c, t in [(4, 110), (3, 60)]])


def test_shapes_mask_and_valid_patches_of_a_padded_batch():
    encoder = MAPEEncoder(**TINY)
    batch = padded_batch()
    inputs = encoder.prepare_inputs(batch.x, batch.positions, channel_mask=batch.channel_mask, n_times=batch.n_times)
    assert isinstance(inputs, EncoderInputs) and inputs.padded
    assert inputs.patches.shape == (2, 4, 4, 25) and inputs.embeddings.shape == (2, 4, 4, 32)
    assert inputs.valid_patches.tolist() == [4, 2]
    assert inputs.token_mask.sum(dim=(1, 2)).tolist() == [16, 6]  # 4 channels x 4 patches, 3 x 2
    unpadded = prepare_inputs(batch.x[:1], batch.positions[0], patch_size=25, embedder=encoder.patch_embed)
    assert not unpadded.padded and unpadded.positions.shape == (1, 4, 2) and bool(unpadded.token_mask.all())


def test_every_model_gets_the_same_checks_from_it():
    x, positions = torch.randn(2, 3, 100), torch.rand(3, 2)
    models = [MAPEEncoder(**TINY), NeuralTokenizer(**TINY, num_codes=8, code_dim=4, decoder_depth=1),
              MaskedPretrainer(**TINY, target="spectrum")]
    for model in models:
        with pytest.raises(ValueError, match=r"x has 20 samples per channel, fewer than one patch \(patch_size=25\)"):
            model(x[..., :20], positions)
        with pytest.raises(ValueError, match=r"positions must have shape \(2, 3, 2\) or \(3, 2\)"):
            model(x, positions[:2])
    with pytest.raises(ValueError, match=r"sfreq=100.0 Hz but this model expects sfreq=200.0 Hz; resample first"):
        models[1](x, positions, sfreq=100.0)


def test_padding_is_zeroed_before_the_embedder():
    encoder = MAPEEncoder(**TINY)
    batch = padded_batch()
    garbage = batch.x.clone()
    garbage[1, :, 60:] = float("nan")
    garbage[1, 3] = 1e6  # a padded channel
    clean = encoder.prepare_inputs(batch.x, batch.positions, channel_mask=batch.channel_mask, n_times=batch.n_times)
    dirty = encoder.prepare_inputs(garbage, batch.positions, channel_mask=batch.channel_mask, n_times=batch.n_times)
    assert torch.equal(clean.embeddings, dirty.embeddings)


def test_inputs_checked_skips_the_check_inside_the_block_only_and_nests():
    from eegfm import MAPEEncoder
    from eegfm.modules.input_stage import inputs_checked

    encoder = MAPEEncoder(embed_dim=16, depth=1, num_heads=2, patch_size=50)
    x = torch.randn(1, 3, 100) * 20
    x[0, 1, 7] = float("nan")
    positions = torch.rand(3, 2) * 80 + 10
    with inputs_checked():
        with inputs_checked():
            encoder(x, positions)
        encoder(x, positions)  # still inside the outer block
    with pytest.raises(ValueError, match=r"x\[0, 1\] .* NaN/Inf sample"):
        encoder(x, positions)
