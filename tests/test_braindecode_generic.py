"""braindecode's generic model checks, run on EEGMirror (eegfm.finetune.braindecode).

braindecode runs these on every model it ships (``test/unit_tests/models/`` of
github.com/braindecode/braindecode); its tests are not in the wheel, so each is reimplemented
here, named in a comment. Its helpers are imported from the installed package where they exist
(``braindecode.models.util``, ``braindecode.models.config``). Each test is parametrised over tiny
EEGMirror configurations (embed_dim 32, depth 1, 2 heads, patch 100).

====  ====================================================================  =======  ==========================
id    braindecode check (file :: test)                                       applies  here
====  ====================================================================  =======  ==========================
I1    test_integration :: test_model_integration (every signal-arg combo)    yes      passes
I2    test_integration :: test_model_integration_full (EEGClassifier by      yes      passes
      name on mne.Epochs)
I3    test_integration :: test_model_integration_full_last_layer             yes      passes
I4    test_integration :: test_model_list (EEGClassifier on a windows        yes      passes (1)
      BaseConcatDataset; also numpy / torch Dataset / one windows dataset)
I5    test_integration :: test_model_has_activation_parameter                yes      passes
I6    test_integration :: test_activation_default_parameters_are_nn_module_  yes      passes
      classes
I7    test_integration :: test_model_has_drop_prob_parameter                 yes      passes
I8    test_integration :: test_model_compiled                                yes      passes (2)
I9    test_integration :: test_model_exported (+ dynamic batch)              yes      passes
I10   test_integration :: test_model_torch_script                            no (3)   --
I11   test_integration :: test_completeness_summary_table                    yes      passes (MODEL_SUMMARY)
I12   test_integration :: test_completeness__models_test_cases               no (4)   --
B1    test_base :: test_all_params / test_missing_params /                   yes      passes (5)
      test_incorrect_params / test_init_submodule
B2    test_base :: test_inexistent_param                                     yes      passes
B3    test_base :: test_get_torchinfo_statistics / test__str__               yes      passes
B4    test_base :: test_get_output_shape                                     yes      passes
B5    test_base :: test_raised_runtimeerror_kernel_size_get_output_shape     yes      passes (6)
B6    test_base :: test_get_config_roundtrip_without_hub_config              yes      passes
B7    test_base :: test_fractional_input_window_seconds_consistency /        yes      passes
      _inference
B8    test_base :: test_docstring_inheritance_preserves_child_description    yes      passes
B9    test_base :: test_init_kwargs_tracked_for_subclass                     yes      passes
B10   test_base :: test_load_state_dict_strict_false_*                       no (7)   --
R1    test_return_features :: test_return_features                          yes      passes
R2    test_return_features :: test_default_forward_returns_tensor            yes      passes
R3    test_return_features :: test_reset_head                                yes      passes
R4    test_return_features :: test_legacy_params                             no (8)   --
H1    test_huggingface :: test_save_pretrained_creates_config /              yes      passes
      test_config_contains_all_parameters
H2    test_huggingface :: test_local_push_and_pull_roundtrip                 yes      passes
H3    EEGModuleMixin._from_pretrained with another n_outputs (reset_head)    yes      passes
H4    EEGModuleMixin.__init_subclass__ model card (repo/docs URL, tags)      yes      passes (ours, not
                                                                                      braindecode's URLs)
C1    test_config :: test_make_model_config_instantiation                    yes      passes
C2    test_config :: test_make_model_config_json_serialization               yes      passes (9)
K1    test_model_contract :: test_registered_model_runtime_contract          yes      passes
K2    test_model_contract :: test_registered_model_serialization_contract    yes      passes
M1    test_model_categorization :: test_model_has_categorization_badges      yes      passes
M2    test_model_modality :: test_model_has_valid_modality                   yes      passes
====  ====================================================================  =======  ==========================

32 of 36 checks apply; all 32 pass.

(1) braindecode's EEGClassifier takes ``chs_info``/``sfreq`` from ``mne.Epochs`` only
    (``infer_signal_properties``: n_chans/n_times/n_outputs from datasets); MAPE needs the
    electrode positions, so the windows datasets' own Info is passed with
    ``**signal_kwargs(ds, "module__")``. Without it (and for plain numpy / torch datasets) the
    error is one line that says to pass chs_info=info['chs'] or positions=.
(2) ``torch.compile(fullgraph=True)`` with the ``aot_eager`` backend (dynamo + AOTAutograd:
    no graph break, same outputs). braindecode's inductor codegen (mode="reduce-overhead")
    takes ~40 s for this tiny model on 2 CPUs; it was checked by hand (max abs diff 0), not here.
(3) TorchScript: braindecode skips it for its foundation models (BIOT, Labram, ...).
    ``torch.jit.script`` rejects the encoder's keyword-only arguments first, then its dataclass
    output, ``int | Tensor`` n_times and host-side error checks; making them scriptable would
    reshape the encoder's API for a frontend PyTorch no longer develops. torch.export (I9),
    its replacement, passes.
(4) Registry bookkeeping (every model in braindecode.models has a test case); EEGMirror is not
    in braindecode's registry; the tests below register it by name where braindecode's own code
    looks it up (I2, C1).
(5) ``sfreq`` is never missing: it defaults to the encoder's rate (200 Hz), explicitly.
(6) Too short an input raises a ValueError that names the length and the patch size
    (braindecode wraps the RuntimeError of a too-big kernel into such a ValueError).
(7) Behaviour of EEGModuleMixin.load_state_dict in braindecode newer than the installed one;
    nothing model-specific (EEGMirror's load_state_dict only renames old keys, then defers).
(8) Model-specific legacy flags of EEGPT / BIOT / Labram.
(9) The ``chs_info`` variant needs numpydantic to put ``loc`` arrays in JSON; it is in the
    ``dev`` extra, so CI runs it (braindecode skips the file without it); the ``positions=``
    variant always runs.
"""

