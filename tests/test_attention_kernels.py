"""Head-size padding in MultiHeadSelfAttention (issue 17 item 1): q/k/v zero-padded to a
multiple of 8 with the original scale, so CUDA's fused masked kernels (memory-efficient,
cuDNN) take base size's 20-wide heads in bf16/fp16 instead of falling back to the math kernel.

The CPU tests force the padding path (``pad_heads=True``) and compare it with the unpadded
maths; the ``cuda`` tests (run by ``benchmarks/gpu_check.sh``, deselected elsewhere) check the
kernels themselves.
"""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from eegfm import MAPEEncoder
from eegfm.data import pad_recordings
from eegfm.models.pretrainer import MaskedPretrainer
from eegfm.modules.masking import make_mask
from eegfm.modules import AttentionPool
from eegfm.modules.transformer import MultiHeadSelfAttention, pads_head_size, sdpa_padded_heads
from eegfm.registry import _ARCHITECTURES, create_model

BASE = dict(embed_dim=200, depth=12, num_heads=10, patch_size=200)  # head size 20
SMALL_BASE = dict(embed_dim=40, depth=2, num_heads=2, patch_size=25)  # head size 20, fast


def set_pad_heads(model, value):
    """Force (True/False) or restore (None) the padding rule in every attention module of ``model``."""
    for module in model.modules():
        if isinstance(module, (MultiHeadSelfAttention, AttentionPool)):
            module.pad_heads = value
    return model


def padded_batch(caps=((6, 200), (3, 125), (5, 200)), seed=0):
    g = torch.Generator().manual_seed(seed)
    return pad_recordings([(torch.randn(c, t, generator=g) * 10, torch.rand(c, 2, generator=g) * 100)
                           for c, t in caps])


def key_mask(batch, n_tokens, valid):
    """(B, 1, 1, N) bool, True for the first ``valid[b]`` keys of sample b."""
    return (torch.arange(n_tokens)[None, :] < torch.tensor(valid)[:, None])[:, None, None, :]


def record_head_sizes(monkeypatch) -> list:
    """Patch SDPA to record q.shape[-1] of every call."""
    sizes, sdpa = [], F.scaled_dot_product_attention

    def recording(q, *args, **kwargs):
        sizes.append(q.shape[-1])
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    return sizes


