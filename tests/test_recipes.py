import json

import pytest
import torch

from eegfm import MAPEEncoder, create_model, list_models
from eegfm.cli.main import main
from eegfm.recipes import list_recipes, recipe_path


def test_eegfm_small_is_a_packaged_recipe_and_a_registry_entry():
    assert "eegfm-small" in list_recipes() and "eegfm_small" in list_models()
    recipe = json.loads(recipe_path("eegfm-small").read_text())
    assert recipe["model"]["target"] == "spectrum" and recipe["train"]["run_dir"] == "runs/eegfm-small"
    model = create_model("eegfm_small")  # architecture only
    assert (model.embed_dim, len(model.blocks), model.patch_size) == (recipe["model"]["embed_dim"],
                                                                     recipe["model"]["depth"],
                                                                     recipe["model"]["patch_size"])


def test_unknown_recipe_names_the_packaged_ones():
    with pytest.raises(FileNotFoundError, match="no recipe named 'eegfm-smal'; packaged recipes: eegfm-small"):
        recipe_path("eegfm-smal")


def test_config_takes_a_recipe_name_and_the_run_records_its_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--config", "eegfm-small", "--data.sources=sample", "--data.l_freq=0.5",
                 "--train.steps=2", "--train.warmup_steps=1", "--train.progress=false"]) == 0
    saved = json.loads((tmp_path / "runs" / "eegfm-small" / "run_config.json").read_text())
    recipe = json.loads(recipe_path("eegfm-small").read_text())
    assert saved["model"] == recipe["model"] and saved["train"]["lr"] == recipe["train"]["lr"]
    # what the recipe wrote is what create_model(..., pretrained=True) loads from the working directory
    loaded = create_model("eegfm_small", pretrained=True)
    reference = MAPEEncoder.from_pretrained(tmp_path / "runs" / "eegfm-small" / "encoder")
    for (name, a), (_, b) in zip(loaded.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_missing_build_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"eegfm_small has no published weights and "
                                                r"runs/eegfm-small/encoder does not exist here: build them with "
                                                r"`eegfm pretrain --config eegfm-small`"):
        create_model("eegfm_small", pretrained=True)


def test_checkpoint_path_loads_any_folder(tmp_path):
    torch.manual_seed(0)
    model = create_model("eegfm_small")
    model.save_pretrained(tmp_path / "enc")
    loaded = create_model("eegfm_small", checkpoint_path=tmp_path / "enc")
    for (name, a), (_, b) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.real_data
def test_every_source_of_the_recipe_is_in_the_shared_data(shared_data):
    from eegfm.data.specs import sources_from_spec

    spec = json.loads(recipe_path("eegfm-small").read_text())["data"]["sources"]
    sources = list(sources_from_spec(spec.replace("../shared/data", str(shared_data))))
    # in-domain (RECIPE.md rows 26-27): the 19 Mental Arithmetic training subjects x 2 recordings, nothing else
    assert len(sources) == 38
    subjects = {(s.metadata["dataset"], str(s.metadata["subject"])) for s in sources}
    # never the downstream validation (MA 08,09,13,15,19) or test subjects (MA 26-31)
    held_out = {("eegmat_bids", f"{n:02d}") for n in (8, 9, 13, 15, 19, 26, 27, 28, 29, 30, 31)}
    assert not subjects & held_out, sorted(subjects & held_out)
    assert {d for d, _ in subjects} == {"eegmat_bids"} and len(subjects) == 19
