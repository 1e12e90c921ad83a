"""Checks every model class passes, run on the case table of ``tests/model_tester.py``.

In the way of diffusers' ``ModelTesterMixin``: strict save/load round trip, strict loading,
unknown config keys, determinism, padding content, a recording alone vs in a padded batch,
channel-permutation equivariance, a bf16-autocast training step, one-line input errors.
Model-specific behaviour and reference values stay in each model's own test file.
"""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from eegfm import ModelLoadError
from eegfm.hub import CONFIG_VERSION
from model_tester import CASES, CASES_BY_ID, Outputs, build, cases, outputs_equal, state_equal

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: What padded channels, samples and positions are filled with (the reference: pad_recordings' own fill).
FILLS = {"garbage": lambda shape: torch.randn(shape, generator=torch.Generator().manual_seed(9)) * 1e4,
         "nan": lambda shape: torch.full(shape, float("nan"))}
#: A channel order for the channel-permutation check (5 channels; channel 1 of recording 1 moves to
#: where recording 0 has a padded one, and back).
PERM = torch.tensor([3, 0, 4, 1, 2])
ATOL = dict(atol=1e-5, rtol=1e-4)


def _inputs(case, seed=0):
    recordings = case.recordings(seed)
    return recordings, case.collate(recordings)


def _real_tokens(out: Outputs, i: int, extent) -> dict:
    """Per-token outputs of recording ``i`` on its real (C_i, K_i) part of the grid."""
    return {name: t[i, : extent[0], : extent[1]] for name, t in out.tokens.items()}


# ---------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("case_id", cases())
def test_save_and_load_round_trip(case_id, tmp_path):
    """Weights and buffers (moved by a training step), config and eval outputs survive
    save_pretrained -> from_pretrained (strict) exactly; the loaded model is in eval mode."""
    case = CASES_BY_ID[case_id]
    model = build(case)
    _, inputs = _inputs(case)
    with torch.no_grad():
        case.run(model.train(), inputs)  # buffers move: codebook, code counts
    model.eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(case.saved_files)
    loaded = case.load(type(model), tmp_path)
    case.after_load(loaded, model)
    assert type(loaded) is type(model) and not loaded.training
    state_equal(loaded, model)
    assert case.get_config(loaded) == case.get_config(model)
    if case.hub_mixin:
        saved = json.loads((tmp_path / "config.json").read_text())
        assert saved == {**model.get_config(), "model_class": type(model).__name__, "config_version": CONFIG_VERSION}
    with torch.no_grad():
        outputs_equal(case.run(loaded, inputs), case.run(model, inputs))


def _weights_file(folder):
    names = [p for p in folder.iterdir() if p.suffix == ".safetensors"]
    assert len(names) == 1, names
    return names[0]


def _saved(case, folder):
    model = build(case).eval()
    model.save_pretrained(folder)
    (folder / "pytorch_model.bin").unlink(missing_ok=True)  # braindecode also writes a pickle
    return model


# braindecode once shipped a loader that silently loaded 0 of 99 tensors: every eegfm loading path
# fails on one missing or one unexpected weight, with one line naming the key and the folder.
@pytest.mark.parametrize("case_id", cases())
def test_loading_fails_on_a_missing_weight(case_id, tmp_path):
    case = CASES_BY_ID[case_id]
    model = _saved(case, tmp_path)
    case.load(type(model), tmp_path)  # the untouched folder loads
    weights = load_file(_weights_file(tmp_path))
    dropped = sorted(weights)[-1]
    del weights[dropped]
    save_file(weights, _weights_file(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        case.load(type(model), tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"missing 1 ('{dropped}'), unexpected 0" in message
    assert str(tmp_path) in message and type(model).__name__ in message
    assert isinstance(case.load(type(model), tmp_path, strict=False), type(model))  # the documented way out


@pytest.mark.parametrize("case_id", cases())
def test_loading_fails_on_an_unexpected_weight(case_id, tmp_path):
    case = CASES_BY_ID[case_id]
    model = _saved(case, tmp_path)
    weights = load_file(_weights_file(tmp_path))
    save_file({**weights, "stray.weight": torch.zeros(3)}, _weights_file(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        case.load(type(model), tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "missing 0, unexpected 1 ('stray.weight')" in message
    assert str(tmp_path) in message and type(model).__name__ in message


@pytest.mark.parametrize("case_id", cases())
def test_an_unknown_config_key_is_a_one_line_error(case_id, tmp_path):
    """In the constructor (with the closest field for the encoder's), and for eegfm's HubMixin
    models in from_pretrained's overrides and in a saved config.json."""
    case = CASES_BY_ID[case_id]
    ctor, exc, match = case.unknown_key
    with pytest.raises(exc, match=match) as caught:
        ctor()
    assert "\n" not in str(caught.value)
    if case.hub_mixin:
        model = _saved(case, tmp_path)
        name = type(model).__name__
        with pytest.raises(TypeError, match=rf"^{name}.from_pretrained got unknown arguments \['n_layers'\]"):
            type(model).from_pretrained(tmp_path, n_layers=3)
        config = json.loads((tmp_path / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**config, "future_key": 1}))
        with pytest.raises(ModelLoadError, match=rf"keys \['future_key'\] that {name} does not take"):
            type(model).from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("case_id", cases())
def test_same_seed_same_weights_and_outputs(case_id):
    case = CASES_BY_ID[case_id]
    a, b = build(case, seed=0), build(case, seed=0)
    state_equal(a, b)
    _, inputs = _inputs(case)
    for train in (False, True):  # eval, then a training step (k-means, dropout, masks)
        torch.manual_seed(1)
        out_a = case.run(a.train(train), inputs)
        torch.manual_seed(1)
        out_b = case.run(b.train(train), inputs)
        outputs_equal(out_a, out_b)
    state_equal(a, b)
    other = build(case, seed=1).state_dict()
    assert any(not torch.equal(value, other[key]) for key, value in build(case, seed=0).state_dict().items())


# ---------------------------------------------------------------------------------- padding
@pytest.mark.parametrize("case_id, fill", [(case.id, fill) for case in CASES if case.fill_padding is not None
                                            for fill in case.padding_fills])
def test_padding_content_changes_nothing(case_id, fill):
    """Garbage or NaN in padded channels, samples and positions changes neither the training
    step (loss, gradients, buffer updates) nor the eval outputs at real tokens; every output
    stays finite. Real content does change them (the check is not vacuous)."""
    case = CASES_BY_ID[case_id]
    recordings, clean = _inputs(case)
    dirty = case.fill_padding(clean, recordings, FILLS[fill])
    model = build(case)
    runs = []
    for inputs in (clean, dirty):
        trained = copy.deepcopy(model).train()
        torch.manual_seed(1)
        step = case.run(trained, inputs)
        step.batch["loss"].backward()
        grads = {name: p.grad for name, p in trained.named_parameters() if p.grad is not None}
        with torch.no_grad():
            evaluated = case.run(trained.eval(), inputs)
        runs.append((trained, step, grads, evaluated))
    (model_a, step_a, grads_a, eval_a), (model_b, step_b, grads_b, eval_b) = runs
    assert grads_a and grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.isfinite(grads_b[name]).all(), f"{fill} padding made the gradient of {name} non-finite"
        torch.testing.assert_close(grads_b[name], grads_a[name], msg=name)
    state_equal(model_a, model_b)  # buffer updates (codebook EMA, code counts) saw real tokens only
    for a, b in ((step_a, step_b), (eval_a, eval_b)):
        assert a.batch.keys() == b.batch.keys() and a.samples.keys() == b.samples.keys()
        for name in a.batch:
            assert torch.equal(a.batch[name], b.batch[name]), name
        for name in a.samples:
            assert torch.equal(b.samples[name], a.samples[name]), name
        for i, recording in enumerate(recordings if case.extent is not None else ()):
            real_a, real_b = _real_tokens(a, i, case.extent(recording)), _real_tokens(b, i, case.extent(recording))
            for name in real_a:
                assert torch.equal(real_b[name], real_a[name]), f"{name} of recording {i}"
        for name, value in b.items():
            assert not value.is_floating_point() or torch.isfinite(value).all(), name
    with torch.no_grad():
        changed = case.run(model_a, case.perturb(clean))
    assert not torch.equal(changed.batch["loss"], eval_a.batch["loss"])
    for name, value in eval_a.samples.items():  # every recording's outputs
        assert all(not torch.equal(new, old) for new, old in zip(changed.samples[name], value)), name
    assert all(any(not torch.equal(new, old) for new, old in zip(changed.tokens[name], value))
               for name, value in eval_a.tokens.items())


@pytest.mark.parametrize("case_id", cases(lambda case: case.per_recording))
def test_a_recording_alone_equals_itself_in_a_padded_batch(case_id):
    """Outputs of a recording do not depend on the rest of the batch, nor on the padding it gets
    there (the unpadded path, without masks, and the masked path agree)."""
    case = CASES_BY_ID[case_id]
    recordings, inputs = _inputs(case)
    model = build(case)
    with torch.no_grad():
        case.run(model.train(), inputs)  # an initialised codebook
        batched = case.run(model.eval(), inputs)
        for i, recording in enumerate(recordings):
            alone = case.run(model, case.collate([recording]))
            for name, value in alone.samples.items():
                torch.testing.assert_close(batched.samples[name][i], value[0], msg=name, **ATOL)
            if case.extent is None:
                continue
            c, k = case.extent(recording)
            for name, value in _real_tokens(batched, i, (c, k)).items():
                torch.testing.assert_close(value, alone.tokens[name][0], msg=name, **ATOL)
            if "token_mask" in batched.tokens:
                assert int(batched.tokens["token_mask"][i].sum()) == c * k


# ---------------------------------------------------------------------------------- channel permutation
@pytest.mark.parametrize("case_id", cases(lambda case: case.permute is not None))
def test_permuting_channels_with_positions_permutes_per_channel_outputs(case_id):
    """Channels (with their positions, and mask) in another order: per-token outputs move with
    their channel, per-recording and per-batch outputs stay the same."""
    case = CASES_BY_ID[case_id]
    _, inputs = _inputs(case)
    model = build(case).eval()
    with torch.no_grad():
        out = case.run(model, inputs)
        permuted_model, permuted_inputs = case.permute(model, inputs, PERM)
        permuted = case.run(permuted_model, permuted_inputs)
    for name, value in out.tokens.items():
        torch.testing.assert_close(permuted.tokens[name], value[:, PERM], msg=name, **ATOL)
    for kind in ("samples", "batch"):
        for name, value in getattr(out, kind).items():
            torch.testing.assert_close(getattr(permuted, kind)[name], value, msg=name, **ATOL)


# ---------------------------------------------------------------------------------- training
@pytest.mark.parametrize("case_id", cases())
def test_a_bf16_autocast_training_step_on_cpu(case_id):
    """Finite loss; a finite gradient on every trainable parameter (but those the case names as
    unused by forward)."""
    case = CASES_BY_ID[case_id]
    model = build(case).train()
    _, inputs = _inputs(case)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = case.run(model, inputs).batch["loss"].float()
    loss.backward()
    assert torch.isfinite(loss)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert {name for name, p in trainable.items() if p.grad is None} == set(case.unused_params)
    for name, p in trainable.items():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------------------------- input errors
@pytest.mark.parametrize("case_id, error_id", [(case.id, error.id) for case in CASES for error in case.input_errors])
def test_bad_inputs_are_one_line_errors(case_id, error_id):
    case = CASES_BY_ID[case_id]
    error = next(e for e in case.input_errors if e.id == error_id)
    _, inputs = _inputs(case)
    model = build(case).eval()
    with pytest.raises(error.exc, match=error.match) as caught:
        error.call(model, inputs, case)
    assert "\n" not in str(caught.value)
