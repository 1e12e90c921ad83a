import dataclasses
import json
import shutil

import huggingface_hub
import pytest
import torch

from safetensors.torch import load_file, save_file

from eegfm import (EncoderConfig, MAPEClassifier, MAPEEncoder, ModelLoadError, NeuralTokenizer,
                   create_model, registry)
from eegfm.hub import CONFIG_VERSION
from eegfm.registry import PretrainedTag

TINY = dict(patch_size=25, embed_dim=32, depth=2, num_heads=4, conv_channels=[4, 8], pool_bins=2)
TOKENIZER = dict(patch_size=25, embed_dim=32, depth=1, num_heads=2, code_dim=8, num_codes=16, decoder_depth=1)


@pytest.fixture
def model():
    return MAPEEncoder(**TINY).eval()


@pytest.fixture
def inputs():
    return torch.randn(2, 5, 100) * 20, torch.rand(5, 2) * 100


def test_config_holds_every_constructor_argument_and_the_model_class(tmp_path, model):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("model_class") == "MAPEEncoder"
    assert config.pop("config_version") == CONFIG_VERSION
    assert sorted(config) == sorted(f.name for f in dataclasses.fields(EncoderConfig))
    assert config["conv_channels"] == [4, 8] and config["embed_dim"] == 32
    loaded = MAPEEncoder.from_pretrained(tmp_path)
    assert loaded.get_config() == config
    again = tmp_path / "again"
    loaded.save_pretrained(again)
    assert json.loads((again / "config.json").read_text()) == {**config, "model_class": "MAPEEncoder",
                                                                 "config_version": CONFIG_VERSION}


def test_a_config_without_model_class_still_loads(tmp_path, model, inputs):
    """Folders saved before config.json recorded the model class."""
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["model_class"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert torch.equal(MAPEEncoder.from_pretrained(tmp_path)(*inputs).cls, model(*inputs).cls)


def test_a_folder_of_another_model_class_is_refused_by_name(tmp_path):
    NeuralTokenizer(**TOKENIZER).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"config.json holds a NeuralTokenizer, not a MAPEEncoder: load it "
                                             r"with NeuralTokenizer.from_pretrained"):
        MAPEEncoder.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"holds a NeuralTokenizer, not a MAPEClassifier or MAPEEncoder"):
        MAPEClassifier.from_pretrained(tmp_path, n_outputs=2)


def test_config_overrides(tmp_path, model):
    """Unknown arguments and keys: tests/test_models_common.py (every model)."""
    model.save_pretrained(tmp_path)
    assert MAPEEncoder.from_pretrained(tmp_path, dropout=0.1).get_config()["dropout"] == 0.1


def test_loading_is_strict(tmp_path, model):
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"do not fit MAPEEncoder built from its config: missing \d+ "
                                             r"\(e.g. 'blocks.2.*, \.\.\.\), unexpected 0"):
        MAPEEncoder.from_pretrained(tmp_path, depth=3)
    partial = MAPEEncoder.from_pretrained(tmp_path, depth=3, strict=False)
    assert torch.equal(partial.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)


def test_missing_files_and_repos_give_clear_errors(tmp_path, model):
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors does not exist.*save_pretrained"):
        MAPEEncoder.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache and offline mode is on"):
        MAPEEncoder.from_pretrained("eegfm/no-such-model", cache_dir=tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="neither an existing local directory nor a valid Hub repo id"):
        MAPEEncoder.from_pretrained(str(tmp_path / "no" / "such" / "dir"))


