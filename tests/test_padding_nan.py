"""NaN in the padding of a batch reaches neither outputs nor gradients (the padding may hold anything)."""

import pytest
import torch

from eegfm import MAPEEncoder
from eegfm.data import pad_recordings
from eegfm.models.pretrainer import MaskedPretrainer
from eegfm.models.tokenizer import NeuralTokenizer

TINY = dict(patch_size=25, embed_dim=16, depth=1, num_heads=2)


def padded_batch(fill):
    g = torch.Generator().manual_seed(0)
    recs = [(torch.randn(6, 200, generator=g) * 10, torch.rand(6, 2, generator=g) * 100),
            (torch.randn(4, 125, generator=g) * 10, torch.rand(4, 2, generator=g) * 100)]
    batch = pad_recordings(recs)
    batch.x[1, 4:] = fill  # padded channels
    batch.x[1, :, 125:] = fill  # padded time
    return batch


def grads_of(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def check(module, loss_of):
    results = []
    for fill in (0.0, float("nan")):
        module.zero_grad()
        torch.manual_seed(0)
        loss = loss_of(module, padded_batch(fill))
        loss.backward()
        results.append((loss.detach(), grads_of(module)))
    (loss0, g0), (loss1, g1) = results
    assert torch.isfinite(loss1) and torch.equal(loss0, loss1)
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.isfinite(g1[name]).all(), f"NaN padding made the gradient of {name} non-finite"
        torch.testing.assert_close(g1[name], g0[name], msg=name)


def test_encoder():
    torch.manual_seed(0)
    check(MAPEEncoder(**TINY), lambda m, b: m(**b.encoder_inputs()).pooled().square().sum())


@pytest.mark.parametrize("target", ["spectrum", "codes"])
def test_pretrainer(target):
    torch.manual_seed(0)
    kw = dict(target="spectrum") if target == "spectrum" else dict(num_codes=8)
    pre = MaskedPretrainer(**TINY, **kw)
    if target == "codes":
        pre.attach_tokenizer(NeuralTokenizer(**TINY, num_codes=8, code_dim=4).eval())
    check(pre, lambda m, b: m(**b.encoder_inputs(), generator=torch.Generator().manual_seed(0)).loss)


def test_tokenizer():
    torch.manual_seed(0)
    tok = NeuralTokenizer(**TINY, num_codes=8, code_dim=4).eval()  # eval: no codebook update between the runs
    check(tok, lambda m, b: m(**b.encoder_inputs()).loss)
