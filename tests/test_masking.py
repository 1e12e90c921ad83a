import pytest
import torch

from eegfm.modules.masking import channel_mask, make_mask, random_mask, temporal_mask


def _token_mask():
    """Two recordings: 6 channels x 8 patches, and 4 channels x 5 patches padded into it."""
    m = torch.zeros(2, 6, 8, dtype=torch.bool)
    m[0] = True
    m[1, :4, :5] = True
    return m


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_random_mask_has_the_ratio_and_never_masks_padding(ratio):
    valid = _token_mask()
    mask = random_mask(valid, ratio, torch.Generator().manual_seed(0))
    assert not (mask & ~valid).any()
    assert mask.flatten(1).sum(1).tolist() == [round(48 * ratio), round(20 * ratio)]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_channel_mask_masks_whole_channels(ratio):
    valid = _token_mask()
    mask = channel_mask(valid, ratio, torch.Generator().manual_seed(1))
    assert not (mask & ~valid).any()
    chosen = mask.any(2)  # (B, C)
    assert chosen.sum(1).tolist() == [round(6 * ratio), round(4 * ratio)]
    assert torch.equal(mask, chosen[:, :, None] & valid)  # every valid patch of a chosen channel


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_temporal_mask_masks_whole_time_steps(ratio):
    valid = _token_mask()
    mask = temporal_mask(valid, ratio, torch.Generator().manual_seed(2))
    assert not (mask & ~valid).any()
    chosen = mask.any(1)  # (B, K)
    assert chosen.sum(1).tolist() == [round(8 * ratio), round(5 * ratio)]
    assert torch.equal(mask, chosen[:, None, :] & valid)


def test_at_least_one_masked_never_all_and_reproducible():
    valid = torch.zeros(1, 2, 3, dtype=torch.bool)
    valid[0, :, :1] = True  # two valid tokens
    assert random_mask(valid, 0.01).sum() == 1 and random_mask(valid, 0.99).sum() == 1
    a = make_mask("random", _token_mask(), 0.5, torch.Generator().manual_seed(5))
    b = make_mask("random", _token_mask(), 0.5, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_errors():
    with pytest.raises(ValueError, match=r"mask ratio must be in \(0, 1\), got ratio=1.0"):
        random_mask(_token_mask(), 1.0)
    with pytest.raises(ValueError, match="mask strategy 'block' is not one of"):
        make_mask("block", _token_mask(), 0.5)


def test_scores_are_drawn_on_the_token_mask_device(monkeypatch):
    """No draw on the host then a copy: torch.rand gets the token mask's device, or the
    generator's when one is given (whose draws are then copied over)."""
    devices, rand = [], torch.rand

    def recording(*args, device=None, **kwargs):
        devices.append(torch.device(device))
        return rand(*args, device=device, **kwargs)

    monkeypatch.setattr(torch, "rand", recording)
    meta = torch.ones(2, 3, 4, dtype=torch.bool, device="meta")
    assert make_mask("channel", meta, 0.5).device.type == "meta"
    make_mask("random", _token_mask(), 0.5, torch.Generator().manual_seed(0))
    assert devices == [torch.device("meta"), torch.device("cpu")]


@pytest.mark.parametrize("strategy", ["random", "channel", "temporal"])
def test_cpu_masks_under_a_seed_are_the_cpu_generator_draws(strategy):
    """A seed gives the masks of the CPU generator's uniform scores, ranked (reproducible)."""
    valid = _token_mask()
    rows = {"random": valid.flatten(1), "channel": valid.any(2), "temporal": valid.any(1)}[strategy]
    scores = torch.rand(rows.shape, generator=torch.Generator().manual_seed(3)).masked_fill(~rows, 2.0)
    n = rows.sum(1)
    keep = scores.argsort(1).argsort(1) < torch.round(n * 0.5).long()[:, None]
    mask = make_mask(strategy, valid, 0.5, torch.Generator().manual_seed(3))
    chosen = {"random": mask.flatten(1), "channel": mask.any(2), "temporal": mask.any(1)}[strategy]
    assert torch.equal(chosen, keep & rows)
