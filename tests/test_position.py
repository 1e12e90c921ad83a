import math

import pytest
import torch

from eegfm.modules.position import (
    FlatSinusoidPositionEmbedding,
    MontageAgnosticPositionEmbedding,
    build_position_embedding,
    sinusoid,
)


def test_sinusoid_matches_hand_computation():
    out = sinusoid(torch.tensor([3.0]), 4)[0]
    # dim 4: frequencies 1/10000^(0/4)=1 and 1/10000^(2/4)=1/100
    expected = [math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)]
    assert out.tolist() == pytest.approx(expected, abs=1e-6)


def test_mape_is_concat_of_x_and_y_sinusoids_plus_patch_index():
    mape = MontageAgnosticPositionEmbedding(8)
    positions = torch.tensor([[[50.0, 10.0], [90.0, 50.0]]])  # Fpz-like, T8-like
    out = mape(positions, n_patches=3)
    assert out.shape == (1, 2, 3, 8)

    def pe(p, d):  # the paper's formula, written out
        return [f(p / 10000 ** (2 * i / d)) for i in range(d // 2) for f in (math.sin, math.cos)]

    for c, (xp, yp) in enumerate([(50, 10), (90, 50)]):
        for k in range(3):
            expected = [s + t for s, t in zip(pe(xp, 4) + pe(yp, 4), pe(k, 8))]
            assert out[0, c, k].tolist() == pytest.approx(expected, abs=1e-5)


def test_mape_has_nothing_learned_and_takes_any_length():
    mape = MontageAgnosticPositionEmbedding(16)
    assert list(mape.parameters()) == []
    pos = torch.rand(2, 5, 2) * 100
    long = mape(pos, 1000)
    assert torch.equal(long[:, :, :7], mape(pos, 7))


def test_flat_baseline_uses_each_samples_own_patch_count():
    flat = FlatSinusoidPositionEmbedding(6)
    out = flat(torch.zeros(2, 3, 2), n_patches=4, n_patches_per_sample=torch.tensor([4, 2]))
    assert torch.allclose(out[1, 2, 1], sinusoid(torch.tensor(2 * 2 + 1.0), 6))
    assert torch.allclose(out[0, 2, 1], sinusoid(torch.tensor(2 * 4 + 1.0), 6))
    # ignores where channels are
    assert torch.equal(flat(torch.rand(1, 3, 2), 4), flat(torch.rand(1, 3, 2), 4))


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="divisible by 4.*embed_dim=6"):
        MontageAgnosticPositionEmbedding(6)
    with pytest.raises(ValueError, match="position_embedding='learned'.*'mape'"):
        build_position_embedding("learned", 8)
    with pytest.raises(ValueError, match="even dim"):
        sinusoid(torch.zeros(1), 3)
