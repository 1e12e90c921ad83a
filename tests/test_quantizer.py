import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from eegfm.modules.quantizer import EMAVectorQuantizer


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def set_state(vq, codebook, cluster_size, embed_sum):
    vq.codebook.copy_(codebook)
    vq.cluster_size.copy_(cluster_size)
    vq.embed_sum.copy_(embed_sum)
    vq.initialized.fill_(True)


@pytest.mark.parametrize("chunk_size", [8192, 97, 1])
def test_lookup_equals_brute_force_euclidean_argmin(chunk_size):
    vq = EMAVectorQuantizer(num_codes=64, code_dim=8, chunk_size=chunk_size).eval()
    z = unit(1000, 8, seed=1)
    brute = ((z[:, None, :] - vq.codebook[None, :, :]) ** 2).sum(-1).argmin(1)
    assert torch.equal(vq.nearest(z), brute)
    z_q, codes, commitment = vq(z)
    assert torch.equal(codes, brute)
    assert torch.allclose(z_q, vq.codebook[brute], atol=1e-6)
    assert torch.allclose(commitment, ((z - vq.codebook[brute]) ** 2).sum(1).mean())


def test_straight_through_gradient_is_identity_and_commitment_pulls_z():
    vq = EMAVectorQuantizer(num_codes=16, code_dim=8).eval()
    z = unit(50, 8, seed=2).requires_grad_(True)
    z_q, codes, commitment = vq(z)
    (z_q * torch.arange(8.0)).sum().backward()
    assert torch.allclose(z.grad, torch.arange(8.0).expand(50, 8))
    z.grad = None
    vq(z)[2].backward()
    assert torch.allclose(z.grad, 2 * (z - vq.codebook[codes]).detach() / 50)


def test_one_ema_update_equals_the_closed_form():
    decay, eps = 0.9, 1e-5
    vq = EMAVectorQuantizer(num_codes=3, code_dim=2, decay=decay, eps=eps, dead_code_steps=0).train()
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    cluster_size = torch.tensor([2.0, 1.0, 0.5])
    embed_sum = torch.tensor([[1.5, 0.2], [0.1, 0.8], [-0.4, -0.1]])
    set_state(vq, codebook, cluster_size, embed_sum)
    z = F.normalize(torch.tensor([[1.0, 0.1], [0.9, -0.2], [0.1, 1.0], [0.2, 0.9], [0.3, 0.8]]), dim=-1)
    z_q, codes, _ = vq(z)
    assert codes.tolist() == [0, 0, 1, 1, 1]
    assert torch.allclose(z_q, codebook[codes])  # the codebook the codes were looked up in
    counts = torch.tensor([2.0, 3.0, 0.0])
    sums = torch.stack((z[:2].sum(0), z[2:].sum(0), torch.zeros(2)))
    expected_size = decay * cluster_size + (1 - decay) * counts
    expected_sum = decay * embed_sum + (1 - decay) * sums
    total = expected_size.sum()
    smoothed = (expected_size + eps) / (total + 3 * eps) * total
    expected_codebook = F.normalize(expected_sum / smoothed[:, None], dim=-1)
    assert torch.allclose(vq.cluster_size, expected_size, atol=1e-6)
    assert torch.allclose(vq.embed_sum, expected_sum, atol=1e-6)
    assert torch.allclose(vq.codebook, expected_codebook, atol=1e-6)
    assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(3))
    assert vq.usage_counts.tolist() == [2, 3, 0]
    assert vq.steps_since_used.tolist() == [0, 0, 1]


def test_kmeans_initialises_on_the_first_training_batch_only(monkeypatch):
    vq = EMAVectorQuantizer(num_codes=4, code_dim=3, kmeans_iters=5).train()
    calls = []
    kmeans = vq._kmeans
    monkeypatch.setattr(vq, "_kmeans", lambda z: calls.append(z.shape[0]) or kmeans(z))
    vq.eval()(unit(40, 3, seed=3))
    assert not vq.initialized and calls == []  # eval never initialises
    centres = torch.eye(3)[[0, 1, 2, 0]] * torch.tensor([[1.0], [1.0], [1.0], [-1.0]])  # 4 directions
    z = F.normalize(centres.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 3), dim=-1)
    vq.train()(z)
    assert vq.initialized and calls == [200]
    # each true cluster centre is matched by a code
    assert (vq.codebook @ centres.T).max(0).values.min() > 0.95
    assert vq.cluster_size.sum() == pytest.approx(200.0)
    vq(z)
    vq(z)
    assert calls == [200]


def test_kmeans_with_fewer_vectors_than_codes():
    vq = EMAVectorQuantizer(num_codes=64, code_dim=8).train()
    z = unit(10, 8, seed=4)
    z_q, codes, commitment = vq(z)
    assert vq.initialized and torch.isfinite(vq.codebook).all()
    assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(64), atol=1e-5)
    assert len(set(map(tuple, vq.codebook.tolist()))) == 64  # jittered: no duplicate codes
    assert commitment < 1e-2  # every vector has a code on top of it


