"""EEGMirror: braindecode's EEGModuleMixin signature, EEGClassifier (skorch), Hub head replacement.

braindecode's own generic model checks run in test_braindecode_generic.py; the checks every eegfm
model passes (save/load, strict loading, channel permutation, determinism, bf16, input errors) in
test_models_common.py."""

import json
import warnings

import mne
import numpy as np
import pytest
import torch

from eegfm import MAPEClassifier, MAPEEncoder, proportion_coordinates

from braindecode import EEGClassifier  # a dev dependency (installed by scripts/setup.sh)
from safetensors.torch import load_file, save_file
from torch import nn

from eegfm.finetune.braindecode import EEGMirror

NAMES = ["Fz", "Cz", "Pz", "Oz"]
ENC = dict(embed_dim=32, depth=1, num_heads=2, patch_size=100)


def _info():
    return mne.create_info(NAMES, 200.0, "eeg")


def _toy(n=32, seed=0):
    """Class 1 carries a 6 Hz rhythm on Fz: a task any working classifier learns."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4, 400)).astype(np.float32) * 5
    y = np.arange(n) % 2
    X[y == 1, 0] += (20 * np.sin(2 * np.pi * 6 * np.arange(400) / 200)).astype(np.float32)
    return X, y


def test_signal_arguments_and_positions_from_chs_info():
    model = EEGMirror(n_outputs=3, chs_info=_info()["chs"], n_times=400, sfreq=200.0, encoder=ENC)
    assert (model.n_outputs, model.n_chans, model.n_times, model.sfreq) == (3, 4, 400, 200.0)
    np.testing.assert_allclose(model.channel_positions.numpy(), proportion_coordinates(NAMES), rtol=1e-6)
    assert model(torch.randn(2, 4, 400)).shape == (2, 3)
    # digitised positions (a montage set on the Info) are used as given
    info = _info().set_montage("standard_1005")
    digitised = EEGMirror(n_outputs=2, chs_info=info["chs"], n_times=400, sfreq=200.0, encoder=ENC)
    np.testing.assert_allclose(digitised.channel_positions.numpy(), proportion_coordinates(info), atol=1e-5)


def test_errors_name_what_to_pass():
    with pytest.raises(ValueError, match=r"needs chs_info=info\['chs'\] \(or positions=\)"):
        EEGMirror(n_outputs=2, n_chans=4, n_times=400, sfreq=200.0, encoder=ENC)
    with pytest.raises(ValueError, match=r"sfreq=250.0 differs from encoder\['sfreq'\]=200.0"):
        EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=250.0, encoder={**ENC, "sfreq": 200.0})
    with pytest.raises(ValueError, match=r"positions must be \(4, 2\) proportion coordinates"):
        EEGMirror(n_outputs=2, n_chans=4, positions=[[50, 50]], sfreq=200.0, encoder=ENC)
    # input errors (x of another shape): tests/test_models_common.py


def test_trains_inside_braindecode_eegclassifier():
    X, y = _toy(24)
    torch.manual_seed(0)
    module = EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=400, sfreq=200.0, encoder=ENC)
    clf = EEGClassifier(module, optimizer=torch.optim.AdamW, lr=3e-3, batch_size=8, max_epochs=10,
                        train_split=None, verbose=0)
    clf.fit(X, y)
    losses = [h["train_loss"] for h in clf.history]
    assert losses[-1] < losses[0]
    assert (clf.predict(X) == y).mean() >= 0.8
    assert clf.predict_proba(X).shape == (24, 2)
    assert "EEGMirror" in repr(clf) and "MAPEEncoder" in str(module)  # sklearn/skorch printing works


def test_input_scale_turns_volts_into_microvolts():
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=200.0, encoder=ENC, input_scale=1e6).eval()
    ref = EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=200.0, encoder=ENC).eval()
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 400) * 10
    torch.testing.assert_close(model(x * 1e-6), ref(x), atol=1e-4, rtol=1e-4)



def test_volts_without_input_scale_are_one_error_that_names_input_scale():
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=200.0, encoder=ENC).eval()
    x = torch.randn(2, 4, 400) * 10e-6  # volts, as braindecode and MOABB datasets give EEG unless scaled
    with pytest.raises(ValueError, match=r"x\[0\] \(recording 0 of the batch\) looks like volts: .*Multiply it by "
                                         r"1e6 .*input_scale=1e6"):
        model(x)


def test_from_encoder_and_from_pretrained_with_a_new_head(tmp_path):
    encoder = MAPEEncoder(**ENC).eval()
    model = EEGMirror.from_encoder(encoder, n_outputs=2, chs_info=_info()["chs"], n_times=400).eval()
    x = torch.randn(2, 4, 400)
    pos = torch.tensor(proportion_coordinates(NAMES), dtype=torch.float32)
    torch.testing.assert_close(model.classifier.forward_features(x, pos), encoder(x, pos).pooled(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="sfreq=250 Hz but the pre-trained encoder expects 200.0 Hz"):
        EEGMirror.from_encoder(encoder, n_outputs=2, chs_info=_info()["chs"], sfreq=250)

    model.save_pretrained(tmp_path)
    with warnings.catch_warnings():  # braindecode notes that it rebuilt chs_info from the saved config
        warnings.simplefilter("ignore", UserWarning)
        same = EEGMirror.from_pretrained(tmp_path).eval()
        wider = EEGMirror.from_pretrained(tmp_path, n_outputs=5).eval()
    torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)
    assert wider.n_outputs == 5 and wider(x).shape == (2, 5)
    torch.testing.assert_close(wider.classifier.forward_features(x, pos), model.classifier.forward_features(x, pos),
                               rtol=0, atol=0)


def test_layer_ids_reach_through_the_wrapper():
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=200.0, encoder=ENC)
    assert model.layer_id("encoder.blocks.0.attn.qkv.weight") == 1
    assert model.layer_id("encoder.patch_embed.proj.weight") == 0
    assert model.layer_id("final_layer.weight") == model.layer_id("encoder.norm.weight") == model.num_layers - 1 == 2
    # names of the former layout (model.encoder.*, model.head.*) still resolve
    assert model.layer_id("model.encoder.blocks.0.attn.qkv.weight") == 1
    assert model.layer_id("model.head.weight") == 2
    assert {name for name, _ in model.named_parameters()} >= {"encoder.cls_token", "final_layer.weight"}


def test_sfreq_defaults_to_the_encoders_rate():
    assert EEGMirror(n_outputs=2, chs_info=_info()["chs"], encoder=ENC).sfreq == 200.0
    assert EEGMirror(n_outputs=2, chs_info=_info()["chs"], encoder={**ENC, "sfreq": 250.0}).sfreq == 250.0
    # n_times and input_window_seconds fix it; a from-scratch encoder follows it
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=1000, input_window_seconds=4.0, encoder=ENC)
    assert model.sfreq == model.encoder.sfreq == 250.0
    with pytest.raises(ValueError, match=r"^sfreq=250.0 differs from encoder\['sfreq'\]=200.0; resample the data"):
        EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=1000, input_window_seconds=4.0,
                  encoder={**ENC, "sfreq": 200.0})


def test_cls_pooling_classifies_from_the_cls_token_alone_as_its_features_say():
    model = EEGMirror(n_outputs=3, chs_info=_info()["chs"], n_times=400, encoder={**ENC, "depth": 2},
                      pooling="cls").eval()
    shapes = []
    model.encoder.blocks[-1].mlp.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    x = torch.randn(2, 4, 400)
    logits, features = model(x), model(x, return_features=True)
    assert shapes == [(2, 1, 32), (2, 17, 32)]  # the logits' last block ran on the CLS token only
    torch.testing.assert_close(logits, model.final_layer(features["pooled"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features["pooled"], features["cls_token"], rtol=0, atol=0)


def test_classifier_shares_the_wrappers_modules(tmp_path):
    model = EEGMirror(n_outputs=3, chs_info=_info()["chs"], n_times=400, encoder=ENC, pooling="cls+mean").eval()
    clf = model.classifier
    assert clf.encoder is model.encoder and clf.head is model.final_layer and not clf.training
    x = torch.randn(2, 4, 400)
    pos = torch.tensor(proportion_coordinates(NAMES), dtype=torch.float32)
    torch.testing.assert_close(clf(x, pos), model(x), rtol=0, atol=0)
    clf.save_pretrained(tmp_path)  # eegfm's own format
    torch.testing.assert_close(MAPEClassifier.from_pretrained(tmp_path)(x, pos), model(x), rtol=0, atol=0)
    model.train()
    model.encoder.eval()  # reading .classifier leaves each module's mode alone
    assert model.classifier.training and not model.encoder.training
    elu = EEGMirror(n_outputs=2, chs_info=_info()["chs"], encoder=ENC, activation=nn.ELU)
    with pytest.raises(ValueError, match=r"^classifier needs activation=nn.GELU: .* activation=ELU"):
        elu.classifier


def _former(key: str) -> str:
    """A parameter's name in the former layout."""
    return "model." + key if key.startswith("encoder.") else "model.head." + key.removeprefix("final_layer.")


