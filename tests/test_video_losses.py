"""SoftCLIP + MSE alignment losses (eegfm_video.losses): hand computations, the formula, errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from eegfm_video.losses import (
    DEFAULT_TEMPERATURE,
    AlignmentLoss,
    alignment_loss,
    alignment_text_loss,
    softclip_loss,
)


def _paper_formula(pred, target, tau, pooling, direction):
    """The paper's double sum written element by element (divided by N, as MindEye averages)."""
    if pooling == "mean":
        pred, target = pred.mean(1), target.mean(1)
    p = F.normalize(pred.flatten(1).double(), dim=-1)
    t = F.normalize(target.flatten(1).double(), dim=-1)
    n = len(p)

    def one(a, b):  # rows of a scored against every row of b, soft labels from the targets
        total = 0.0
        for i in range(n):
            label_den = sum(math.exp(float(t[i] @ t[m]) / tau) for m in range(n))
            pred_den = sum(math.exp(float(a[i] @ b[m]) / tau) for m in range(n))
            for j in range(n):
                label = math.exp(float(t[i] @ t[j]) / tau) / label_den
                total -= label * math.log(math.exp(float(a[i] @ b[j]) / tau) / pred_den)
        return total / n

    forward = one(p, t)
    return forward if direction == "one" else (forward + one(t, p)) / 2


def test_softclip_hand_computed_two_samples():
    # t1 = e1, t2 = e2, both predictions = e1, tau = 0.5: every logit row is [2, 0] one way.
    target = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    pred = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]]])  # the scale of a prediction does not matter
    big = math.exp(2.0)
    log_z = math.log(big + 1.0)  # log(e^2 + e^0)
    s_hi, s_lo = big / (big + 1.0), 1.0 / (big + 1.0)
    row1 = -(s_hi * (2.0 - log_z) + s_lo * (0.0 - log_z))
    row2 = -(s_lo * (2.0 - log_z) + s_hi * (0.0 - log_z))
    one = (row1 + row2) / 2
    assert softclip_loss(pred, target, 0.5).item() == pytest.approx(one, rel=1e-6)
    # transposed logits are [[2, 2], [0, 0]]: log_softmax = -log 2 everywhere -> loss log 2.
    both = softclip_loss(pred, target, 0.5, direction="both").item()
    assert both == pytest.approx((one + math.log(2.0)) / 2, rel=1e-6)


@pytest.mark.parametrize("pooling", ["flatten", "mean"])
@pytest.mark.parametrize("direction", ["one", "both"])
def test_softclip_matches_the_formula(pooling, direction):
    pred, target = torch.randn(5, 7, 6), torch.randn(5, 7, 6)
    got = softclip_loss(pred, target, 0.3, pooling=pooling, direction=direction)
    assert got.dtype == torch.float32 and got.shape == ()
    assert got.item() == pytest.approx(_paper_formula(pred, target, 0.3, pooling, direction), rel=1e-5)


def test_softclip_defaults_are_the_papers():
    pred, target = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    expected = softclip_loss(pred, target, DEFAULT_TEMPERATURE, pooling="flatten", direction="one")
    assert torch.equal(softclip_loss(pred, target), expected)
    assert DEFAULT_TEMPERATURE == 0.1


def test_softclip_properties():
    target = torch.randn(6, 4, 8)
    tau = 0.2
    # a perfect prediction leaves the entropy of the soft labels (cross-entropy of S with itself)
    t = F.normalize(target.flatten(1), dim=-1)
    labels = torch.softmax(t @ t.T / tau, dim=-1)
    entropy = -(labels * labels.log()).sum(-1).mean()
    torch.testing.assert_close(softclip_loss(target, target, tau), entropy)
    # the l2 normalisation makes it blind to each prediction's scale
    pred = torch.randn(6, 4, 8)
    scaled = pred * torch.tensor([0.5, 2.0, 3.0, 1.0, 7.0, 0.1])[:, None, None]
    torch.testing.assert_close(softclip_loss(scaled, target, tau), softclip_loss(pred, target, tau))
    # mean pooling = flattening the token-averaged embeddings
    torch.testing.assert_close(
        softclip_loss(pred, target, tau, pooling="mean"),
        softclip_loss(pred.mean(1, keepdim=True), target.mean(1, keepdim=True), tau),
    )
    # a right prediction scores better than a shuffled one
    assert softclip_loss(target + 0.01 * pred, target, tau) < softclip_loss(target.roll(1, 0), target, tau)
    # a batch of one has nothing to contrast with
    assert softclip_loss(pred[:1], target[:1], tau).item() == 0.0