def test_dead_codes_are_restarted_from_recent_outputs():
    vq = EMAVectorQuantizer(num_codes=4, code_dim=8, dead_code_steps=3, recent_size=64).train()
    base = torch.eye(8)[:3]
    codebook = torch.cat((base, -F.normalize(base.sum(0, keepdim=True), dim=-1)))  # code 3: far from data
    set_state(vq, codebook, torch.ones(4), codebook.clone())
    seen = []
    for step in range(3):
        z = F.normalize(base.repeat(5, 1) + 0.05 * torch.randn(15, 8), dim=-1)
        seen.append(z)
        _, codes, _ = vq(z)
        assert 3 not in codes.tolist()
        if step < 2:
            assert vq.steps_since_used[3] == step + 1 and vq.restarts_total == 0
            assert vq.stats()["dead"] == 0
    seen = torch.cat(seen)
    assert vq.restarts_total == 1 and vq.stats()["restarts"] == 1
    assert not torch.allclose(vq.codebook[3], codebook[3])
    assert (seen @ vq.codebook[3]).max() == pytest.approx(1.0, abs=1e-6)  # one of the recent outputs
    assert vq.cluster_size[3] == 0 and torch.all(vq.embed_sum[3] == 0)
    assert vq.steps_since_used[3] == 0 and vq.stats()["dead"] == 0
    assert vq.recent_filled == 45 and vq.recent_ptr == 45


def test_ring_buffer_wraps():
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, recent_size=5, dead_code_steps=0).train()
    z = F.normalize(torch.randn(3, 2), dim=-1)
    vq(z)
    vq(z)
    assert vq.recent_filled == 5 and vq.recent_ptr == 1
    assert torch.equal(vq.recent[0], z[2]) and torch.equal(vq.recent[3], z[0])
    vq(F.normalize(torch.randn(9, 2), dim=-1))  # more than fits: a random subset of 5
    assert vq.recent_filled == 5 and vq.recent_ptr == 1


def test_eval_mode_changes_no_buffer():
    vq = EMAVectorQuantizer(num_codes=16, code_dim=8, dead_code_steps=1)
    vq.train()(unit(100, 8, seed=5))
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    for _ in range(3):
        vq(unit(100, 8, seed=6))
    after = vq.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_stats_on_a_known_assignment():
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, dead_code_steps=2, kmeans_iters=0)
    vq.usage_counts.copy_(torch.tensor([2, 2, 4, 0]))
    vq.steps_since_used.copy_(torch.tensor([0, 1, 2, 5]))
    vq.restarts_total.fill_(7)
    stats = vq.stats()
    p = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert stats["usage"] == 0.75
    assert stats["perplexity"] == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert stats["perplexity"] == pytest.approx(2 ** 1.5)
    assert stats["dead"] == 2 and stats["restarts"] == 7
    vq.reset_stats()
    assert vq.stats()["usage"] == 0.0 and vq.stats()["perplexity"] == 0.0
    vq.usage_counts.fill_(3)
    assert vq.stats()["perplexity"] == pytest.approx(4.0) and vq.stats()["usage"] == 1.0


class _LargestTensor(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, tuple) else (out,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return out


def test_nearest_memory_is_chunked_not_n_by_k():
    n, k, d, chunk = 200_000, 1024, 32, 4096
    vq = EMAVectorQuantizer(num_codes=k, code_dim=d, chunk_size=chunk).eval()
    z = F.normalize(torch.randn(n, d), dim=-1)
    with _LargestTensor() as mode:
        codes = vq.nearest(z)
    assert codes.shape == (n,) and codes.dtype == torch.long
    assert mode.largest <= max(chunk * k, n * d)  # the (chunk, K) scores at most, never (N, K)
    assert chunk * k <= mode.largest < n * k  # the mode saw the chunk scores
    rows = torch.tensor([0, 12345, 199_999])
    assert torch.equal(codes[rows], (z[rows] @ vq.codebook.T).argmax(1))


def test_no_distributed_process_group_is_a_no_op():
    assert not torch.distributed.is_initialized()
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4).train()
    vq(unit(30, 4, seed=7))
    assert vq.initialized


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(decay=1.0), "decay must be in"),
        (dict(num_codes=0), "num_codes and code_dim"),
        (dict(dead_code_steps=-1), "dead_code_steps"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EMAVectorQuantizer(**kwargs)


def test_bad_input_shape():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 4\)"):
        vq(torch.randn(3, 5))


def test_code_usage_and_the_collapse_warning():
    from eegfm.modules.quantizer import code_usage, collapse_warning

    one_code = code_usage(torch.tensor([0, 40, 0, 0]))  # every token takes code 1
    assert one_code == {"usage": 0.25, "perplexity": 1.0, "codes_used": 1, "num_codes": 4, "tokens": 40}
    message = collapse_warning(one_code, where="8 windows")
    assert message.startswith("the codebook collapsed: on 8 windows, the 40 tokens take 1 of the 4 codes (25.0%; ")
    assert "perplexity 1.00 (under 2 counts as collapsed)" in message  # usage 25 % is fine, perplexity is not
    even = code_usage(np.full(64, 3)[::-1])  # numpy, a negative-stride view
    assert even["usage"] == 1.0 and even["perplexity"] == pytest.approx(64.0) and even["tokens"] == 192
    assert collapse_warning(even) is None
    few = code_usage([5, 5, 5] + [0] * 97)  # 3 % of the codes, perplexity 3
    assert few["perplexity"] == pytest.approx(3.0) and "3 of the 100 codes (3.0%" in collapse_warning(few)
    assert collapse_warning(code_usage([0, 0])) is None and code_usage([0, 0])["perplexity"] == 0.0  # no token
    assert collapse_warning(few, min_usage=0.01, min_perplexity=2.5) is None