def test_the_rule_pads_only_half_precision_cuda_heads_that_are_not_a_multiple_of_8():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert pads_head_size(20, cuda, torch.bfloat16) and pads_head_size(20, cuda, torch.float16)
    assert not pads_head_size(20, cuda, torch.float32)  # fp32 fused kernels take multiples of 4
    assert not pads_head_size(16, cuda, torch.bfloat16) and not pads_head_size(24, cuda, torch.float16)
    assert not pads_head_size(20, cpu, torch.bfloat16) and not pads_head_size(20, cpu, torch.float32)
    assert MultiHeadSelfAttention(40, 2).pad_heads is None  # the rule, unless overridden


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("dims", [(200, 10), (40, 2), (36, 3), (64, 4)])  # heads of 20, 20, 12, 16
def test_padded_attention_equals_the_unpadded_maths(masked, dims, monkeypatch):
    """Outputs and every gradient (input and parameters) equal to float tolerance."""
    dim, heads = dims
    unpadded = MultiHeadSelfAttention(dim, heads)
    padded = set_pad_heads(copy.deepcopy(unpadded), True)
    x = torch.randn(3, 11, dim)
    mask = key_mask(3, 11, [11, 7, 2]) if masked else None
    sizes = record_head_sizes(monkeypatch)
    outs, grads = [], []
    for module in (unpadded, padded):
        xi = x.clone().requires_grad_(True)
        out = module(xi, mask)
        (out * torch.linspace(-1, 1, dim)).sum().backward()
        outs.append(out.detach())
        grads.append([xi.grad] + [p.grad for p in module.parameters()])
    head = dim // heads
    assert sizes == [head, head + (-head % 8)]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_padded_encoder_equals_unpadded_on_a_padded_batch_with_gradients():
    batch = padded_batch()
    encoder = MAPEEncoder(**SMALL_BASE).train()
    padded = set_pad_heads(copy.deepcopy(encoder), True)
    results = []
    for model in (encoder, padded):
        out = model(**batch.encoder_inputs())
        out.pooled().square().sum().backward()
        results.append((out.tokens.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-4, atol=1e-6)


def test_cpu_numerics_are_untouched_by_the_rule():
    """pad_heads=None on CPU is bit-identical to pad_heads=False, fp32 and bf16 autocast."""
    batch = padded_batch()
    encoder = MAPEEncoder(**SMALL_BASE).eval()
    forced_off = set_pad_heads(copy.deepcopy(encoder), False)
    for autocast in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            auto, off = encoder(**batch.encoder_inputs()), forced_off(**batch.encoder_inputs())
        assert torch.equal(auto.tokens, off.tokens)


@pytest.mark.parametrize("name", sorted(_ARCHITECTURES))
def test_every_registry_architecture_hands_sdpa_a_head_size_multiple_of_8(name, monkeypatch):
    """With padding on (what a CUDA half-precision call gets), every attention module of every
    registered architecture gives SDPA heads of a multiple of 8, masked, and the same output."""
    model = create_model(name).eval()
    attentions = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
    assert attentions, name
    shapes = {(m.qkv.in_features, m.num_heads) for m in attentions}
    sizes = record_head_sizes(monkeypatch)
    for dim, heads in sorted(shapes):
        module = next(m for m in attentions if (m.qkv.in_features, m.num_heads) == (dim, heads))
        x, mask = torch.randn(2, 9, dim), key_mask(2, 9, [9, 4])
        with torch.no_grad():
            want = module(x, mask)
            module.pad_heads = True
            got = module(x, mask)
            module.pad_heads = None
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(sizes) == 2 * len(shapes)
    assert all(size % 8 == 0 for size in sizes[1::2]), (name, sizes)


def test_attention_pool_pads_its_heads_exactly(monkeypatch):
    """The pooling read-out (head size 20 here) hands SDPA heads of 24 when padding is on, and
    pools the same features, masked, as unpadded; its state dict is unchanged."""
    pool = AttentionPool(80, num_queries=3, num_heads=4).eval()
    assert pool.pad_heads is None and "pad_heads" not in str(list(pool.state_dict()))
    tokens, token_mask = torch.randn(2, 9, 80), torch.arange(9)[None, :] < torch.tensor([[9], [4]])
    sizes = record_head_sizes(monkeypatch)
    with torch.no_grad():
        want = pool(tokens, token_mask)
        got = set_pad_heads(pool, True)(tokens, token_mask)
    assert sizes == [20, 24]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_no_new_parameters_or_buffers_so_saved_models_load_unchanged(tmp_path):
    attention = MultiHeadSelfAttention(200, 10)
    assert list(attention.state_dict()) == ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]
    encoder = MAPEEncoder(**SMALL_BASE).eval()
    encoder.save_pretrained(tmp_path / "enc")
    loaded = set_pad_heads(MAPEEncoder.from_pretrained(tmp_path / "enc").eval(), True)
    assert loaded.state_dict().keys() == encoder.state_dict().keys()
    batch = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch.encoder_inputs()).tokens, encoder(**batch.encoder_inputs()).tokens,
                                   rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- on a CUDA GPU (benchmarks/gpu_check.sh)
def _no_math_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION])


@pytest.mark.cuda
def test_cuda_masked_bf16_base_heads_run_on_a_fused_kernel():
    """The math kernel disabled: base-size heads with a key padding mask in bf16 run once padded,
    and do not without the padding (the fallback this removes)."""
    attention = MultiHeadSelfAttention(200, 10).cuda().to(torch.bfloat16)
    x = torch.randn(4, 256, 200, device="cuda", dtype=torch.bfloat16)
    mask = key_mask(4, 256, [256, 100, 19, 1]).cuda()
    with _no_math_kernel():
        out = attention(x, mask)  # the rule pads: CUDA, bf16, head size 20
        attention.pad_heads = False
        with pytest.raises(RuntimeError, match="No available kernel"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SDPA's why-not warnings before its error
            attention(x, mask)
    attention.pad_heads = None
    reference = set_pad_heads(copy.deepcopy(attention).float(), False)(x.float(), mask)
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)


