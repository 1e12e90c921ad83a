"""MAPEClassifier: head API, pooling, Hub round trips, head replacement, layer ids.

The checks every model passes (save/load, padding, a recording alone vs padded, channel
permutation, determinism, bf16, input errors) are in tests/test_models_common.py."""

import json

import pytest
import torch

from eegfm import MAPEClassifier, MAPEEncoder, ModelLoadError, proportion_coordinates

ENC = dict(embed_dim=32, depth=2, num_heads=2, patch_size=50)
POS = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz", "Oz"]), dtype=torch.float32)


def _x(batch=3):
    return torch.randn(batch, 4, 200)


@pytest.mark.parametrize("pooling,width", [("mean", 32), ("cls", 32), ("cls+mean", 64)])
def test_pooling_gives_the_documented_features(pooling, width):
    model = MAPEClassifier(n_outputs=3, encoder=ENC, pooling=pooling).eval()
    x = _x()
    feats = model.forward_features(x, POS)
    assert feats.shape == (3, width) and model.num_features == width
    out = model.encoder(x, POS)
    expected = {"mean": out.pooled(), "cls": out.cls, "cls+mean": torch.cat((out.cls, out.pooled()), -1)}[pooling]
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x, POS), model.head(feats))


def test_cls_pooling_runs_the_last_blocks_mlp_on_the_cls_token_only():
    model = MAPEClassifier(n_outputs=2, encoder=ENC, pooling="cls").eval()
    shapes = []
    model.encoder.blocks[-1].mlp.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    model(_x(), POS)
    assert shapes == [(3, 1, 32)]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pooling must be one of"):
        MAPEClassifier(encoder=ENC, pooling="max")
    with pytest.raises(ValueError, match="n_outputs must be a positive int"):
        MAPEClassifier(n_outputs=0, encoder=ENC)
    with pytest.raises(ValueError, match="n_outputs must be a positive int"):
        MAPEClassifier(encoder=ENC).reset_head(-1)


def test_from_pretrained_with_new_n_outputs_replaces_only_the_head(tmp_path):
    model = MAPEClassifier(n_outputs=3, encoder=ENC).eval()
    model.save_pretrained(tmp_path)
    loaded = MAPEClassifier.from_pretrained(tmp_path, n_outputs=5)
    assert loaded.n_outputs == 5 and loaded.head.weight.shape == (5, 32)
    x = _x()
    torch.testing.assert_close(loaded.forward_features(x, POS), model.forward_features(x, POS), rtol=0, atol=0)
    # the replaced head is what gets saved next
    loaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["n_outputs"] == 5
    assert MAPEClassifier.from_pretrained(tmp_path / "again").head.out_features == 5


def test_from_pretrained_on_an_encoder_puts_a_new_head_on_its_weights(tmp_path):
    encoder = MAPEEncoder(**ENC).eval()
    encoder.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a MAPEEncoder, not a classifier: pass n_outputs="):
        MAPEClassifier.from_pretrained(tmp_path)
    model = MAPEClassifier.from_pretrained(tmp_path, n_outputs=4, pooling="cls")
    x = _x()
    torch.testing.assert_close(model.forward_features(x, POS), encoder.forward_cls(x, POS), rtol=0, atol=0)
    assert model(x, POS).shape == (3, 4)


def test_from_pretrained_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="is not a folder written by save_pretrained"):
        MAPEClassifier.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        MAPEClassifier.from_pretrained("eegfm/no-such-model", n_outputs=2)


def test_from_pretrained_reads_the_hf_cache_offline(tmp_path, monkeypatch):
    """A Hub repo id resolves from a pre-populated cache with HF_HUB_OFFLINE=1 (real loading code)."""
    from huggingface_hub import constants

    encoder = MAPEEncoder(**ENC).eval()
    repo = tmp_path / "hub" / "models--someone--tiny-encoder"
    snapshot = repo / "snapshots" / ("a" * 40)
    encoder.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = MAPEClassifier.from_pretrained("someone/tiny-encoder", n_outputs=2, cache_dir=tmp_path / "hub")
    x = _x()
    torch.testing.assert_close(model.encoder(x, POS).tokens, encoder(x, POS).tokens, rtol=0, atol=0)