def test_checkpoints_of_the_former_layout_still_load(tmp_path):
    """Saved when the wrapper held a MAPEClassifier as .model (model.encoder.*, model.head.*) and
    drop_prob was head_dropout."""
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=400, encoder=ENC, drop_prob=0.1).eval()
    old = {_former(key): value for key, value in model.state_dict().items()}
    fresh = EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=400, encoder=ENC).eval()
    fresh.load_state_dict(old, strict=True)
    x = torch.randn(2, 4, 400)
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)

    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["head_dropout"] = config.pop("drop_prob")
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(tmp_path / "model.safetensors")
    save_file({_former(key): value for key, value in weights.items()}, tmp_path / "model.safetensors")
    (tmp_path / "pytorch_model.bin").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = EEGMirror.from_pretrained(tmp_path).eval()
    assert loaded.drop_prob == 0.1
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^drop_prob=0.2 and head_dropout=0.1 disagree"):
        EEGMirror(n_outputs=2, chs_info=_info()["chs"], encoder=ENC, drop_prob=0.2, head_dropout=0.1)


def test_encoder_knows_unpadded_input_without_a_host_sync():
    """No channel_mask / n_times: no attention mask and nothing data-dependent, so torch.export
    traces it; with them, export takes the masked path and both paths agree."""
    encoder = MAPEEncoder(**ENC).eval()
    x = torch.randn(2, 4, 400)
    pos = torch.tensor(proportion_coordinates(NAMES), dtype=torch.float32)
    patches = encoder.patch_embed(encoder.patchify(x))
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    masked = encoder.encode(patches, pos.expand(2, -1, -1), mask, padded=True)
    unmasked = encoder.encode(patches, pos.expand(2, -1, -1), mask, padded=False)
    torch.testing.assert_close(masked.tokens, unmasked.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder(x, pos).cls, unmasked.cls, atol=1e-5, rtol=1e-5)

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, x, channel_mask, n_times):
            return self.encoder(x, pos, channel_mask=channel_mask, n_times=n_times).pooled()

    channel_mask = torch.tensor([[True, True, True, False], [True] * 4])
    n_times = torch.tensor([400, 300])
    program = torch.export.export(Padded(), (x, channel_mask, n_times), strict=False)
    torch.testing.assert_close(program.module()(x, channel_mask, n_times), Padded()(x, channel_mask, n_times))
    alone = encoder(x[1:, :, :300], pos).pooled()  # the padded sample equals itself unpadded
    torch.testing.assert_close(Padded()(x, channel_mask, n_times)[1], alone[0], atol=1e-5, rtol=1e-5)


def test_moment_pooling_reads_the_montage_positions():
    from eegfm.modules import spatial_moments

    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], n_times=400, encoder=ENC, pooling="moments").eval()
    assert model.num_features == 3 * model.encoder.embed_dim == model.final_layer.in_features
    x = torch.randn(2, len(_info()["chs"]), 400)
    pooled = model(x, return_features=True)["pooled"]
    out = model.encoder(x, model.channel_positions)
    assert torch.allclose(pooled, spatial_moments(out.grid(), out.token_mask, model.channel_positions), atol=1e-6)
    assert model(x).shape == (2, 2)
