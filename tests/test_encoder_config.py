"""EncoderConfig: one typed, JSON-safe config embedded by every model, and the reader of config.json
folders saved before ``config_version`` existed (layout 1), checked on configs written by that code."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from eegfm import EncoderConfig, MAPEClassifier, MAPEEncoder, MaskedPretrainer, ModelLoadError, NeuralTokenizer
from eegfm.cli.overrides import apply_overrides
from eegfm.cli.runs import EncoderSettings, PretrainModelConfig, TokenizerModelConfig
from eegfm.data import PreprocessConfig, pad_recordings
from eegfm.hub import CONFIG_VERSION
from eegfm.models.config import ENCODER_FIELDS

CONTRACT = {"flat_threshold_uv": 0.1, "h_freq": 75.0, "l_freq": 0.1, "max_bad_channel_fraction": 0.5,
            "montage": "standard_1005", "notch_freq": None, "picks": "eeg", "sfreq": 200.0, "units": "uV"}
SMALL = {"depth": 1, "embed_dim": 32, "mlp_ratio": 2.0, "num_heads": 2, "patch_size": 25, "position_embedding": "mape",
         "sfreq": 200.0}

#: config.json of tiny models as eegfm wrote them before config_version (layout 1), sorted keys as saved.
LEGACY = {
    "MAPEEncoder": {"attn_dropout": 0.0, "conv_channels": [4, 8], "depth": 1, "dropout": 0.0, "embed_dim": 32,
                    "layer_norm_eps": 1e-06, "mlp_ratio": 4.0, "model_class": "MAPEEncoder", "num_heads": 2,
                    "patch_size": 25, "pool_bins": 2, "position_embedding": "mape", "preprocessing": CONTRACT,
                    "qkv_bias": True, "sfreq": 200.0},
    "NeuralTokenizer": {"code_dim": 8, "commitment_weight": 1.0, "dead_code_steps": 100, "decoder_depth": 1,
                        "ema_decay": 0.99, "kmeans_iters": 10, "model_class": "NeuralTokenizer", "num_codes": 16,
                        "preprocessing": CONTRACT, **SMALL},
    "MaskedPretrainer": {"channel_ratio": 0.5, "model_class": "MaskedPretrainer", "num_codes": 16,
                         "preprocessing": None, "random_ratio": 0.5, "single_pass": False,
                         "strategies": ["random", "channel", "temporal"], "symmetric": False, "target": "codes",
                         "temporal_ratio": 0.5, **SMALL},
    "MAPEClassifier": {"class_names": ["a", "b", "c"], "head_dropout": 0.0, "model_class": "MAPEClassifier",
                       "n_outputs": 3, "pooling": "cls+mean",
                       "encoder": {"attn_dropout": 0.0, "conv_channels": [4, 8], "depth": 1, "dropout": 0.0,
                                   "embed_dim": 32, "layer_norm_eps": 1e-06, "mlp_ratio": 4.0, "num_heads": 2,
                                   "patch_size": 25, "pool_bins": 2, "position_embedding": "mape",
                                   "preprocessing": CONTRACT, "qkv_bias": True, "sfreq": 200.0}},
}
ENC = dict(patch_size=25, embed_dim=32, depth=1, num_heads=2, conv_channels=[4, 8], pool_bins=2)
#: The same models built with today's API.
BUILD = {
    "MAPEEncoder": lambda: MAPEEncoder(EncoderConfig(**ENC)),
    "NeuralTokenizer": lambda: NeuralTokenizer(encoder=EncoderConfig(patch_size=25, embed_dim=32, depth=1, num_heads=2,
                                                                     mlp_ratio=2.0), code_dim=8, num_codes=16,
                                               decoder_depth=1),
    "MaskedPretrainer": lambda: MaskedPretrainer(encoder=EncoderConfig(patch_size=25, embed_dim=32, depth=1,
                                                                       num_heads=2, mlp_ratio=2.0), num_codes=16),
    "MAPEClassifier": lambda: MAPEClassifier(n_outputs=3, encoder=EncoderConfig(**ENC), pooling="cls+mean",
                                             class_names=["a", "b", "c"]),
}
CLASSES = {cls.__name__: cls for cls in (MAPEEncoder, NeuralTokenizer, MaskedPretrainer, MAPEClassifier)}


def batch():
    g = torch.Generator().manual_seed(3)
    return pad_recordings([(torch.randn(c, t, generator=g) * 20, torch.rand(c, 2, generator=g) * 100)
                           for c, t in [(4, 100), (3, 75)]])


def outputs(model, inputs):
    """Deterministic outputs of each model (eval mode), to compare two copies."""
    model.eval()
    if isinstance(model, NeuralTokenizer):
        return model.tokenize(**inputs)[0]
    if isinstance(model, MaskedPretrainer):
        targets = torch.randint(0, 16, (2, 16), generator=torch.Generator().manual_seed(0))
        return model(**inputs, targets=targets, generator=torch.Generator().manual_seed(0)).loss
    out = model(**inputs)
    return out.tokens if isinstance(model, MAPEEncoder) else out


@pytest.mark.parametrize("name", list(LEGACY))
def test_a_folder_saved_before_config_version_loads_with_equal_weights_and_outputs(tmp_path, name):
    torch.manual_seed(0)
    model = BUILD[name]()
    (tmp_path / "config.json").write_text(json.dumps(LEGACY[name]))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = CLASSES[name].from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    inputs = batch().encoder_inputs()
    assert torch.equal(outputs(loaded, inputs), outputs(model, inputs))
    assert loaded.get_config() == model.get_config()  # converted to today's layout
    loaded.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert saved["config_version"] == CONFIG_VERSION and saved["model_class"] == name
    if name != "MAPEEncoder":  # composite models nest the encoder's resolved settings
        assert set(saved["encoder"]) == set(ENCODER_FIELDS) and saved["encoder"]["preprocessing"]["sfreq"] == 200.0
        assert not set(saved) & set(ENCODER_FIELDS)


def test_a_layout_newer_than_eegfm_reads_is_refused(tmp_path):
    MAPEEncoder(**ENC).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "config_version": CONFIG_VERSION + 1}))
    with pytest.raises(ModelLoadError, match=rf"config_version={CONFIG_VERSION + 1}, a layout newer than this eegfm "
                                             rf"reads \({CONFIG_VERSION}\); upgrade eegfm"):
        MAPEEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "config_version": "two"}))
    with pytest.raises(ModelLoadError, match=r"config_version='two' is not a layout version"):
        MAPEEncoder.from_pretrained(tmp_path)


def test_every_model_embeds_the_whole_config():
    config = EncoderConfig(patch_size=25, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, qkv_bias=False,
                           dropout=0.1, attn_dropout=0.2, conv_channels=(4, 8), pool_bins=2, layer_norm_eps=1e-5)
    models = [MAPEEncoder(config), NeuralTokenizer(encoder=config, num_codes=8, code_dim=4, decoder_depth=1),
              MaskedPretrainer(encoder=config, num_codes=8), MAPEClassifier(n_outputs=2, encoder=config)]
    for model in models:
        encoder = model if isinstance(model, MAPEEncoder) else model.encoder
        assert encoder.config == dataclasses.replace(config, preprocessing=PreprocessConfig().to_dict())
        block = encoder.blocks[0]
        assert block.attn.qkv.bias is None and block.norm1.eps == 1e-5 and block.drop.p == 0.1
        assert block.attn.attn_dropout == 0.2 and encoder.norm.eps == 1e-5
        assert [conv[0].out_channels for conv in encoder.patch_embed.convs] == [4, 8]
    tokenizer = models[1]
    assert tokenizer.decoder[0].attn.qkv.bias is None and tokenizer.decoder_norm.eps == 1e-5


def test_flat_encoder_fields_are_a_shorthand_for_the_config():
    torch.manual_seed(0)
    flat = NeuralTokenizer(patch_size=25, embed_dim=32, depth=1, num_heads=2, num_codes=8, code_dim=4)
    torch.manual_seed(0)
    nested = NeuralTokenizer(encoder=dict(patch_size=25, embed_dim=32, depth=1, num_heads=2), num_codes=8, code_dim=4)
    assert flat.get_config() == nested.get_config()
    assert all(torch.equal(a, b) for a, b in zip(flat.state_dict().values(), nested.state_dict().values()))
    assert MaskedPretrainer(encoder=EncoderConfig(embed_dim=32, num_heads=2), depth=1).encoder.config.depth == 1


def test_unknown_fields_get_a_did_you_mean():
    with pytest.raises(TypeError, match=r"unknown EncoderConfig field 'embed_dims' \(did you mean 'embed_dim'\?\)"):
        EncoderConfig.from_dict({"embed_dims": 32})
    with pytest.raises(TypeError, match=r"unknown EncoderConfig field 'qkv_bais' \(did you mean 'qkv_bias'\?\)"):
        NeuralTokenizer(qkv_bais=False)
    with pytest.raises(TypeError, match=r"encoder config must be an EncoderConfig, a dict of its fields or None, "
                                        r"got list"):
        MAPEClassifier(encoder=[32])


def test_config_is_json_safe_and_round_trips():
    config = EncoderConfig(conv_channels=[4, 8], preprocessing={"l_freq": 0.5})
    assert config.conv_channels == (4, 8)
    text = json.dumps(config.to_dict())
    assert EncoderConfig.from_dict(json.loads(text)) == config
    assert config.contract().l_freq == 0.5 and config.contract().sfreq == 200.0
    with pytest.raises(ValueError, match=r"preprocessing\['sfreq'\]=250.0 differs from sfreq=200.0"):
        EncoderConfig(preprocessing={"sfreq": 250.0}).contract()


def test_from_pretrained_overrides_reach_the_embedded_config(tmp_path):
    NeuralTokenizer(patch_size=25, embed_dim=32, depth=1, num_heads=2, num_codes=8, code_dim=4).save_pretrained(tmp_path)
    loaded = NeuralTokenizer.from_pretrained(tmp_path, dropout=0.1)
    assert loaded.encoder.config.dropout == 0.1 and loaded.get_config()["encoder"]["dropout"] == 0.1
    with pytest.raises(TypeError, match=r"unknown arguments \['n_layers'\]"):
        NeuralTokenizer.from_pretrained(tmp_path, n_layers=3)


def test_the_command_line_sets_every_encoder_field():
    settings = {f.name for f in dataclasses.fields(EncoderSettings)}
    assert settings == set(ENCODER_FIELDS) - {"sfreq", "preprocessing"}  # those come from --data.*
    for config in (TokenizerModelConfig(), PretrainModelConfig()):
        assert settings <= {f.name for f in dataclasses.fields(config)}
    cfg = apply_overrides(TokenizerModelConfig(), ["--qkv_bias=false", "--mlp_ratio=2", "--conv_channels=4,8",
                                                   "--kmeans_iters=3", "--layer_norm_eps=1e-5"])
    encoder = cfg.encoder_config(PreprocessConfig(sfreq=250.0, l_freq=0.5))
    assert (encoder.qkv_bias, encoder.mlp_ratio, encoder.conv_channels, encoder.layer_norm_eps) == (False, 2.0, (4, 8),
                                                                                                  1e-5)
    assert encoder.sfreq == 250.0 and encoder.preprocessing["l_freq"] == 0.5
    assert cfg.model_arguments()["kmeans_iters"] == 3 and not set(cfg.model_arguments()) & set(ENCODER_FIELDS)
