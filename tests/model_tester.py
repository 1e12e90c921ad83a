"""The case table of the shared model test suite (``tests/test_models_common.py``).

In the way of diffusers' ``ModelTesterMixin`` (``prepare_init_args_and_inputs_for_common``: a
tiny init dict and dummy inputs per model class, run through common checks), each model class
is a :class:`ModelCase`: how to build a tiny one, per-recording dummy inputs, how to collate
them into a (padded) batch, how to run it and what its outputs are, and the one-line errors
its inputs and config raise. ``test_models_common.py`` runs every case through the same
checks; what a case leaves ``None`` does not apply to it (a wrapper with fixed channels has
no padding), and each such gap is said next to the case.

Outputs are compared by kind (:class:`Outputs`): per-token outputs on the (channel, patch)
grid, per-recording outputs, and per-batch scalars (``batch["loss"]`` is what training
minimises).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Callable

import mne
import torch
from torch import nn

from eegfm import MAPEClassifier, MAPEEncoder, MaskedPretrainer, NeuralTokenizer, pad_recordings
from eegfm.finetune.braindecode import EEGMirror

#: The tiny encoder every EEG case embeds (patch 25: a 150-sample recording is 6 tokens a channel).
ENC = dict(patch_size=25, embed_dim=16, depth=1, num_heads=2, conv_channels=[4, 8], pool_bins=2)
PATCH = ENC["patch_size"]
#: (channels, samples) of the dummy recordings: the first is the largest, the second is padded
#: in channels and time when they are batched.
EEG_SHAPES = ((5, 150), (3, 100))
HUB_FILES = ["README.md", "config.json", "model.safetensors"]
DIFFUSERS_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


@dataclass
class Outputs:
    """What one forward pass gives, by kind.

    tokens : name -> (B, C, K, ...) per-token outputs on the (channel, patch) grid
    samples : name -> (B, ...) per-recording outputs
    batch : name -> () per-batch scalars; ``batch["loss"]`` is the training loss
    """

    tokens: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    batch: dict = field(default_factory=dict)

    def items(self):
        for kind in ("tokens", "samples", "batch"):
            for name, value in getattr(self, kind).items():
                yield f"{kind}.{name}", value


@dataclass
class InputError:
    """``call(model, inputs, case)`` raises ``exc`` whose one-line message matches ``match``."""

    id: str
    call: Callable
    exc: type
    match: str


@dataclass
class ModelCase:
    """One model class in the shared suite.

    Attributes
    ----------
    id : str
    build : () -> nn.Module
        A tiny model (the caller seeds torch first).
    recordings : (seed) -> list
        Per-recording dummy inputs, the first the largest.
    collate : (list) -> dict
        A batch of recordings: the inputs :attr:`run` and :attr:`call` take.
    run : (model, inputs) -> Outputs
    call : (model, inputs) -> anything
        The model's own forward on ``inputs`` (the error checks call it).
    fill_padding : (inputs, recordings, fill) -> inputs, optional
        ``inputs`` with every padded value (channels, samples, positions) replaced by
        ``fill(shape)``. None: the model takes no padding.
    padding_fills : tuple of str
        What the padding is filled with in the padding check (``test_models_common.FILLS``).
    extent : (recording) -> tuple, optional
        The real part of the token grid of one recording, ``(C_i, K_i)``.
    perturb : (inputs) -> inputs, optional
        Real content changed (the padding checks make sure that this does change outputs).
    permute : (model, inputs, perm) -> (model, inputs), optional
        Channels (with their positions) in the order ``perm``. None: no channel axis, or the
        model is not meant to be equivariant (the 1-D baseline, random masks).
    per_recording : bool
        Outputs of a recording do not depend on the rest of the batch (its padding included).
    input_errors : list of InputError
    unknown_key : (() -> model, exc, match)
        Building with an unknown config key fails with this one line.
    saved_files : list of str
        What ``save_pretrained`` writes.
    hub_mixin : bool
        An eegfm ``HubMixin`` model (config.json = get_config + model_class + config_version).
    get_config : (model) -> dict
    load : (cls, folder, **kwargs) -> model
    after_load : (loaded, original) -> None
        What is not saved by design and must be given again (a frozen tokenizer).
    unused_params : set of str
        Trainable parameters that get no gradient from a forward pass (by design).
    """

    id: str
    build: Callable
    recordings: Callable
    collate: Callable
    run: Callable
    call: Callable
    input_errors: list
    unknown_key: tuple
    saved_files: list
    fill_padding: Callable | None = None
    extent: Callable | None = None
    perturb: Callable | None = None
    permute: Callable | None = None
    per_recording: bool = True
    hub_mixin: bool = True
    padding_fills: tuple = ("garbage", "nan")
    get_config: Callable = lambda model: model.get_config()
    load: Callable = lambda cls, folder, **kwargs: cls.from_pretrained(folder, **kwargs)
    after_load: Callable = lambda loaded, original: None
    unused_params: frozenset = frozenset()

    def __repr__(self) -> str:
        return self.id


# ---------------------------------------------------------------------------------- EEG inputs
def eeg_recordings(seed: int, shapes=EEG_SHAPES) -> list:
    """(x (C, T) µV, positions (C, 2)) per recording."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(c, t, generator=g) * 20, torch.rand(c, 2, generator=g) * 100) for c, t in shapes]


