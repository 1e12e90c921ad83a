"""eegfm.registry: architectures apart from the pretrained weights that exist (loading a Hub tag: test_hub.py;
building and loading eegfm_small with its recipe: test_recipes.py)."""

import json
import logging
import subprocess
import sys

import pytest
import torch

from eegfm import MAPEEncoder, create_model, list_models, registry
from eegfm.recipes import recipe_path
from eegfm.registry import PretrainedTag, get_pretrained_tag

FAMILIES = {"mape_encoder": "MAPEEncoder", "neural_tokenizer": "NeuralTokenizer",
            "masked_pretrainer": "MaskedPretrainer", "mape_classifier": "MAPEClassifier"}


def test_every_family_is_registered_and_only_existing_weights_are_listed():
    names = list_models()
    expected = {f"{family}_{size}" for family in FAMILIES for size in ("tiny", "small", "base")}
    assert expected | {"eeg_alignment_tiny", "eeg_alignment_base", "eegfm_small"} == set(names)
    assert names == sorted(names)
    assert list_models(pretrained=True) == ["eegfm_small"]
    tags = {name: get_pretrained_tag(name) for name in list_models(pretrained=True)}
    # no weights are published yet: a tag names the folder its recipe builds, never a Hub repo
    assert all(tag.hub_id is None and tag.local_dir and tag.recipe for tag in tags.values())
    assert get_pretrained_tag("mape_encoder_tiny") is tags["eegfm_small"]  # an architecture's first tag
    assert get_pretrained_tag("mape_encoder_base") is None


def test_architectures_build_with_their_sizes_and_overrides():
    base = create_model("mape_encoder_base")
    assert (base.embed_dim, len(base.blocks)) == (200, 12)
    assert create_model("mape_encoder_small", patch_size=200).patch_size == 200
    classifier = create_model("mape_classifier_small", n_outputs=3)
    assert (classifier.encoder.embed_dim, len(classifier.encoder.blocks), classifier.n_outputs) == (128, 6, 3)
    for family, cls_name in FAMILIES.items():
        for size, dim in (("tiny", 64), ("small", 128), ("base", 200)):
            with torch.device("meta"):  # no memory, no initialisation: only the structure
                model = create_model(f"{family}_{size}")
            assert type(model).__name__ == cls_name
            encoder = model if isinstance(model, MAPEEncoder) else model.encoder
            assert encoder.embed_dim == dim, (family, size)


def test_video_architectures_are_imported_only_when_built():
    code = ("import sys, eegfm; eegfm.list_models(); eegfm.registry.get_pretrained_tag('eeg_alignment_base'); "
            "assert not {'eegfm_video', 'diffusers'} & set(sys.modules), 'imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    with torch.device("meta"):
        base = create_model("eeg_alignment_base")
    assert type(base).__name__ == "EEGAlignment" and base.encoder.embed_dim == 200
    tiny = create_model("eeg_alignment_tiny")
    out = tiny(torch.randn(2, 3, 400), torch.rand(3, 2) * 100)
    assert out.text_embeddings.shape == (2, 77, 768) and out.latents.shape == (2, 6, 4, 36, 64)


def test_a_tag_carries_the_preprocessing_contract_not_the_architecture():
    data = json.loads(recipe_path("eegfm-small").read_text())["data"]
    tag = get_pretrained_tag("eegfm_small")
    assert tag.preprocessing == {k: data[k] for k in ("sfreq", "l_freq", "h_freq", "notch_freq")}
    assert "preprocessing" not in registry._ARCHITECTURES[tag.architecture].config
    model = create_model("eegfm_small")  # the architecture, with the tag's contract
    assert {k: model.preprocessing.to_dict()[k] for k in tag.preprocessing} == tag.preprocessing
    assert create_model("eegfm_small", preprocessing={"l_freq": 0.5}).preprocessing.l_freq == 0.5


def test_pretrained_without_weights_says_which_names_have_them():
    with pytest.raises(ValueError) as info:
        create_model("mape_encoder_base", pretrained=True)
    assert str(info.value) == ("mape_encoder_base has no pretrained weights; names with weights: ['eegfm_small'] "
                               "(or pass checkpoint_path= a save_pretrained folder)")
    with pytest.raises(ValueError, match="Unknown model 'mape_encoder_bse'. Did you mean 'mape_encoder_base'"):
        create_model("mape_encoder_bse")
    with pytest.raises(ValueError, match="Unknown model 'eegfm_smal'. Did you mean 'eegfm_small'"):
        create_model("eegfm_smal", pretrained=True)


def test_an_architecture_loads_its_first_tag_and_a_different_contract_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    create_model("eegfm_small", preprocessing={"l_freq": 0.5}).save_pretrained(tmp_path / "runs/eegfm-small/encoder")
    with caplog.at_level(logging.WARNING, logger="eegfm.registry"):
        loaded = create_model("mape_encoder_tiny", pretrained=True)
    assert loaded.preprocessing.l_freq == 0.5  # the weights' own contract, as saved
    assert ("eegfm_small: the loaded weights were preprocessed with {'l_freq': 0.5}, not the tag's "
            "{'l_freq': 0.1}") in caplog.text
    caplog.clear()
    create_model("eegfm_small").save_pretrained(tmp_path / "runs/eegfm-small/encoder")
    with caplog.at_level(logging.WARNING, logger="eegfm.registry"):
        create_model("eegfm_small", pretrained=True)
    assert caplog.text == ""


def test_a_tag_needs_exactly_one_place_for_its_weights():
    contract = {"sfreq": 200.0}
    with pytest.raises(ValueError, match="a pretrained tag of mape_encoder_tiny needs exactly one of hub_id and local_dir"):
        PretrainedTag("mape_encoder_tiny", contract, "", hub_id="me/enc", local_dir="runs/enc", recipe="r")
    with pytest.raises(ValueError, match="a pretrained tag with local_dir='runs/enc' needs the recipe that builds it"):
        PretrainedTag("mape_encoder_tiny", contract, "", local_dir="runs/enc")