from __future__ import annotations

import inspect
import json
import warnings

import mne
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.export import Dim, ExportedProgram, export

from braindecode import EEGClassifier
from braindecode.datasets import BaseConcatDataset, RawDataset
from braindecode.models.util import _get_possible_signal_params, _get_signal_params, models_dict
from braindecode.preprocessing import create_windows_from_events
from skorch.dataset import ValidSplit

from eegfm.finetune.braindecode import MODEL_SUMMARY, EEGMirror, signal_kwargs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENC = dict(embed_dim=32, depth=1, num_heads=2, patch_size=100)
CONFIGS = {
    "mean": dict(encoder=ENC),
    "cls+mean-dropout": dict(encoder=ENC, pooling="cls+mean", drop_prob=0.25),
    "cls-sincos1d-elu": dict(encoder={**ENC, "position_embedding": "sincos1d"}, pooling="cls", activation=nn.ELU),
    "attention": dict(encoder=ENC, pooling="attention"),
}
#: braindecode's test signal (3 channels C1-C3 with random ``loc``), at the encoder's 200 Hz.
SIGNAL = dict(n_times=400, sfreq=200.0, input_window_seconds=2.0)
REQUIRED = ["chs_info", "n_outputs"]  # EEGMirror's row of braindecode's models_mandatory_parameters
#: What braindecode's models/summary.csv has, and its tests accept.
SUMMARY_COLUMNS = ["Model", "Application", "Type", "Sampling Frequency (Hz)", "Hyperparameters", "#Parameters",
                   "get_#Parameters", "Categorization", "Modality"]
CATEGORIZATION_BADGES = {  # test_model_categorization.py, plus the installed summary.csv's categories
    "Convolution": ":bdg-success:`Convolution`",
    "Foundation Model": ":bdg-danger:`Foundation Model`",
    "Attention/Transformer": ":bdg-info:`Attention/Transformer`",
    "Channel": ":bdg-dark-line:`Channel`",
}
ALLOWED_MODALITIES = {"EEG", "MEG", "iEEG", "ECoG", "sEMG"}  # test_model_modality.py