def collate_eeg(recordings) -> dict:
    return pad_recordings(list(recordings)).encoder_inputs()


def eeg_extent(recording) -> tuple:
    x = recording[0]
    return x.shape[0], x.shape[1] // PATCH


def fill_eeg_padding(inputs, recordings, fill):
    x, positions = inputs["x"].clone(), inputs["positions"].clone()
    for i, (rx, _) in enumerate(recordings):
        c, t = rx.shape
        x[i, c:] = fill(x[i, c:].shape)
        x[i, :, t:] = fill(x[i, :, t:].shape)
        positions[i, c:] = fill(positions[i, c:].shape)
    return {**inputs, "x": x, "positions": positions}


def perturb_eeg(inputs):
    """Noise on the channels and samples that are real in every recording."""
    x = inputs["x"].clone()
    c, t = EEG_SHAPES[-1]
    x[:, :c, :t] += 20 * torch.randn(x.shape[0], c, t, generator=torch.Generator().manual_seed(3))
    return {**inputs, "x": x}


def permute_eeg(model, inputs, perm):
    out = {**inputs, "x": inputs["x"][:, perm], "positions": inputs["positions"][:, perm]}
    if inputs.get("channel_mask") is not None:
        out["channel_mask"] = inputs["channel_mask"][:, perm]
    return model, out


