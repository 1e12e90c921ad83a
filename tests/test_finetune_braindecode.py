"""EEGMirror: braindecode's EEGModuleMixin signature, EEGClassifier (skorch), Hub head replacement."""

import warnings

import mne
import numpy as np
import pytest
import torch

from eegfm import MAPEEncoder, proportion_coordinates

from braindecode import EEGClassifier  # a dev dependency (installed by scripts/setup.sh)

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
    model = EEGMirror(n_outputs=2, chs_info=_info()["chs"], sfreq=200.0, encoder=ENC)
    with pytest.raises(ValueError, match=r"x must be \(batch, n_chans=4, n_times\)"):
        model(torch.randn(2, 5, 400))


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
    assert model.layer_id("model.encoder.blocks.0.attn.qkv.weight") == 1
    assert model.layer_id("model.head.weight") == model.num_layers - 1 == 2