config_params = pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))


def _sp(**override):
    """braindecode's signal parameters (``_get_signal_params``) at 200 Hz."""
    return _get_signal_params({**SIGNAL, **override})


def _model(config, **signal):
    sp = _sp()
    kwargs = dict(n_outputs=sp["n_outputs"], chs_info=sp["chs_info"], n_times=sp["n_times"], sfreq=sp["sfreq"])
    return EEGMirror(**{**kwargs, **signal}, **config).eval()


def _epochs_y(n=10, seed=0):
    """test_integration.get_epochs_y: random mne.Epochs with braindecode's channel info."""
    sp = _sp()
    rng = np.random.default_rng(seed)
    info = mne.create_info([c["ch_name"] for c in sp["chs_info"]], sp["sfreq"], "eeg")
    for dest, source in zip(info["chs"], sp["chs_info"]):
        dest["loc"][:] = source["loc"]
    X = rng.standard_normal((n, len(sp["chs_info"]), sp["n_times"]))
    return mne.EpochsArray(X, info, verbose="error"), rng.integers(sp["n_outputs"], size=n)


@pytest.fixture
def registered(monkeypatch):
    """EEGMirror in braindecode's model registry, as braindecode's own models are."""
    from braindecode.models.util import _get_model_class

    _get_model_class("EEGNet")  # fills the registry first
    monkeypatch.setitem(models_dict, "EEGMirror", EEGMirror)