def _populate_cache(cache, repo_id, folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """Lay files out the way huggingface_hub's cache does (refs/main -> snapshots/<commit>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


def test_loads_from_prepopulated_cache_offline(tmp_path, monkeypatch, model, inputs):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model.save_pretrained(tmp_path / "saved")
    _populate_cache(tmp_path / "cache", "eegfm/mape-encoder-tiny", tmp_path / "saved")
    loaded = MAPEEncoder.from_pretrained("eegfm/mape-encoder-tiny", cache_dir=tmp_path / "cache")
    assert torch.equal(loaded(*inputs).cls, model(*inputs).cls)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    # a pretrained tag published on the Hub loads from there (none is registered until weights are published)
    tag = PretrainedTag("mape_encoder_tiny", {"sfreq": 200.0}, "a published tag", hub_id="eegfm/mape-encoder-tiny")
    monkeypatch.setitem(registry._PRETRAINED, "published_tiny", tag)
    registered = create_model("published_tiny", pretrained=True, **TINY)
    assert torch.equal(registered(*inputs).cls, model(*inputs).cls)


def test_push_to_hub_uploads_config_and_safetensors(tmp_path, monkeypatch, model):
    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())
        uploaded["card"] = (__import__("pathlib").Path(folder_path) / "README.md").read_text()
        return "https://huggingface.co/me/enc/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)
    model.push_to_hub("me/enc", token="hf_fake")
    assert uploaded["repo_id"] == "me/enc"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert "library_name: eegfm" in uploaded["card"] and "eeg" in uploaded["card"]


@pytest.mark.parametrize("text, message", [
    ("{not json", r"config.json is not valid JSON"),
    ("null", r"config.json must hold a JSON object of constructor arguments, got NoneType"),
    ('{"embed_dim": "wide"}', r"config.json: cannot build MAPEEncoder from it"),
])
def test_a_broken_config_names_the_file(tmp_path, model, text, message):
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match=message):
        MAPEEncoder.from_pretrained(tmp_path)


def test_a_huge_config_fails_before_the_model_is_built(tmp_path, model):
    import time

    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "depth": 2000, "embed_dim": 1024, "num_heads": 8}))
    start = time.process_time()  # CPU time: robust to other load on the machine
    with pytest.raises(ModelLoadError, match=r"do not fit MAPEEncoder built from its config"):
        MAPEEncoder.from_pretrained(tmp_path)
    assert time.process_time() - start < 20  # 25 G parameters were never allocated


def test_corrupt_weights_name_the_file(tmp_path, model):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"model.safetensors is not a readable safetensors file"):
        MAPEEncoder.from_pretrained(tmp_path)


# ---------------------------------------------------------------- strict loading
# One missing or unexpected weight fails every from_pretrained: tests/test_models_common.py. Here, the
# other ways in (a classifier on an encoder folder, braindecode's pickle fallback, a wrong shape).


def _eegmirror():
    import mne

    from eegfm.finetune.braindecode import EEGMirror

    info = mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg")
    return EEGMirror(n_outputs=2, chs_info=info["chs"], n_times=200,
                     encoder=dict(embed_dim=16, depth=1, num_heads=2, patch_size=50))


def test_a_classifier_on_an_encoder_folder_is_strict_too(tmp_path):
    MAPEEncoder(**TINY).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["cls_token"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"model.safetensors do not fit MAPEEncoder .*missing 1 \('cls_token'\)"):
        MAPEClassifier.from_pretrained(tmp_path, n_outputs=2)


def test_the_eegmirror_hub_pickle_fallback_is_strict(tmp_path):
    """A Hub repo without model.safetensors falls back to pytorch_model.bin: strict as well."""
    from eegfm.finetune.braindecode import EEGMirror

    model = _eegmirror().eval()
    state = {k: v for k, v in model.state_dict().items() if k != "final_layer.bias"}
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model.bin do not match EEGMirror: missing 1 "
                                             r"\('final_layer.bias'\), unexpected 0"):
        EEGMirror._load_as_pickle(_eegmirror(), str(tmp_path / "pytorch_model.bin"), "cpu", True)
    EEGMirror._load_as_pickle(_eegmirror(), str(tmp_path / "pytorch_model.bin"), "cpu", False)


def test_a_weight_of_another_shape_is_one_line_on_the_mixin_path(tmp_path):
    from eegfm.finetune.braindecode import EEGMirror

    model = _eegmirror().eval()
    state = model.state_dict()
    state["final_layer.weight"] = torch.zeros(5, state["final_layer.weight"].shape[1])
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"model.safetensors do not fit EEGMirror: size mismatch for "
                                             r"final_layer.weight") as caught:
        EEGMirror._load_as_safetensor(_eegmirror(), str(tmp_path / "model.safetensors"), "cpu", True)
    assert "\n" not in str(caught.value)