@pytest.mark.cuda
def test_cuda_base_encoder_step_under_bf16_autocast_needs_no_math_kernel():
    batch = padded_batch(caps=((64, 800), (32, 800), (19, 600))).to("cuda")
    encoder = MAPEEncoder(**BASE).cuda().train()
    with _no_math_kernel(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = encoder(**batch.encoder_inputs(), check_finite=False)
        loss = out.pooled().float().square().mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in encoder.parameters()
                                        if p.grad is not None)


@pytest.mark.cuda
def test_cuda_masks_and_pretraining_step_make_no_host_sync():
    """Masks drawn on the GPU, and the whole pre-training step (codes target), without a sync: every
    synchronizing call is recorded (sync debug mode "warn") and named by file and line."""
    import warnings

    batch = padded_batch(caps=((8, 200), (5, 125), (6, 200))).to("cuda")
    n_patches = batch.x.shape[-1] // 25
    batch.targets = torch.randint(0, 8, (3, batch.x.shape[1] * n_patches), device="cuda")
    pre = MaskedPretrainer(embed_dim=40, depth=2, num_heads=2, patch_size=25, num_codes=8, single_pass=True).cuda()
    token_mask = torch.ones(3, 8, n_patches, dtype=torch.bool, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            masks = [make_mask(s, token_mask, 0.5, generator) for s in ("random", "channel", "temporal")]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = pre.training_step(batch)
            (out["loss_sum"] / out["count"]).backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sorted({f"{w.filename}:{w.lineno}" for w in caught
                    if "called a synchronizing CUDA operation" in str(w.message)})
    assert not syncs, f"host syncs at {syncs}"
    assert all(m.device.type == "cuda" for m in masks) and torch.isfinite(out["loss_sum"])


def test_gpu_tests_are_deselected_not_skipped_unless_selected():
    """Without ``-m cuda`` the cuda tests are deselected at collection (no skip to report);
    ``-m cuda`` (benchmarks/gpu_check.sh) collects exactly them."""
    import subprocess
    import sys
    from pathlib import Path

    def collect(*options):
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *options, __file__]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120).stdout

    default, selected = collect(), collect("-m", "cuda")
    cuda_tests = [name for name in globals() if name.startswith("test_cuda_")]
    summary = default.strip().splitlines()[-1]
    assert len(cuda_tests) == 3 and f"({len(cuda_tests)} deselected)" in summary and "skipped" not in summary
    assert not any(f"::{name}" in default for name in cuda_tests)
    assert all(f"::{name}\n" in selected for name in cuda_tests) and "::test_padded" not in selected


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_cpu_half_attention_runs_in_float32(mask_kind, monkeypatch):
    """Under CPU bf16 autocast, a bf16 q/k/v is attended in float32 (PyTorch's CPU attention is slower
    in bf16) and the output comes back in bf16; CPU_HALF_ATTENTION_IN_FP32=False gives bf16 attention."""
    import eegfm.modules.transformer as transformer

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 20).to(torch.bfloat16) for _ in range(3))
    keep = key_mask(2, 9, [9, 5])  # (2, 1, 1, 9) bool
    mask = {"none": None, "bool": keep,
            "float": torch.zeros(2, 3, 9, 9).masked_fill(~keep, float("-inf")).to(torch.bfloat16)}[mask_kind]
    fp32_mask = mask.float() if mask is not None and mask.is_floating_point() else mask
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=fp32_mask).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = sdpa_padded_heads(q, k, v, mask)
        monkeypatch.setattr(transformer, "CPU_HALF_ATTENTION_IN_FP32", False)
        half = sdpa_padded_heads(q, k, v, mask)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)
    assert half.dtype == torch.bfloat16 and not torch.equal(half, want)  # the bf16 kernel rounds differently


def test_cpu_bf16_autocast_step_stays_close_to_float32():
    """An encoder training step under CPU bf16 autocast (projections in bf16, attention in float32): the
    pooled output and loss stay within bf16 rounding of float32, and every gradient is finite."""
    batch = padded_batch()
    torch.manual_seed(0)
    encoder = MAPEEncoder(**SMALL_BASE)
    outputs = {}
    for autocast in (False, True):
        encoder.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            pooled = encoder(**batch.encoder_inputs()).pooled().float()
        pooled.square().mean().backward()
        outputs[autocast] = pooled.detach()
        assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)
    torch.testing.assert_close(outputs[True], outputs[False], rtol=0.05, atol=0.05)