def _windows(use_mne_epochs: bool) -> BaseConcatDataset:
    """A BaseConcatDataset of two recordings cut into 2-s windows of labelled events."""
    recordings = []
    for seed in range(2):
        raw = mne.io.RawArray(np.random.default_rng(seed).standard_normal((3, 10 * 400)),
                              mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg"), verbose="error")
        raw.set_annotations(mne.Annotations(np.arange(10) * 2.0, 2.0, ["left", "right"] * 5))
        recordings.append(RawDataset(raw, pd.Series({"subject": seed})))
    return create_windows_from_events(BaseConcatDataset(recordings), trial_start_offset_samples=0,
                                      trial_stop_offset_samples=0, window_size_samples=400,
                                      window_stride_samples=400, on_last_window="drop",
                                      use_mne_epochs=use_mne_epochs, preload=True)


def _classifier(module, **kwargs):
    """EEGClassifier with test_integration's settings (1 epoch, Adam at 0.0625 * 0.01)."""
    settings = dict(module__encoder=ENC, optimizer=torch.optim.Adam, optimizer__lr=0.0625 * 0.01, batch_size=4,
                    max_epochs=1, classes=[0, 1], train_split=None, verbose=0)
    return EEGClassifier(module, **{**settings, **kwargs})


# ---------------------------------------------------------------------------------- test_integration.py
@config_params
def test_model_integration(config):
    """I1 test_model_integration: every signal-argument combination braindecode tries."""
    sp = _sp()
    X = torch.randn(3, sp["n_chans"], sp["n_times"])
    combos = _get_possible_signal_params(sp, REQUIRED)
    assert len(combos) == 7  # chs_info given; every time-argument combination
    for kwargs in combos:
        model = EEGMirror(**kwargs, **config).eval()
        assert model(X).shape == (3, sp["n_outputs"])
        assert model.sfreq == 200.0
        if kwargs["n_times"] is not None or kwargs["input_window_seconds"] is not None:
            assert (model.n_times, model.input_window_seconds) == (400, 2.0)


def test_model_integration_full_and_last_layer(registered):
    """I2 test_model_integration_full + I3 test_model_integration_full_last_layer: EEGClassifier
    by model name on mne.Epochs (chs_info, sfreq and n_times come from the Epochs)."""
    epochs, y = _epochs_y()
    clf = _classifier("EEGMirror", train_split=ValidSplit(0.2, random_state=2409), batch_size=2)
    clf.fit(X=epochs, y=y)
    assert isinstance(clf.module_, EEGMirror) and clf.module_.n_chans == 3
    last_two = [name for name, _ in clf.module_.named_children()][-2:]
    assert "final_layer" in last_two


@pytest.mark.parametrize("use_mne_epochs", [True, False], ids=["WindowsDataset", "EEGWindowsDataset"])
def test_model_list_on_windows_datasets(use_mne_epochs):
    """I4 test_model_list: EEGClassifier (module class) on a windows BaseConcatDataset and on one
    windows dataset, chs_info/sfreq from the dataset's own Info."""
    ds = _windows(use_mne_epochs)
    kwargs = signal_kwargs(ds, prefix="module__")
    assert [ch["ch_name"] for ch in kwargs["module__chs_info"]] == ["Fz", "Cz", "Pz"]
    assert kwargs["module__sfreq"] == 200.0
    clf = _classifier(EEGMirror, **kwargs)
    clf.fit(ds, y=None)
    assert (clf.module_.n_chans, clf.module_.n_times, clf.module_.n_outputs) == (3, 400, 2)
    single = ds.datasets[0]  # n_outputs is inferred from WindowsDataset metadata only
    extra = {} if use_mne_epochs else {"module__n_outputs": 2}
    _classifier(EEGMirror, **signal_kwargs(single, "module__"), **extra).fit(single, y=None)


def test_missing_channel_info_is_a_one_line_error():
    """I4, the data that carries no channel info: numpy, a torch Dataset, a windows dataset
    without signal_kwargs."""
    X = np.random.default_rng(0).standard_normal((8, 3, 400)).astype(np.float32)
    y = np.arange(8) % 2
    tensors = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    for data, target in ((X, y), (tensors, None), (_windows(False), None)):
        with pytest.raises(ValueError, match=r"^EEGMirror needs chs_info=info\['chs'\] \(or positions=\)") as err:
            _classifier(EEGMirror, module__n_outputs=2).fit(data, target)
        assert "\n" not in str(err.value)
        with pytest.raises(ValueError, match=r"^ndarray carries no channel info; pass chs_info=info\['chs'\]"):
            signal_kwargs(X)
    # with chs_info, numpy works
    info = mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg")
    _classifier(EEGMirror, module__chs_info=info["chs"]).fit(X, y)


def test_signal_kwargs_rejects_recordings_that_differ():
    ds = _windows(False)
    ds.datasets[1].raw.rename_channels({"Pz": "Oz"})
    with pytest.raises(ValueError, match=r"recordings of BaseConcatDataset differ in channels or sampling rate"):
        signal_kwargs(ds)


def test_model_has_activation_and_drop_prob_parameters():
    """I5 test_model_has_activation_parameter, I6 test_activation_default_parameters_are_nn_module_
    classes, I7 test_model_has_drop_prob_parameter."""
    params = inspect.signature(EEGMirror.__init__).parameters
    activations = [p for name, p in params.items() if "activation" in name.lower()]
    assert activations
    for p in activations:
        assert isinstance(p.default, type) and issubclass(p.default, nn.Module)
    assert any("drop_prob" in name for name in params)
    model = _model(CONFIGS["cls-sincos1d-elu"])
    assert isinstance(model.encoder.blocks[0].mlp[1], nn.ELU)
    assert model.head_drop.p == 0.0 and _model(CONFIGS["cls+mean-dropout"]).head_drop.p == 0.25


@config_params
def test_model_compiled(config):
    """I8 test_model_compiled (see (2): aot_eager, one graph)."""
    model = _model(config)
    x = torch.randn(1, 3, 400)
    torch.compiler.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    out = compiled(x)
    torch.compiler.reset()
    assert out.shape == model(x).shape
    torch.testing.assert_close(out, model(x), atol=1e-4, rtol=1e-4)


@config_params
def test_model_exported(config):
    """I9 test_model_exported, with a static and a dynamic batch size."""
    model = _model(config)
    x = torch.randn(1, 3, 400)
    program = export(model, args=(x,), strict=False)
    assert isinstance(program, ExportedProgram)
    torch.testing.assert_close(program.module()(x), model(x))
    dynamic = export(model, args=(torch.randn(2, 3, 400),), dynamic_shapes={"x": {0: Dim("batch")}}, strict=False)
    for batch in (1, 3, 5):
        xb = torch.randn(batch, 3, 400)
        torch.testing.assert_close(dynamic.module()(xb), model(xb))


def test_completeness_summary_table():
    """I11 test_completeness_summary_table: a row like braindecode's summary.csv, whose numbers hold."""
    from braindecode.models.util import _summary_table

    assert list(MODEL_SUMMARY) == SUMMARY_COLUMNS == ["Model", *_summary_table.columns]
    assert EEGMirror.model_summary is MODEL_SUMMARY and MODEL_SUMMARY["Model"] == "EEGMirror"
    info = mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg")
    default = EEGMirror(n_outputs=2, chs_info=info["chs"])  # get_#Parameters: the default encoder
    assert sum(p.numel() for p in default.parameters()) == MODEL_SUMMARY["#Parameters"]
    assert default.sfreq == MODEL_SUMMARY["Sampling Frequency (Hz)"]
    required = [name.strip() for name in MODEL_SUMMARY["Hyperparameters"].split(",")]
    assert sorted(required) == sorted(REQUIRED)


# ---------------------------------------------------------------------------------- test_base.py
def test_signal_parameters_are_inferred_and_checked():
    """B1 test_all_params / test_missing_params / test_incorrect_params / test_init_submodule."""
    sp = _sp()
    chs = sp["chs_info"]
    for kwargs in (dict(n_chans=3, n_times=400, input_window_seconds=2.0, sfreq=200.0),
                   dict(n_times=None, input_window_seconds=2.0, sfreq=200.0),
                   dict(n_times=400, input_window_seconds=None, sfreq=200.0),
                   dict(n_times=400, input_window_seconds=2.0, sfreq=None)):
        model = EEGMirror(n_outputs=1, chs_info=chs, encoder=ENC, **kwargs)
        assert (model.n_outputs, model.n_chans, model.n_times, model.input_window_seconds, model.sfreq) == (
            1, 3, 400, 2.0, 200.0)
        assert model.chs_info is chs
    bare = EEGMirror(n_outputs=1, chs_info=chs, encoder=ENC)
    assert bare.sfreq == 200.0  # (5): the encoder's rate, never missing
    for name in ("n_times", "input_window_seconds"):
        with pytest.raises(ValueError, match=f"{name} could not be inferred"):
            getattr(bare, name)
    with pytest.raises(ValueError, match=r"^n_chans=2 different from chs_info"):
        EEGMirror(n_outputs=1, n_chans=2, chs_info=chs, encoder=ENC)
    with pytest.raises(ValueError, match=r"^n_times=400 different from input_window_seconds=3.0"):
        EEGMirror(n_outputs=1, chs_info=chs, n_times=400, input_window_seconds=3.0, sfreq=200.0, encoder=ENC)
    with pytest.raises(ValueError, match=r"^sfreq=250.0 differs from encoder\['sfreq'\]=200.0; resample"):
        EEGMirror(n_outputs=1, chs_info=chs, n_times=1000, input_window_seconds=4.0, encoder={**ENC, "sfreq": 200.0})
    with pytest.raises(ValueError, match=r"^EEGMirror needs n_outputs="):
        EEGMirror(chs_info=chs, encoder=ENC)


def test_inexistent_param():
    """B2 test_inexistent_param."""
    with pytest.raises(TypeError):
        EEGMirror(inexistant_param=1)


@config_params
def test_torchinfo_statistics_and_str(config):
    """B3 test_get_torchinfo_statistics / test__str__: str(model) is braindecode's torchinfo table."""
    model = _model(config)
    stats = model.get_torchinfo_statistics()
    assert stats.total_params == sum(p.numel() for p in model.parameters())
    table = str(model)
    assert table == str(stats)
    assert "EEGMirror (EEGMirror)" in table and "[1, 3, 400]" in table
    assert "MAPEEncoder (encoder)" in table and "Linear (final_layer)" in table
    assert type(model).__str__ is not nn.Module.__str__ and "__str__" not in vars(EEGMirror)


@config_params
def test_get_output_shape(config):
    """B4 test_get_output_shape; B5 too short an input is a ValueError naming it."""
    assert _model(config).get_output_shape() == (1, 2)
    with pytest.raises(ValueError, match=r"x has 50 samples per channel, fewer than one patch \(patch_size=100\)"):
        _model(config, n_times=50).get_output_shape()


@config_params
def test_get_config_roundtrip(config):
    """B6 test_get_config_roundtrip_without_hub_config (and with it)."""
    model = _model(config)
    for hub_config in (True, False):
        if not hub_config:
            model._hub_mixin_config = None
        saved = json.loads(json.dumps(model.get_config()))
        with warnings.catch_warnings():  # braindecode says it rebuilt chs_info from the JSON lists
            warnings.simplefilter("ignore", UserWarning)
            restored = EEGMirror.from_config(saved)
        assert restored.activation is model.activation
        assert saved["activation"] == f"{model.activation.__module__}.{model.activation.__qualname__}"
        for name in ("drop_prob", "n_outputs", "n_chans", "n_times", "pooling", "sfreq"):
            assert getattr(restored, name) == getattr(model, name), name
        assert restored.head_drop.p == model.head_drop.p
        torch.testing.assert_close(restored.channel_positions, model.channel_positions)


@pytest.mark.parametrize("n_times, input_window_seconds", [(801, 4.005), (401, 2.005), (101, 0.505)])
def test_fractional_input_window_seconds(n_times, input_window_seconds):
    """B7 test_fractional_input_window_seconds_consistency / _inference (at 200 Hz)."""
    chs = _sp()["chs_info"]
    model = EEGMirror(n_outputs=1, chs_info=chs, n_times=n_times, input_window_seconds=input_window_seconds,
                      sfreq=200.0, encoder=ENC)
    assert (model.n_times, model.input_window_seconds, model.sfreq) == (n_times, input_window_seconds, 200.0)
    inferred = EEGMirror(n_outputs=1, chs_info=chs, input_window_seconds=input_window_seconds, encoder=ENC)
    assert inferred.n_times == round(input_window_seconds * 200.0)
    assert EEGMirror(n_outputs=1, chs_info=chs, n_times=n_times, encoder=ENC).input_window_seconds == n_times / 200.0


def test_docstring_keeps_its_own_description():
    """B8 test_docstring_inheritance_preserves_child_description."""
    doc = EEGMirror.__doc__
    assert doc.lstrip().startswith("MAPE encoder + classification head with braindecode's signal arguments.")
    assert "Mixin class for all EEG models" not in doc.split("Parameters")[0]
    assert "from eegfm.finetune.braindecode import EEGMirror" in doc  # braindecode's Hub notes, our import
    assert "from braindecode.models import EEGMirror" not in doc


def test_init_kwargs_tracked():
    """B9 test_init_kwargs_tracked_for_subclass."""
    model = EEGMirror(n_chans=3, n_outputs=2, n_times=400, positions=[[50, 30], [50, 50], [50, 70]], drop_prob=0.3,
                      encoder=ENC)
    assert EEGMirror(n_outputs=2, positions=[[50, 30], [50, 50]], encoder=ENC).n_chans == 2
    kwargs = model._braindecode_init_kwargs
    assert (kwargs["drop_prob"], kwargs["n_chans"], kwargs["n_outputs"], kwargs["n_times"]) == (0.3, 3, 2, 400)
    assert kwargs["encoder"] == ENC and kwargs["activation"] is nn.GELU


# ---------------------------------------------------------------------------------- test_return_features.py
@config_params
def test_return_features_and_default_forward(config):
    """R1 test_return_features (EEGMirror has a CLS token), R2 test_default_forward_returns_tensor."""
    model = _model(config)
    x = torch.randn(2, 3, 400)
    with torch.no_grad():
        out = model(x, return_features=True)
        logits = model(x)
    assert isinstance(out, dict) and "features" in out and "cls_token" in out
    assert out["features"].shape == (2, 3 * 4, 32)  # (B, n_chans * K, D), K = 400 // 100
    assert isinstance(out["cls_token"], torch.Tensor) and out["cls_token"].shape == (2, 32)
    assert out["pooled"].shape == (2, model.num_features)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 2)
    torch.testing.assert_close(model.final_layer(out["pooled"]), logits)  # eval: dropout is identity


