"""The pre-training hot path without host syncs: no tensor read to choose a code path, the
masked-token loss by weights instead of boolean indexing (old maths kept as a reference here),
logged scalars read once per log interval, and the step ``torch.compile``-able whole
(``fullgraph=True``) and ``torch.export``-able with a dynamic batch size.

Compile tests use the ``aot_eager`` backend (dynamo + AOTAutograd, what a graph break or a
data-dependent shape would fail, in about a second); one test per compiled path goes through
inductor (the real compiler, marked slow).
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eegfm import MAPEEncoder
from eegfm.data import EEGBatch, pad_recordings
from eegfm.models.pretrainer import MaskedPretrainer, _most_masked
from eegfm.models.tokenizer import amplitude_target
from eegfm.modules.input_stage import check_inputs
from eegfm.modules.masking import MASK_STRATEGIES
from eegfm.training import TrainConfig, Trainer

# inductor's first import loads torch.utils.mkldnn, whose torch.jit.script_method warns (torch's own)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

TINY = dict(patch_size=25, embed_dim=32, depth=2, num_heads=2)
CAPS = [(6, 200), (4, 125), (5, 200)]  # (channels, samples): mixed caps and lengths, 8 patches at most


def padded_batch(seed=0, caps=CAPS) -> EEGBatch:
    g = torch.Generator().manual_seed(seed)
    recs = [(torch.randn(c, t, generator=g) * (5 + 10 * torch.rand(c, 1, generator=g)),
             torch.rand(c, 2, generator=g) * 100) for c, t in caps]
    return pad_recordings(recs)


def pretrainer(target="codes", **kw):
    torch.manual_seed(0)
    return MaskedPretrainer(**TINY, num_codes=8, target=target, **kw)


def codes_of(batch, seed=1):
    """Codes for every token, -1 at padding (as the code cache stores them)."""
    g = torch.Generator().manual_seed(seed)
    n_patches = batch.x.shape[-1] // TINY["patch_size"]
    codes = torch.randint(0, 8, (len(batch.x), batch.x.shape[1], n_patches), generator=g)
    valid = batch.channel_mask[:, :, None] & (torch.arange(n_patches) < batch.n_times[:, None, None] // 25)
    return torch.where(valid, codes, -1).flatten(1)


# ---------------------------------------------------------------- the old maths, as a reference
def boolean_indexing_reference(pre, x, positions, channel_mask, n_times, targets, generator):
    """MaskedPretrainer.forward as written before the weighted loss: boolean indexing of the
    masked tokens (a host sync and a data-dependent shape). Returns (loss_sum, count, accuracy,
    n_masked, accuracy_weight, baseline, codes counted)."""
    enc = pre.encoder
    positions, channel_mask, n_times = check_inputs(x, positions, channel_mask, n_times, patch_size=enc.patch_size)
    patches = enc.patchify(x)
    token_mask = enc.token_mask(channel_mask, n_times, patches.shape[2])
    embeddings = enc.patch_embed(patches)
    valid_patches = torch.div(n_times, enc.patch_size, rounding_mode="floor")
    positions = positions.to(embeddings.dtype)
    counted = None
    if pre.target == "codes":
        flat_targets = targets.reshape(targets.shape[0], -1)
        counted = torch.bincount(flat_targets[token_mask.flatten(1)], minlength=len(pre.target_counts))
        most_frequent = (pre.target_counts + (counted if pre.training else 0)).argmax()
    else:
        with torch.no_grad():
            flat_targets = amplitude_target(patches, token_mask).flatten(1, 2)
    masks = pre._masks(token_mask, generator)
    loss_sum, count = torch.zeros(()), torch.zeros(())
    accuracy, n_masked, weights, hits_baseline, n_total = {}, {}, {}, 0, 0
    for name, mask, strategy_of_sample, *_ in masks:
        hidden = torch.where(mask[..., None], pre.mask_embedding, embeddings)
        out = enc.encode(hidden, positions, token_mask, valid_patches, padded=True)
        chosen = mask.flatten(1)
        pred = pre.head(out.tokens[chosen]).float()
        target = flat_targets[chosen]
        if pre.target == "codes":
            loss_sum = loss_sum + F.cross_entropy(pred, target, reduction="sum")
            score = (pred.argmax(1) == target).float().detach()
            weight = torch.ones_like(score)
        else:
            squared_error = (pred - target).pow(2)
            loss_sum = loss_sum + squared_error.mean(-1).sum()
            weight = target.pow(2).sum(-1)
            score = (weight - squared_error.sum(-1)).detach()
        count = count + chosen.sum()
        if strategy_of_sample is None:
            weights[name] = weight.sum()
            accuracy[name] = score.sum() / weights[name]
            n_masked[name] = chosen.sum()
        else:
            which = strategy_of_sample[:, None].expand_as(chosen)[chosen]
            suffix = name.removeprefix("mixed")
            for i, strategy in enumerate(pre.strategies):
                of_strategy = (which == i).float()
                weights[strategy + suffix] = (weight * of_strategy).sum()
                accuracy[strategy + suffix] = (score * of_strategy).sum() / weights[strategy + suffix].clamp_min(1e-12)
                n_masked[strategy + suffix] = of_strategy.sum().long()
        if pre.target == "codes":
            hits_baseline = hits_baseline + (target == most_frequent).sum()
            n_total = n_total + target.numel()
    if not pre.single_pass:
        count = count / len(masks)
    baseline = hits_baseline / max(n_total, 1) if pre.target == "codes" else torch.zeros(())
    return loss_sum, count, accuracy, n_masked, weights, baseline, counted


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("target", ["codes", "spectrum"])
@pytest.mark.parametrize("mode", ["single_pass", "three_passes", "symmetric"])
def test_weighted_loss_equals_boolean_indexing(target, mode):
    """Loss, count, per-strategy accuracy / n_masked / weights, baseline, code counts and every
    gradient equal the boolean-indexing maths, on a padded batch with garbage at the padding."""
    kw = {"single_pass": mode == "single_pass", "symmetric": mode == "symmetric"}
    batch = padded_batch()
    batch.x[1, 4:] = 1e4  # padding holds anything
    batch.x[1, :, 125:] = -1e4
    targets = codes_of(batch) if target == "codes" else None
    for training in (False, True):
        pre = pretrainer(target, **kw).train(training)
        ref_pre = copy.deepcopy(pre)
        inputs = dict(batch.encoder_inputs(), targets=targets)
        ref = boolean_indexing_reference(ref_pre, **inputs, generator=torch.Generator().manual_seed(7))
        out = pre(**inputs, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(out.loss_sum, ref[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.count, ref[1].to(out.count.dtype))
        assert out.accuracy.keys() == ref[2].keys() and out.n_masked.keys() == ref[3].keys()
        for name in ref[2]:
            torch.testing.assert_close(out.accuracy[name], ref[2][name], rtol=1e-5, atol=1e-6)
            assert out.n_masked[name].dtype == ref[3][name].dtype and int(out.n_masked[name]) == int(ref[3][name])
            torch.testing.assert_close(out.accuracy_weight[name], ref[4][name].to(torch.float32), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.baseline_accuracy, torch.as_tensor(ref[5], dtype=torch.float32))
        if target == "codes" and training:
            assert torch.equal(pre.target_counts, ref[6])
        (out.loss_sum / out.count).backward()
        (ref[0] / ref[1]).backward()
        new, old = _grads(pre), _grads(ref_pre)
        assert new.keys() == old.keys() and new
        for name in old:
            torch.testing.assert_close(new[name], old[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", sorted(MASK_STRATEGIES))
@pytest.mark.parametrize("ratio", [0.1, 0.25, 1 / 3, 0.5, 0.55, 0.75, 0.9])
def test_most_masked_bounds_every_sample_and_is_tight_unpadded(strategy, ratio):
    """The slots the loss gathers per sample (known from shapes and ratios alone) hold every
    masked token of every sample, whatever its padding, and no more than a full sample masks
    (but at a float tie of round(n * ratio), where the bound rounds up)."""
    for n_chans, n_patches in [(1, 1), (1, 2), (2, 3), (3, 5), (7, 4), (19, 4), (64, 4), (5, 30)]:
        samples = [(c, k) for c in range(1, n_chans + 1) for k in range(1, n_patches + 1)]  # full grid last
        grid = torch.zeros(len(samples), n_chans, n_patches, dtype=torch.bool)
        for row, (c, k) in enumerate(samples):
            grid[row, :c, :k] = True  # padded channels and patches
        masked = MASK_STRATEGIES[strategy](grid, ratio, torch.Generator().manual_seed(0)).flatten(1).sum(1)
        bound = _most_masked(strategy, ratio, n_chans, n_patches)
        assert int(masked.max()) <= bound, (n_chans, n_patches)
        n = {"random": n_chans * n_patches, "channel": n_chans, "temporal": n_patches}[strategy]
        if abs(n * ratio % 1 - 0.5) > 1e-6:
            assert bound == int(masked[-1]), (n_chans, n_patches)


def test_padding_is_known_on_the_host_and_skipped_without_a_read():
    uniform = pad_recordings([(torch.randn(4, 200), torch.rand(4, 2) * 100) for _ in range(3)])
    assert uniform.padded is False and padded_batch().padded is True
    assert uniform.to("cpu").padded is False and padded_batch().to("cpu").padded is True
    assert uniform.encoder_inputs()["channel_mask"] is None and uniform.encoder_inputs()["n_times"] is None
    assert EEGBatch(uniform.x, uniform.positions, uniform.channel_mask, uniform.n_times, padded=True).padded
    encoder = MAPEEncoder(**TINY).eval()
    assert not encoder.padding_given(uniform.x, None, None) and not encoder.padding_given(uniform.x, None, 200)
    assert encoder.padding_given(uniform.x, None, 199) and encoder.padding_given(uniform.x, uniform.channel_mask, None)
    assert encoder.padding_given(uniform.x, None, uniform.n_times)  # a tensor: not read, so maybe padded
    full = encoder(uniform.x, uniform.positions, channel_mask=uniform.channel_mask, n_times=uniform.n_times)
    torch.testing.assert_close(encoder(**uniform.encoder_inputs()).tokens, full.tokens, rtol=0, atol=0)


class _NoHostRead:
    """Makes every Python-level read of a tensor's value raise (bool/int/float/item/tolist/numpy)."""

    NAMES = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy")

    def __init__(self, monkeypatch):
        def refuse(name):
            def read(self, *args, **kwargs):
                raise AssertionError(f"host read: Tensor.{name}")
            return read

        for name in self.NAMES:
            monkeypatch.setattr(torch.Tensor, name, refuse(name))