def grid(tokens: torch.Tensor, inputs) -> torch.Tensor:
    """(B, C*K, ...) channel-major -> (B, C, K, ...)."""
    batch, n_chans, n_times = inputs["x"].shape
    return tokens.reshape(batch, n_chans, n_times // PATCH, *tokens.shape[2:])


def _numpy(name):
    return lambda model, inputs, case: case.call(model, {**inputs, name: inputs[name].numpy()})


def eeg_input_errors(sfreq: bool) -> list:
    """The input stage's one-line errors, for a model that takes (x, positions, channel_mask, n_times)."""
    errors = [
        InputError("rank", lambda m, i, case: case.call(m, {**i, "x": i["x"][0]}), ValueError,
                   r"^x must have shape \(batch, channels, times\), got \(5, 150\); add a batch dimension"),
        InputError("positions", lambda m, i, case: case.call(m, {**i, "positions": i["positions"][:, :4]}),
                   ValueError, r"^positions must have shape \(2, 5, 2\) or \(5, 2\) to match x of shape "
                               r"\(2, 5, 150\), got \(2, 4, 2\)"),
        InputError("short", lambda m, i, case: case.call(m, {**i, "x": i["x"][..., :10], "n_times": None}),
                   ValueError, r"^x has 10 samples per channel, fewer than one patch \(patch_size=25\)"),
        InputError("channel_mask", lambda m, i, case: case.call(m, {**i, "channel_mask": i["channel_mask"].float()}),
                   ValueError, r"^channel_mask must be a bool tensor of shape \(2, 5\), got torch.float32 \(2, 5\)$"),
        InputError("numpy_x", _numpy("x"), TypeError,
                   r"^x must be a torch.Tensor, got ndarray; convert it with torch.as_tensor"),
        InputError("numpy_positions", _numpy("positions"), TypeError,
                   r"^positions must be a torch.Tensor, got ndarray"),
    ]
    if sfreq:
        errors.append(InputError("sfreq", lambda m, i, case: case.call(m, {**i, "sfreq": 250}), ValueError,
                                 r"^sfreq=250 Hz but this model expects sfreq=200.0 Hz; resample first"))
    return errors


UNKNOWN_ENCODER_FIELD = (TypeError, r"^unknown EncoderConfig field 'embed_dimm' \(did you mean 'embed_dim'\?\)")


def eeg_case(id, build, run, *, call=None, sfreq=True, permute=permute_eeg, per_recording=True, saved_files=HUB_FILES,
             **kwargs):
    """A model that takes padded EEG batches (x, positions, channel_mask, n_times)."""
    call = call or (lambda model, inputs: model(**inputs))
    return ModelCase(id=id, build=build, recordings=eeg_recordings, collate=collate_eeg, run=run, call=call,
                     fill_padding=fill_eeg_padding, extent=eeg_extent, perturb=perturb_eeg, permute=permute,
                     per_recording=per_recording, input_errors=eeg_input_errors(sfreq), saved_files=saved_files,
                     **kwargs)


# ---------------------------------------------------------------------------------- eegfm models
def run_encoder(model, inputs) -> Outputs:
    out = model(**inputs)
    pooled = out.pooled()
    return Outputs(tokens={"tokens": out.grid()}, samples={"cls": out.cls, "pooled": pooled},
                   batch={"loss": pooled.float().pow(2).mean()})


def run_tokenizer(model, inputs) -> Outputs:
    out = model(**inputs)
    tokens = {"codes": grid(out.codes, inputs), "amplitude": grid(out.amplitude, inputs),
              "target": grid(out.target, inputs)}
    if not model.training:
        tokens["tokenize"] = grid(model.tokenize(**inputs)[0], inputs)
    return Outputs(tokens=tokens, batch={"loss": out.loss, "amplitude_loss": out.amplitude_loss,
                                         "commitment_loss": out.commitment_loss})


def call_pretrainer(model, inputs):
    return model(**inputs, generator=torch.Generator().manual_seed(0))


def run_pretrainer(model, inputs) -> Outputs:
    out = call_pretrainer(model, inputs)
    batch = {"loss": out.loss, "count": torch.as_tensor(out.count, dtype=torch.float32),
             "baseline_accuracy": torch.as_tensor(out.baseline_accuracy, dtype=torch.float32)}
    batch.update({f"accuracy_{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in out.accuracy.items()})
    batch.update({f"n_masked_{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in out.n_masked.items()})
    return Outputs(batch=batch)


def run_classifier(model, inputs) -> Outputs:
    features = model.forward_features(**inputs)
    logits = model.forward_head(features)
    return Outputs(samples={"features": features, "logits": logits}, batch={"loss": logits.float().pow(2).mean()})


def build_codes_pretrainer():
    tokenizer = NeuralTokenizer(encoder=ENC, num_codes=8, code_dim=4, decoder_depth=1).eval()
    return MaskedPretrainer(encoder=ENC, num_codes=8).attach_tokenizer(tokenizer)


# ---------------------------------------------------------------------------------- EEGMirror (braindecode)
MIRROR_NAMES = ["Fz", "Cz", "Pz", "C3", "C4"]


def build_mirror(names=MIRROR_NAMES):
    info = mne.create_info(list(names), 200.0, "eeg")
    return EEGMirror(n_outputs=2, chs_info=info["chs"], n_times=150, encoder=ENC)


def mirror_recordings(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(len(MIRROR_NAMES), 150, generator=g) * 20 for _ in range(2)]


def run_mirror(model, inputs) -> Outputs:
    features = model(inputs["x"], return_features=True)
    logits = model(inputs["x"])
    return Outputs(tokens={"features": grid(features["features"], inputs)},
                   samples={"cls_token": features["cls_token"], "pooled": features["pooled"], "logits": logits},
                   batch={"loss": logits.float().pow(2).mean()})


def permute_mirror(model, inputs, perm):
    """The same weights with the channels (chs_info) in the order ``perm``."""
    permuted = build_mirror([MIRROR_NAMES[i] for i in perm.tolist()]).train(model.training)
    permuted.load_state_dict(model.state_dict())
    return permuted, {"x": inputs["x"][:, perm]}


def load_quietly(cls, folder, **kwargs):
    with warnings.catch_warnings():  # braindecode notes that it rebuilt chs_info from the saved config
        warnings.simplefilter("ignore", UserWarning)
        return cls.from_pretrained(folder, **kwargs)


MIRROR_SHAPE = r"^x must be \(batch, n_chans=5, n_times\), got "
MIRROR_ERRORS = [
    InputError("rank", lambda m, i, case: m(i["x"][0]), ValueError, MIRROR_SHAPE + r"\(5, 150\)$"),
    InputError("channels", lambda m, i, case: m(i["x"][:, :4]), ValueError, MIRROR_SHAPE + r"\(2, 4, 150\)$"),
    InputError("short", lambda m, i, case: m(i["x"][..., :10]), ValueError,
               r"^x has 10 samples per channel, fewer than one patch \(patch_size=25\)"),
]


# ---------------------------------------------------------------------------------- eegfm_video models
VIDEO_LATENT = dict(latent_channels=4, latent_height=2, latent_width=3, num_frames=3)
D = ENC["embed_dim"]


def build_alignment():
    from eegfm_video.alignment import EEGAlignment

    return EEGAlignment(encoder_config=ENC,
                        semantic_decoder_config=dict(encoder_dim=D, hidden_dim=24, seq_len=4, width=6),
                        seq2seq_config=dict(encoder_dim=D, d_model=16, num_layers=1, num_heads=2, **VIDEO_LATENT))


def _targets(batch, *shape):
    """The same target for every recording of a batch (so a recording alone has the same)."""
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(7)).expand(batch, *shape)


def _latents(batch):
    return _targets(batch, 3, 4, 2, 3)


def call_alignment(model, inputs):
    eeg = {("eeg" if k == "x" else k): v for k, v in inputs.items()}
    return model(**eeg)


def run_alignment(model, inputs) -> Outputs:
    batch = inputs["x"].shape[0]
    text_target, latent_target = _targets(batch, 4, 6), _latents(batch)
    forced = call_alignment(model, {**inputs, "latents": latent_target})
    loss = model.loss(forced, text_target, latent_target)
    samples = {"text_embeddings": forced.text_embeddings, "forced_latents": forced.latents}
    if not model.training:
        samples["latents"] = call_alignment(model, inputs).latents  # autoregressive
    return Outputs(samples=samples, batch={"loss": loss.total, "text": loss.text, "low": loss.low})


def get_diffusers_config(model) -> dict:
    return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}


def build_seq2seq():
    from eegfm_video.models import Seq2SeqLatentDecoder

    return Seq2SeqLatentDecoder(encoder_dim=D, d_model=16, num_layers=1, num_heads=2, **VIDEO_LATENT)


def memory_recordings(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, D, generator=g) for n in (10, 7)]


def collate_memory(recordings):
    n = max(len(r) for r in recordings)
    memory = torch.zeros(len(recordings), n, D)
    mask = torch.zeros(len(recordings), n, dtype=torch.bool)
    for i, r in enumerate(recordings):
        memory[i, : len(r)], mask[i, : len(r)] = r, True
    # one recording alone: no mask, every token real
    return {"memory": memory, "memory_mask": mask if len(recordings) > 1 else None}


def fill_memory_padding(inputs, recordings, fill):
    memory = inputs["memory"].clone()
    for i, r in enumerate(recordings):
        memory[i, len(r):] = fill(memory[i, len(r):].shape)
    return {**inputs, "memory": memory}


def perturb_memory(inputs):
    memory = inputs["memory"].clone()
    memory[:, 0] += 1.0
    return {**inputs, "memory": memory}


def permute_memory(model, inputs, perm):
    n = inputs["memory"].shape[1]  # permute the first len(perm) tokens, real in every recording
    order = torch.cat((perm, torch.arange(len(perm), n)))
    mask = inputs["memory_mask"]
    return model, {"memory": inputs["memory"][:, order], "memory_mask": None if mask is None else mask[:, order]}


def run_seq2seq(model, inputs) -> Outputs:
    latents = _latents(inputs["memory"].shape[0])
    forced = model(inputs["memory"], latents, inputs["memory_mask"])
    samples = {"forced": forced}
    if not model.training:
        samples["generate"] = model.generate(inputs["memory"], inputs["memory_mask"])
    return Outputs(samples=samples, batch={"loss": (forced - latents).square().mean()})


def _seq2seq_error(id, call, match):
    return InputError(id, lambda m, i, case: call(m, i["memory"], i["memory_mask"], _latents(2)), ValueError, match)


SEQ2SEQ_ERRORS = [
    _seq2seq_error("memory_width", lambda m, mem, mask, lat: m(mem[..., :8], lat, mask),
                   r"^memory must have shape \(batch, tokens, 16\) \(encoder_dim=16\), got \(2, 10, 8\)"),
    _seq2seq_error("memory_rank", lambda m, mem, mask, lat: m.generate(mem[0], mask),
                   r"^memory must have shape \(batch, tokens, 16\) \(encoder_dim=16\), got \(10, 16\)"),
    _seq2seq_error("mask_dtype", lambda m, mem, mask, lat: m(mem, lat, mask.long()),
                   r"^memory_mask must be a bool tensor of shape \(2, 10\) \(True = real token\), got torch.int64 "
                   r"\(2, 10\)"),
    _seq2seq_error("mask_shape", lambda m, mem, mask, lat: m.generate(mem, mask[:, :9]),
                   r"^memory_mask must be a bool tensor of shape \(2, 10\).*got torch.bool \(2, 9\)"),
    _seq2seq_error("mask_empty", lambda m, mem, mask, lat: m.generate(mem, mask & torch.tensor([[True], [False]])),
                   r"^memory_mask has no real token for batch rows \[1\]"),
    _seq2seq_error("latents_shape", lambda m, mem, mask, lat: m(mem, lat.transpose(-1, -2), mask),
                   r"^latents must have shape \(2, frames, 4, 2, 3\) .*got \(2, 3, 4, 3, 2\)"),
    _seq2seq_error("latents_batch", lambda m, mem, mask, lat: m(mem, lat[:1], mask),
                   r"^latents must have shape \(2, frames, 4, 2, 3\) .*got \(1, 3, 4, 2, 3\)"),
    _seq2seq_error("latents_empty", lambda m, mem, mask, lat: m(mem, lat[:, :0], mask),
                   r"^latents must hold at least one frame, got 0$"),
    _seq2seq_error("num_frames", lambda m, mem, mask, lat: m.generate(mem, mask, num_frames=0),
                   r"^num_frames must be an integer >= 1, got 0$"),
]


def build_semantic():
    from eegfm_video.models import SemanticDecoder

    return SemanticDecoder(encoder_dim=D, hidden_dim=24, num_blocks=2, seq_len=5, width=6, dropout=0.1)


def pooled_recordings(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(D, generator=g) * 3 for _ in range(3)]


def run_semantic(model, inputs) -> Outputs:
    out = model(inputs["pooled"])
    return Outputs(samples={"text_embeddings": out}, batch={"loss": out.float().square().mean()})


SEMANTIC_ERRORS = [
    InputError("rank", lambda m, i, case: m(i["pooled"][:, None].expand(-1, 3, -1)), ValueError,
               r"^pooled must have shape \(batch, 16\) \(encoder_dim=16\), got \(3, 3, 16\); pass the encoder's "
               r"pooled output"),
    InputError("width", lambda m, i, case: m(i["pooled"][:, :8]), ValueError,
               r"^pooled must have shape \(batch, 16\) \(encoder_dim=16\), got \(3, 8\)"),
]


def _unexpected(name):
    return TypeError, rf"__init__\(\) got an unexpected keyword argument '{name}'"


# ---------------------------------------------------------------------------------- the table
CASES = [
    eeg_case("MAPEEncoder", lambda: MAPEEncoder(**ENC), run_encoder,
             unknown_key=(lambda: MAPEEncoder(**ENC, embed_dimm=8), *UNKNOWN_ENCODER_FIELD)),
    # the 1-D baseline numbers tokens by their flat index: not channel-permutation equivariant by design
    eeg_case("MAPEEncoder-sincos1d", lambda: MAPEEncoder(**ENC, position_embedding="sincos1d"), run_encoder,
             permute=None, unknown_key=(lambda: MAPEEncoder(**ENC, embed_dimm=8), *UNKNOWN_ENCODER_FIELD)),
    # the scalp-distance / patch-lag attention bias: padding, permutation, save/load, bf16 as plain MAPE
    eeg_case("MAPEEncoder-distance-bias", lambda: MAPEEncoder(**ENC, attention_bias="distance"), run_encoder,
             unknown_key=(lambda: MAPEEncoder(**ENC, embed_dimm=8), *UNKNOWN_ENCODER_FIELD)),
    eeg_case("NeuralTokenizer", lambda: NeuralTokenizer(encoder=ENC, code_dim=8, num_codes=16, decoder_depth=1),
             run_tokenizer,
             unknown_key=(lambda: NeuralTokenizer(encoder={**ENC, "embed_dimm": 8}), *UNKNOWN_ENCODER_FIELD)),
    # masks are drawn on the (channel, patch) grid of the whole batch: neither channel-permutation
    # equivariant nor per recording; the loss is one number per batch
    eeg_case("MaskedPretrainer-spectrum", lambda: MaskedPretrainer(encoder=ENC, target="spectrum"), run_pretrainer,
             call=call_pretrainer, sfreq=False, permute=None, per_recording=False,
             unknown_key=(lambda: MaskedPretrainer(encoder=ENC, embed_dimm=8), *UNKNOWN_ENCODER_FIELD)),
    eeg_case("MaskedPretrainer-decoder", lambda: MaskedPretrainer(encoder=ENC, target="spectrum", decoder_depth=1),
             run_pretrainer, call=call_pretrainer, sfreq=False, permute=None, per_recording=False,
             unknown_key=(lambda: MaskedPretrainer(encoder=ENC, decoder_depth=1, embed_dimm=8),
                          *UNKNOWN_ENCODER_FIELD)),
    eeg_case("MaskedPretrainer-codes", build_codes_pretrainer, run_pretrainer,
             call=call_pretrainer, sfreq=False, permute=None, per_recording=False,
             after_load=lambda loaded, original: loaded.attach_tokenizer(original._tokenizer),
             unknown_key=(lambda: MaskedPretrainer(encoder=ENC, num_codes=8, embed_dimm=8), *UNKNOWN_ENCODER_FIELD)),
    eeg_case("MAPEClassifier", lambda: MAPEClassifier(n_outputs=3, encoder=ENC, pooling="cls+mean", head_dropout=0.2,
                                                      class_names=["left", "right", "feet"]),
             run_classifier,
             unknown_key=(lambda: MAPEClassifier(n_outputs=3, encoder={**ENC, "embed_dimm": 8}),
                          *UNKNOWN_ENCODER_FIELD)),
    # braindecode's signature: fixed channels (chs_info) and one length, so no padding to check
    ModelCase("EEGMirror", build_mirror, mirror_recordings, lambda recs: {"x": torch.stack(recs)}, run_mirror,
              call=lambda model, inputs: model(**inputs), permute=permute_mirror, input_errors=MIRROR_ERRORS,
              unknown_key=(lambda: EEGMirror(n_outputs=2, positions=[[50, 50]], encoder={**ENC, "embed_dimm": 8}),
                           *UNKNOWN_ENCODER_FIELD),
              saved_files=[*HUB_FILES, "pytorch_model.bin"], hub_mixin=False, load=load_quietly,
              get_config=lambda model: json.dumps(model.get_config(), sort_keys=True)),  # chs_info: NaN locs
    # the negative embedding (classifier-free guidance) is used by the pipeline, not by forward
    eeg_case("EEGAlignment", build_alignment, run_alignment, call=call_alignment, sfreq=False,
             unknown_key=(lambda: build_alignment().__class__(encoder_config={**ENC, "embed_dimm": 8},
                                                              semantic_decoder_config={}, seq2seq_config={}),
                          *UNKNOWN_ENCODER_FIELD),
             saved_files=DIFFUSERS_FILES, hub_mixin=False, get_config=get_diffusers_config,
             unused_params=frozenset({"negative_embedding"})),
    ModelCase("Seq2SeqLatentDecoder", build_seq2seq, memory_recordings, collate_memory, run_seq2seq,
              call=lambda model, inputs: model.generate(**inputs), fill_padding=fill_memory_padding,
              perturb=perturb_memory, permute=permute_memory, input_errors=SEQ2SEQ_ERRORS,
              unknown_key=(lambda: build_seq2seq().__class__(encoder_dim=D, n_layers=1), *_unexpected("n_layers")),
              saved_files=DIFFUSERS_FILES, hub_mixin=False, get_config=get_diffusers_config),
    # one pooled vector per recording: no tokens, no padding, no channels
    ModelCase("SemanticDecoder", build_semantic, pooled_recordings, lambda recs: {"pooled": torch.stack(recs)},
              run_semantic, call=lambda model, inputs: model(**inputs), input_errors=SEMANTIC_ERRORS,
              unknown_key=(lambda: build_semantic().__class__(encoder_dim=D, n_blocks=1), *_unexpected("n_blocks")),
              saved_files=DIFFUSERS_FILES, hub_mixin=False, get_config=get_diffusers_config),
]
CASES_BY_ID = {case.id: case for case in CASES}


def cases(where: Callable[[ModelCase], bool] = lambda case: True) -> list:
    """``pytest.param``-ready ids of the cases ``where`` holds for."""
    return [case.id for case in CASES if where(case)]


def build(case: ModelCase, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return case.build()


def state_equal(a: nn.Module, b: nn.Module) -> None:
    """Same keys, same tensors (parameters and buffers), bit for bit."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def outputs_equal(a: Outputs, b: Outputs, **tolerance) -> None:
    """Every output of ``a`` equals ``b``'s: bit for bit, or within ``tolerance`` (assert_close's)."""
    da, db = dict(a.items()), dict(b.items())
    assert list(da) == list(db)
    for name in da:
        if tolerance:
            torch.testing.assert_close(da[name], db[name], msg=name, **tolerance)
        else:
            assert torch.equal(da[name], db[name]), name