@config_params
def test_reset_head(config):
    """R3 test_reset_head."""
    model = _model(config)
    encoder_state = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.reset_head(10)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 400))
    assert model.n_outputs == 10 and out.shape[-1] == 10
    assert list(dict(model.named_children()))[-1] == "final_layer"
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, encoder_state[key], rtol=0, atol=0)
    assert model.get_config()["n_outputs"] == 10


# ---------------------------------------------------------------------------------- test_huggingface.py
@config_params
def test_save_and_from_pretrained_roundtrip(config, tmp_path):
    """H1 test_save_pretrained_creates_config / test_config_contains_all_parameters,
    H2 test_local_push_and_pull_roundtrip, H3 from_pretrained(n_outputs=k) -> reset_head."""
    model = _model(config)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    init_args = set(inspect.signature(EEGMirror.__init__).parameters) - {"self"}
    assert set(saved) == init_args | {"braindecode_version"}
    assert (saved["n_outputs"], saved["n_times"], len(saved["chs_info"])) == (2, 400, 3)
    with warnings.catch_warnings():  # braindecode says it rebuilt chs_info from the JSON lists
        warnings.simplefilter("ignore", UserWarning)
        restored = EEGMirror.from_pretrained(tmp_path).eval()
        wider = EEGMirror.from_pretrained(tmp_path, n_outputs=5).eval()
    assert (restored.n_chans, restored.n_outputs, restored.n_times) == (3, 2, 400)
    np.testing.assert_allclose(restored.chs_info[0]["loc"], model.chs_info[0]["loc"])
    x = torch.randn(2, 3, 400)
    torch.testing.assert_close(restored(x), model(x))
    assert wider.n_outputs == 5 and wider(x).shape == (2, 5)
    torch.testing.assert_close(wider(x, return_features=True)["pooled"], model(x, return_features=True)["pooled"])