@pytest.mark.parametrize("target,decoder_depth,visible_blocks",
                         [("codes", 0, 0), ("spectrum", 0, 0), ("spectrum", 1, 0), ("spectrum", 0, 1)])
def test_step_reads_no_tensor_on_the_host(monkeypatch, target, decoder_depth, visible_blocks):
    """Forward and backward of the training step on a padded batch (with a decoder too: the
    visible tokens' slots come from the shapes), and the encoder's forward with
    check_finite=False, never read a tensor's value from Python."""
    batch = padded_batch()
    batch.targets = codes_of(batch) if target == "codes" else None
    pre = pretrainer(target, single_pass=True, decoder_depth=decoder_depth, visible_blocks=visible_blocks)
    encoder = MAPEEncoder(**TINY)
    _NoHostRead(monkeypatch)
    out = pre.training_step(batch)
    (out["loss_sum"] / out["count"]).backward()
    encoder(**batch.encoder_inputs(), check_finite=False).pooled().sum().backward()
    monkeypatch.undo()
    assert torch.isfinite(out["loss_sum"]) and pre.mask_embedding.grad is not None


# ---------------------------------------------------------------- Trainer: reads per log interval
def _count_reads(monkeypatch) -> list:
    """Counts every Python-level read of a tensor's value (the names of _NoHostRead)."""
    reads = []
    for name in _NoHostRead.NAMES:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_trainer_reads_scalars_once_per_log_interval(tmp_path, monkeypatch):
    from _ddp_worker import ToyRegressor, make_batches

    def reads_of(steps):
        reads = _count_reads(monkeypatch)
        cfg = TrainConfig(steps=steps, log_every=10, checkpoint_every=1000, run_dir=str(tmp_path / f"r{steps}"),
                          progress=False, device="cpu", metrics="none", warmup_steps=2)
        Trainer(ToyRegressor(), cfg, make_batches()).fit()
        monkeypatch.undo()
        return len(reads)

    # 10 more steps, one more log interval: two reads (the fault flags and the logged sums), not
    # three per step as when the count, the loss and the gradient norm were read every step
    assert reads_of(20) - reads_of(10) == 2