def test_layer_ids_follow_depth():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    ids = {name: model.layer_id(name) for name, _ in model.named_parameters()}
    assert ids["encoder.cls_token"] == 0
    assert all(v == 0 for k, v in ids.items() if k.startswith("encoder.patch_embed"))
    assert ids["encoder.blocks.0.attn.qkv.weight"] == 1 and ids["encoder.blocks.1.mlp.0.weight"] == 2
    assert ids["encoder.norm.weight"] == ids["head.weight"] == 3 == model.num_layers - 1


# ---------------------------------------------------------------- class names
def test_class_names_are_saved_with_the_model_and_round_trip(tmp_path):
    model = MAPEClassifier(n_outputs=3, encoder=ENC, class_names=["left", "right", "feet"]).eval()
    assert model.class_names == ["left", "right", "feet"]
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["class_names"] == ["left", "right", "feet"] and config["model_class"] == "MAPEClassifier"
    loaded = MAPEClassifier.from_pretrained(tmp_path)
    assert loaded.class_names == ["left", "right", "feet"]
    assert "| 2 | feet |" in (tmp_path / "README.md").read_text()  # the card lists them
    renamed = MAPEClassifier.from_pretrained(tmp_path, class_names=["L", "R", "F"])
    assert renamed.class_names == ["L", "R", "F"]
    x = _x()
    torch.testing.assert_close(renamed(x, POS), model(x, POS), rtol=0, atol=0)


def test_a_config_saved_before_class_names_still_loads(tmp_path):
    model = MAPEClassifier(n_outputs=2, encoder=ENC).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["class_names"], config["model_class"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = MAPEClassifier.from_pretrained(tmp_path)
    assert loaded.class_names is None
    x = _x()
    torch.testing.assert_close(loaded(x, POS), model(x, POS), rtol=0, atol=0)


def test_a_new_head_drops_the_old_class_names_unless_given(tmp_path):
    MAPEClassifier(n_outputs=2, encoder=ENC, class_names=["rest", "task"]).save_pretrained(tmp_path)
    assert MAPEClassifier.from_pretrained(tmp_path, n_outputs=3).class_names is None
    wider = MAPEClassifier.from_pretrained(tmp_path, n_outputs=3, class_names=["a", "b", "c"])
    assert wider.class_names == ["a", "b", "c"] and wider.get_config()["class_names"] == ["a", "b", "c"]
    same = MAPEClassifier.from_pretrained(tmp_path, n_outputs=2)
    assert same.class_names == ["rest", "task"]
    same.reset_head(4)
    assert same.class_names is None and same.get_config()["class_names"] is None


def test_class_names_on_a_pretrained_encoder(tmp_path):
    MAPEEncoder(**ENC).save_pretrained(tmp_path)
    model = MAPEClassifier.from_pretrained(tmp_path, n_outputs=2, class_names=["eyes open", "eyes closed"])
    assert model.class_names == ["eyes open", "eyes closed"]
    model.save_pretrained(tmp_path / "clf")
    assert MAPEClassifier.from_pretrained(tmp_path / "clf").class_names == ["eyes open", "eyes closed"]


@pytest.mark.parametrize("names, message", [
    (["a", "b", "c"], r"^class_names has 3 names for n_outputs=2: \['a', 'b', 'c'\]; give one name per output"),
    (["a"], r"^class_names has 1 names for n_outputs=2"),
    ("ab", r"^class_names must be a list of str \(one per output\) or None, got 'ab'$"),
    (["a", 1], r"^class_names must be non-empty strings, got \['a', 1\]$"),
    (["a", ""], r"^class_names must be non-empty strings"),
    (["a", "a"], r"^class_names must be distinct, \['a'\] repeat: \['a', 'a'\]$"),
])
def test_bad_class_names_are_one_line_errors(names, message):
    with pytest.raises(ValueError, match=message) as caught:
        MAPEClassifier(n_outputs=2, encoder=ENC, class_names=names)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=message):
        MAPEClassifier(n_outputs=3, encoder=ENC).reset_head(2, names)


def test_a_saved_config_with_mismatched_class_names_names_the_file(tmp_path):
    MAPEClassifier(n_outputs=2, encoder=ENC, class_names=["a", "b"]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "class_names": ["a", "b", "c"]}))
    with pytest.raises(ModelLoadError, match=r"config.json: cannot build MAPEClassifier from it: class_names has 3 "
                                             r"names for n_outputs=2"):
        MAPEClassifier.from_pretrained(tmp_path)