def test_model_card_points_at_eegfm(tmp_path):
    """H4 the card EEGModuleMixin writes: this project's code and docs, not braindecode's."""
    _model(CONFIGS["mean"]).save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "library_name: eegfm" in card
    assert "- Code: https://github.com/eegfm/eegfm" in card and "- Docs: https://github.com/eegfm/eegfm" in card
    assert "braindecode.org" not in card
    assert "- braindecode" in card and "- EEGMirror" in card  # braindecode's tags stay


# ---------------------------------------------------------------------------------- test_config.py
#: braindecode's ChsInfoType under this pydantic: a warning of theirs, not about EEGMirror.
pydantic_closed_typeddict = pytest.mark.filterwarnings("ignore:TypedDict class 'ChsInfoType' is closed")


@pydantic_closed_typeddict
def test_make_model_config_instantiation(registered):
    """C1 test_make_model_config_instantiation."""
    from braindecode.models.config import make_model_config

    ModelConfig = make_model_config(EEGMirror, REQUIRED)
    for kwargs in _get_possible_signal_params(_sp(), REQUIRED):
        model = ModelConfig(**kwargs, encoder=ENC).create_instance()
        assert isinstance(model, EEGMirror) and model.sfreq == 200.0


@pydantic_closed_typeddict
def test_make_model_config_json_serialization(registered):
    """C2 test_make_model_config_json_serialization, channels given by positions= (see (9))."""
    from braindecode.models.config import make_model_config

    positions = [[50.0, 30.0], [50.0, 50.0], [50.0, 70.0]]
    ModelConfig = make_model_config(EEGMirror, ["n_chans", "n_outputs"])
    for activation in (nn.GELU, nn.ELU):
        cfg = ModelConfig(n_chans=3, n_outputs=2, n_times=400, positions=positions, encoder=ENC,
                          activation=activation, drop_prob=0.1)
        serialized = cfg.model_dump(mode="json")
        assert serialized["activation"] == f"{activation.__module__}.{activation.__qualname__}"
        again = ModelConfig.model_validate(json.loads(json.dumps(serialized)))
        np.testing.assert_equal(again.model_dump(mode="python"), cfg.model_dump(mode="python"))
        assert again.create_instance().activation is activation