def test_trainer_reports_a_fault_at_the_log_and_keeps_the_last_good_weights(tmp_path):
    from _ddp_worker import ToyRegressor, make_batches

    class NaNAtStep3(ToyRegressor):
        def training_step(self, batch):
            out = super().training_step(batch)
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                out["loss_sum"] = out["loss_sum"] * float("nan")
            return out

    def cfg(name, steps, log_every):
        return TrainConfig(steps=steps, lr=0.05, log_every=log_every, checkpoint_every=1000, warmup_steps=2,
                           run_dir=str(tmp_path / name), progress=False, device="cpu", metrics="none")

    torch.manual_seed(0)
    model = NaNAtStep3()
    start = copy.deepcopy(model.state_dict())
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at step 3; lower the learning rate"):
        Trainer(model, cfg("nan", 20, log_every=8), make_batches()).fit()
    assert model.calls == 8  # found at the log of step 8, named as step 3
    good = ToyRegressor()
    good.load_state_dict(start)
    Trainer(good, cfg("good", 2, log_every=1), make_batches()).fit()
    for name, value in good.linear.state_dict().items():  # steps 3-8 applied nothing
        torch.testing.assert_close(model.linear.state_dict()[name], value, rtol=0, atol=0)


# ---------------------------------------------------------------- torch.compile / torch.export
def _pretrain_loss(pre):
    def loss(x, positions, channel_mask, n_times, targets):
        out = pre(x, positions, channel_mask=channel_mask, n_times=n_times, targets=targets)
        return out.loss_sum / out.count, out.accuracy, out.baseline_accuracy
    return loss