def test_softclip_half_input_and_learned_temperature():
    pred = torch.randn(4, 3, 5, dtype=torch.float16)
    target = torch.randn(4, 3, 5, dtype=torch.float16)
    loss = softclip_loss(pred, target, 0.1)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, softclip_loss(pred.float(), target.float(), 0.1))
    log_tau = torch.tensor(math.log(0.1), requires_grad=True)
    softclip_loss(pred.float(), target.float(), log_tau.exp()).backward()
    assert log_tau.grad is not None and log_tau.grad != 0


def test_alignment_text_loss_is_softclip_plus_weighted_mse():
    pred, target = torch.randn(3, 77, 16), torch.randn(3, 77, 16)
    soft = softclip_loss(pred, target, 0.05, pooling="mean", direction="both")
    mse = ((pred - target) ** 2).mean()
    got = alignment_text_loss(pred, target, temperature=0.05, pooling="mean", direction="both")
    torch.testing.assert_close(got, soft + mse)
    got = alignment_text_loss(pred, target, temperature=0.05, pooling="mean", direction="both", mse_weight=0.25)
    torch.testing.assert_close(got, soft + 0.25 * mse)
    torch.testing.assert_close(alignment_text_loss(pred, target), softclip_loss(pred, target) + mse)


def test_alignment_loss_terms():
    text_pred, text_target = torch.randn(3, 5, 4, requires_grad=True), torch.randn(3, 5, 4)
    lat_pred, lat_target = torch.randn(3, 2, 4, 3, 3, requires_grad=True), torch.randn(3, 2, 4, 3, 3)
    out = alignment_loss(text_pred, text_target, lat_pred, lat_target, mse_weight=2.0, low_weight=0.5)
    assert isinstance(out, AlignmentLoss)
    torch.testing.assert_close(out.softclip, softclip_loss(text_pred, text_target))
    torch.testing.assert_close(out.text_mse, ((text_pred - text_target) ** 2).mean())
    torch.testing.assert_close(out.low, ((lat_pred - lat_target) ** 2).mean())
    torch.testing.assert_close(out.text, out.softclip + 2.0 * out.text_mse)
    torch.testing.assert_close(out.total, out.text + 0.5 * out.low)
    out.total.backward()
    assert text_pred.grad.abs().sum() > 0 and lat_pred.grad.abs().sum() > 0


def test_errors_name_the_argument():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=(r"pooling must be one of \('flatten', 'mean'\), got 'flat'\. Did you mean "
                                          r"'flatten'\?")):
        softclip_loss(a, b, 0.1, pooling="flat")
    with pytest.raises(ValueError, match=r"direction must be one of \('one', 'both'\), got 'two'"):
        softclip_loss(a, b, 0.1, direction="two")
    for bad in (0.0, -1.0, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="temperature must be a positive finite number, got"):
            softclip_loss(a, b, bad)
    with pytest.raises(ValueError, match=r"temperature must be .* one-element tensor, got a tensor of shape \(2,\)"):
        softclip_loss(a, b, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        softclip_loss(a, b, torch.tensor(-0.1))
    with pytest.raises(ValueError, match=(r"pred and target must have the same shape, got pred \(2, 3, 4\) and "
                                          r"target \(2, 3, 5\)")):
        softclip_loss(a, torch.randn(2, 3, 5), 0.1)
    with pytest.raises(ValueError, match=r"pred and target must have shape \(batch, \.\.\.\), got \(4,\)"):
        softclip_loss(torch.randn(4), torch.randn(4), 0.1)
    with pytest.raises(ValueError, match=(r"pooling='mean' averages tokens of \(batch, tokens, width\) input, got "
                                          r"\(2, 12\)")):
        softclip_loss(a.flatten(1), b.flatten(1), 0.1, pooling="mean")
    with pytest.raises(ValueError, match="mse_weight must be a non-negative finite number, got -1"):
        alignment_text_loss(a, b, mse_weight=-1)
    lat = torch.randn(2, 2, 4, 3, 3)
    with pytest.raises(ValueError, match="low_weight must be a non-negative finite number, got nan"):
        alignment_loss(a, b, lat, lat, low_weight=float("nan"))
    with pytest.raises(ValueError, match=(r"latent_pred and latent_target must have the same shape, got latent_pred "
                                          r"\(2, 2, 4, 3, 3\) and latent_target \(2, 3, 4, 3, 3\)")):
        alignment_loss(a, b, lat, torch.randn(2, 3, 4, 3, 3))