@pydantic_closed_typeddict
def test_make_model_config_json_serialization_with_chs_info(registered):
    """C2 with chs_info, every signal-argument combination (skipped without numpydantic, as in braindecode)."""
    pytest.importorskip("numpydantic", reason="chs_info's loc arrays need numpydantic (as in braindecode)")
    from braindecode.models.config import make_model_config

    ModelConfig = make_model_config(EEGMirror, REQUIRED)
    for kwargs in _get_possible_signal_params(_sp(), REQUIRED):
        cfg = ModelConfig(**kwargs, encoder=ENC)
        np.testing.assert_equal(ModelConfig.model_validate(cfg.model_dump(mode="json")).model_dump(mode="python"),
                                cfg.model_dump(mode="python"))


# ---------------------------------------------------------------------------------- test_model_contract.py
@config_params
def test_registered_model_runtime_contract(config):
    """K1: input untouched, finite outputs, no state change in eval, batch-permutation
    equivariant, no information across samples."""
    model = _model(config)
    x = torch.randn(2, 3, 400)
    before = x.clone()
    with torch.no_grad():
        out = model(x)
    assert torch.equal(x, before) and torch.isfinite(out).all() and out.shape[0] == 2
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        permuted = model(x[[1, 0]])
        composed = x.clone()
        composed[1].mul_(-3.0).add_(1.0)
        recomposed = model(composed)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    torch.testing.assert_close(permuted, out[[1, 0]])
    torch.testing.assert_close(recomposed[0], out[0])


@config_params
def test_registered_model_serialization_contract(config):
    """K2: config + state_dict rebuild the same eval outputs."""
    model = _model(config)
    x = torch.randn(2, 3, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rebuilt = EEGMirror.from_config(json.loads(json.dumps(model.get_config()))).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
        features, again = model(x, return_features=True), rebuilt(x, return_features=True)
    for key in features:
        torch.testing.assert_close(again[key], features[key])


# ---------------------------------------------------------------------------------- categorization / modality
def test_model_has_categorization_badges_and_valid_modality():
    """M1 test_model_has_categorization_badges, M2 test_model_has_valid_modality."""
    categories = [c.strip() for c in MODEL_SUMMARY["Categorization"].split(",")]
    assert categories
    for category in categories:
        assert CATEGORIZATION_BADGES[category] in EEGMirror.__doc__, category
    modalities = [m.strip() for m in MODEL_SUMMARY["Modality"].split(",") if m.strip()]
    assert modalities and set(modalities) <= ALLOWED_MODALITIES