def _compare_compiled_loss(target, backend, **kw):
    batch = padded_batch()
    targets = codes_of(batch) if target == "codes" else None
    inputs = (batch.x, batch.positions, batch.channel_mask, batch.n_times, targets)
    compiled_pre = pretrainer(target, single_pass=True, **kw)
    eager_pre = copy.deepcopy(compiled_pre)
    torch.compiler.reset()
    compiled = torch.compile(_pretrain_loss(compiled_pre), fullgraph=True, backend=backend)
    for seed in (3, 4):  # the same masks: drawn from the global generator, seeded alike
        torch.manual_seed(seed)
        got = compiled(*inputs)
        torch.manual_seed(seed)
        want = _pretrain_loss(eager_pre)(*inputs)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[2], want[2])
        got[0].backward()
        want[0].backward()
    torch.compiler.reset()
    for name, grad in _grads(eager_pre).items():
        torch.testing.assert_close(_grads(compiled_pre)[name], grad, rtol=1e-4, atol=1e-6)
    if target == "codes":  # the buffer update happens in the compiled graph too
        assert torch.equal(compiled_pre.target_counts, eager_pre.target_counts)
        assert int(compiled_pre.target_counts.sum()) == 2 * int(batch.channel_mask.sum(1).dot(batch.n_times // 25))


@pytest.mark.parametrize("target", ["codes", "spectrum"])
def test_pretraining_loss_compiles_whole(target):
    """fullgraph=True: no graph break, no data-dependent shape; loss, accuracies, gradients and
    code counts equal eager on a padded batch (single pass)."""
    _compare_compiled_loss(target, "aot_eager")


@pytest.mark.parametrize("bias", ["none", "distance"])
@pytest.mark.parametrize("split", [{"decoder_depth": 1}, {"visible_blocks": 1}])
def test_pretraining_loss_with_visible_token_blocks_compiles_whole(bias, split):
    """decoder_depth=1 (the encoder sees the visible tokens' slots, a decoder all tokens) and
    visible_blocks=1 (the first block sees the slots) compile with fullgraph=True and match eager,
    with the key mask or the gathered distance bias."""
    _compare_compiled_loss("spectrum", "aot_eager", attention_bias=bias, **split)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Torchinductor does not support code generation for complex operators")
def test_pretraining_loss_compiles_with_inductor():
    """The same through inductor, spectrum target (its rfft stays an eager kernel: inductor
    generates no code for complex operators; the codes target goes through inductor in
    test_trainer_compile_option_trains_like_eager)."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):  # eager's random masks, to compare
        _compare_compiled_loss("spectrum", "inductor")


def _padded_encoder_inputs():
    batch = padded_batch()
    return batch.x, batch.positions, batch.channel_mask, batch.n_times


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("conv_impl", ["conv", "matmul"])  # matmul: the CUDA default
def test_encoder_compiles_whole_on_a_padded_batch(backend, conv_impl):
    encoder = MAPEEncoder(**TINY).eval()
    encoder.patch_embed.conv_impl = conv_impl
    x, positions, channel_mask, n_times = _padded_encoder_inputs()
    torch.compiler.reset()
    compiled = torch.compile(encoder, fullgraph=True, backend=backend)
    got = compiled(x, positions, channel_mask=channel_mask, n_times=n_times)
    want = encoder(x, positions, channel_mask=channel_mask, n_times=n_times)
    torch.compiler.reset()
    for field in ("tokens", "cls", "token_mask"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), rtol=1e-5, atol=1e-5)


def test_forward_cls_compiles_whole_on_a_padded_batch():
    encoder = MAPEEncoder(**TINY, attention_bias="distance").eval()
    x, positions, channel_mask, n_times = _padded_encoder_inputs()
    torch.compiler.reset()
    compiled = torch.compile(encoder.forward_cls, fullgraph=True, backend="aot_eager")
    got = compiled(x, positions, channel_mask=channel_mask, n_times=n_times)
    torch.compiler.reset()
    want = encoder(x, positions, channel_mask=channel_mask, n_times=n_times).cls
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


class _PooledEncoder(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x, positions, channel_mask, n_times):
        out = self.encoder(x, positions, channel_mask=channel_mask, n_times=n_times)
        cls_only = self.encoder.forward_cls(x, positions, channel_mask=channel_mask, n_times=n_times)
        return out.tokens, out.cls, out.pooled(), cls_only


@pytest.mark.parametrize("strict, conv_impl", [(False, "conv"), (True, "conv"), (False, "matmul")])
def test_encoder_exports_with_a_dynamic_batch_size(strict, conv_impl):
    """torch.export of the encoder (its forward and forward_cls) on padded inputs, batch size dynamic: the
    program equals eager at other batch sizes, padded or not (the braindecode wrapper's export with a dynamic
    batch is tests/test_braindecode_generic.py::test_model_exported); also with the patch
    embedder's convolutions as matrix products (the CUDA default)."""
    from torch.export import Dim

    model = _PooledEncoder(MAPEEncoder(**TINY).eval())
    model.encoder.patch_embed.conv_impl = conv_impl
    x, positions, channel_mask, n_times = _padded_encoder_inputs()
    batch = Dim("batch", min=1, max=64)
    shapes = {"x": {0: batch}, "positions": {0: batch}, "channel_mask": {0: batch}, "n_times": {0: batch}}
    program = torch.export.export(model, (x, positions, channel_mask, n_times), dynamic_shapes=shapes,
                                     strict=strict)
    for caps in ([(6, 200)], [(3, 200), (6, 100), (6, 200), (2, 75), (5, 150)]):
        other = padded_batch(seed=len(caps), caps=caps)
        inputs = (other.x, other.positions, other.channel_mask, other.n_times)
        outputs = model(*inputs)
        torch.testing.assert_close(outputs[3], outputs[1], rtol=1e-5, atol=1e-5)  # forward_cls: the same CLS
        for got, want in zip(program.module()(*inputs), outputs):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_trainer_compile_option_trains_like_eager(tmp_path):
    """TrainConfig(compile=True): the compiled step (inductor, forward + loss + backward) gives
    the eager run's losses step by step (random masks from eager's generator to compare)."""
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters

    batches = [padded_batch(seed) for seed in range(3)]
    for batch in batches:
        batch.targets = codes_of(batch)
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        pre = pretrainer("codes", single_pass=True)
        cfg = TrainConfig(steps=3, log_every=1, checkpoint_every=1000, warmup_steps=1, compile=compiled,
                          run_dir=str(tmp_path / str(compiled)), progress=False, device="cpu")
        torch.compiler.reset()
        graphs = counters["stats"]["unique_graphs"]
        with inductor_config.patch(fallback_random=True):
            Trainer(pre, cfg, lambda epoch, start: iter(batches[start:])).fit()
        assert counters["stats"]["unique_graphs"] - graphs == int(compiled)  # one graph, the whole step
        torch.compiler.reset()
        runs[compiled] = (tmp_path / str(compiled) / "metrics.csv").read_text().splitlines()
    rows = {k: [dict(zip(v[0].split(","), line.split(","))) for line in v[1:]] for k, v in runs.items()}
    assert len(rows[True]) == len(rows[False]) == 3
    for a, b in zip(rows[True], rows[False]):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)


def test_trainer_checkpoint_patch_embedder_option_trains_bit_for_bit_like_without(tmp_path):
    """TrainConfig(checkpoint_patch_embedder=True) sets checkpoint_convs on every patch embedder of
    the model and changes nothing else: the same losses and weights, bit for bit."""
    from eegfm.modules.patch_embed import NeuralPatchEmbedder

    batches = [padded_batch(seed) for seed in range(2)]
    for batch in batches:
        batch.targets = codes_of(batch)
    weights, losses = {}, {}
    for checkpointed in (False, True):
        torch.manual_seed(0)
        pre = pretrainer("codes", single_pass=True)
        cfg = TrainConfig(steps=2, log_every=1, checkpoint_every=1000, warmup_steps=1, progress=False, device="cpu",
                          checkpoint_patch_embedder=checkpointed, run_dir=str(tmp_path / str(checkpointed)))
        Trainer(pre, cfg, lambda epoch, start: iter(batches[start:])).fit()
        embedders = [m for m in pre.modules() if isinstance(m, NeuralPatchEmbedder)]
        assert embedders and all(m.checkpoint_convs is checkpointed for m in embedders)
        weights[checkpointed] = {k: v.clone() for k, v in pre.state_dict().items()}
        lines = (tmp_path / str(checkpointed) / "metrics.csv").read_text().splitlines()
        losses[checkpointed] = [dict(zip(lines[0].split(","), line.split(",")))["loss"] for line in lines[1:]]
    assert all(torch.equal(weights[False][k], weights[True][k]) for k in weights[False])
    assert len(losses[False]) == 2 and losses[False] == losses[True]
