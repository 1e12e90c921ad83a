"""Model cards: what save_pretrained / push_to_hub write as README.md (eegfm.model_card)."""

import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard

from eegfm import MAPEClassifier, MAPEEncoder, MaskedPretrainer, NeuralTokenizer
from eegfm.hub import hub_card
from eegfm.model_card import (
    NOT_RECORDED,
    DataFacts,
    DownstreamResult,
    ModelCardFacts,
    render_model_card,
    update_model_card,
)

ENC = dict(patch_size=25, embed_dim=32, depth=1, num_heads=4, conv_channels=[4, 8], pool_bins=2)
PYPROJECT = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
HOMEPAGE = re.search(r'^Homepage\s*=\s*"([^"]+)"', PYPROJECT, re.M).group(1)
LICENSE = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]+)"', PYPROJECT, re.M).group(1)
BOILERPLATE = ("More Information Needed", "PytorchModelHubMixin", "pushed to the Hub", "braindecode.org")


def facts():
    return ModelCardFacts(
        data=DataFacts(sources=["eegmmidb", "moabb:BNCI2014_001"], hours=12.25, subjects=118, recordings=1530,
                       channel_counts=[64, 22, 64], caps=["BCI2000 64", "10-20, 22 channels"]),
        recipe="eegfm pretrain --data.sources=eegmmidb --train.steps=2000",
        base_model="runs/pretrain/encoder",
        training={"steps": 2000, "seed": 0},
        downstream=[DownstreamResult.from_scores("BNCI2014_001 4-class MI, cross-subject", "balanced accuracy",
                                                 {0: 0.61, 1: 0.63, 2: 0.62}),
                    DownstreamResult("BNCI2014_001 4-class MI, cross-subject", "balanced accuracy", 0.52, 0.01,
                                     [0, 1, 2], model="from scratch")],
        limitations=["Trained on motor imagery only."],
    )


def _card(folder) -> str:
    return (Path(folder) / "README.md").read_text()


def _assert_eegfm_card(text: str, model_class: str):
    for phrase in BOILERPLATE:
        assert phrase not in text, phrase
    card = ModelCard(text)
    assert card.data.library_name == "eegfm"
    assert card.data.license == LICENSE.lower()
    assert {"eeg", "eegfm", model_class} <= set(card.data.tags)
    assert f"- Code: {HOMEPAGE}\n" in text and f"- Docs: {HOMEPAGE}#readme\n" in text
    assert f"- Issues: {HOMEPAGE}/issues\n" in text
    assert f"Licence: {LICENSE}" in text
    assert f"Model class: `{model_class}`" in text and f"{model_class}.from_pretrained(" in text


def test_save_pretrained_writes_the_facts_given(tmp_path):
    model = MAPEEncoder(**ENC)
    model.save_pretrained(tmp_path, card=facts())
    text = _card(tmp_path)
    _assert_eegfm_card(text, "MAPEEncoder")
    assert "| Sources | eegmmidb, moabb:BNCI2014_001 |" in text
    assert "| Hours of EEG | 12.2 |" in text or "| Hours of EEG | 12.3 |" in text
    assert "| Subjects | 118 |" in text and "| Recordings | 1530 |" in text
    assert "| Channel counts | 22, 64 |" in text
    assert "| Caps / montages | BCI2000 64, 10-20, 22 channels |" in text
    assert "```bash\neegfm pretrain --data.sources=eegmmidb --train.steps=2000\n```" in text
    assert "- Initialised from: runs/pretrain/encoder" in text and "- steps: 2000" in text
    assert ("| BNCI2014_001 4-class MI, cross-subject | this model | balanced accuracy | 0, 1, 2 (n=3) | "
            "0.620 ± 0.010 |") in text
    assert "| from scratch | balanced accuracy | 0, 1, 2 (n=3) | 0.520 ± 0.010 |" in text
    assert "- Trained on motor imagery only." in text and "not a medical device" in text
    assert "| l_freq | 0.1 |" in text and "| units | uV |" in text  # the preprocessing contract
    assert f"- Parameters: {sum(p.numel() for p in model.parameters()):,}\n" in text
    assert NOT_RECORDED not in text  # every fact was given
    card = ModelCard(text)
    assert card.data.pipeline_tag == "feature-extraction"
    assert "base_model" not in card.data.to_dict()  # a local folder is not a Hub repo id


def test_unknown_facts_are_written_as_not_recorded(tmp_path):
    MAPEEncoder(**ENC).save_pretrained(tmp_path)
    text = _card(tmp_path)
    _assert_eegfm_card(text, "MAPEEncoder")
    for row in ("Sources", "Hours of EEG", "Subjects", "Recordings", "Channel counts", "Caps / montages"):
        assert f"| {row} | not recorded |" in text
    assert "Command: not recorded." in text and "- Initialised from: not recorded" in text
    assert "## Downstream results\n\nNot recorded." in text
    assert "- Model-specific limitations: not recorded." in text
    assert "| sfreq | 200.0 |" in text  # the contract is known from the model itself


@pytest.mark.parametrize("make, model_class", [
    (lambda: MAPEEncoder(**ENC), "MAPEEncoder"),
    (lambda: MAPEClassifier(n_outputs=2, encoder=ENC), "MAPEClassifier"),
    (lambda: NeuralTokenizer(patch_size=25, embed_dim=32, depth=1, num_heads=2, code_dim=8, num_codes=16,
                             decoder_depth=1), "NeuralTokenizer"),
    (lambda: MaskedPretrainer(patch_size=25, embed_dim=32, depth=1, num_heads=2, num_codes=8), "MaskedPretrainer"),
])
def test_every_eegfm_model_writes_the_card(tmp_path, make, model_class):
    model = make()
    model.save_pretrained(tmp_path, card=facts())
    text = _card(tmp_path)
    _assert_eegfm_card(text, model_class)
    assert "| Subjects | 118 |" in text and "| l_freq | 0.1 |" in text


def test_the_braindecode_wrapper_writes_the_card_and_loads(tmp_path):
    import mne

    from eegfm.finetune.braindecode import EEGMirror

    info = mne.create_info(["Fz", "Cz", "Pz"], 200.0, "eeg")
    model = EEGMirror(n_outputs=2, chs_info=info["chs"], n_times=200,
                      encoder=dict(embed_dim=16, depth=1, num_heads=2, patch_size=50)).eval()
    model.card_facts = facts()
    model.save_pretrained(tmp_path)
    text = _card(tmp_path)
    _assert_eegfm_card(text, "EEGMirror")
    assert "from eegfm.finetune.braindecode import EEGMirror" in text
    assert "3 channels: Fz, Cz, Pz" in text and "| Subjects | 118 |" in text
    assert "2 outputs; class names: not recorded." in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = EEGMirror.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 200)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_classifier_card_lists_its_classes(tmp_path):
    MAPEClassifier(n_outputs=3, encoder=ENC, class_names=["left hand", "right hand", "feet"]).save_pretrained(tmp_path)
    text = _card(tmp_path)
    assert "## Classes" in text and "| 0 | left hand |\n| 1 | right hand |\n| 2 | feet |" in text
    MAPEClassifier(n_outputs=2, encoder=ENC).save_pretrained(tmp_path / "unnamed")
    assert "2 outputs; class names: not recorded." in _card(tmp_path / "unnamed")


def test_card_facts_attribute_is_kept_and_an_explicit_card_wins(tmp_path):
    model = MAPEEncoder(**ENC)
    model.card_facts = facts()
    model.save_pretrained(tmp_path / "a")
    assert "| Subjects | 118 |" in _card(tmp_path / "a")
    model.save_pretrained(tmp_path / "b", card=ModelCardFacts(data=DataFacts(subjects=7)))
    assert "| Subjects | 7 |" in _card(tmp_path / "b")
    assert model.card_facts.data.subjects == 118  # one call's card does not replace the attribute


def test_saving_again_replaces_a_stale_card(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\nold card")
    MAPEEncoder(**ENC).save_pretrained(tmp_path, card=facts())
    text = _card(tmp_path)
    assert "old card" not in text and "| Subjects | 118 |" in text


def test_push_to_hub_uploads_the_card_with_the_repo_id(tmp_path, monkeypatch):
    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        uploaded["config"] = json.loads((Path(folder_path) / "config.json").read_text())
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)
    model = MAPEClassifier(n_outputs=2, encoder=ENC, class_names=["rest", "task"])
    model.push_to_hub("me/eeg-clf", token="hf_fake", card=facts())
    text = uploaded["card"]
    _assert_eegfm_card(text, "MAPEClassifier")
    assert 'MAPEClassifier.from_pretrained("me/eeg-clf")' in text
    assert "| Subjects | 118 |" in text and "| 1 | task |" in text
    assert uploaded["config"]["class_names"] == ["rest", "task"]
    assert uploaded["config"]["model_class"] == "MAPEClassifier"


def test_round_trip_from_the_hub_cache_offline(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1: a published classifier (weights, classes, card) loads from the local cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = MAPEClassifier(n_outputs=2, encoder=ENC, class_names=["rest", "task"]).eval()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--me--eeg-clf"
    model.save_pretrained(repo / "snapshots" / commit, card=facts())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = MAPEClassifier.from_pretrained("me/eeg-clf", cache_dir=tmp_path / "cache")
    assert loaded.class_names == ["rest", "task"]
    x, pos = torch.randn(2, 4, 100), torch.rand(4, 2) * 100
    torch.testing.assert_close(loaded(x, pos), model(x, pos), rtol=0, atol=0)
    card = ModelCard.load(huggingface_hub.hf_hub_download("me/eeg-clf", "README.md", cache_dir=tmp_path / "cache"))
    assert card.data.library_name == "eegfm" and "| 0 | rest |" in card.text


def test_update_model_card_rewrites_a_saved_folder(tmp_path):
    model = MAPEClassifier(n_outputs=2, encoder=ENC, class_names=["rest", "task"])
    model.save_pretrained(tmp_path)
    assert "| Subjects | not recorded |" in _card(tmp_path)
    path = update_model_card(tmp_path, facts())
    assert path == tmp_path / "README.md"
    text = _card(tmp_path)
    _assert_eegfm_card(text, "MAPEClassifier")
    assert "| Subjects | 118 |" in text and "| 1 | task |" in text
    assert f"- Parameters: {sum(p.numel() for p in model.parameters()):,}" in text  # from the weights file
    assert MAPEClassifier.from_pretrained(tmp_path).class_names == ["rest", "task"]  # the model is untouched


def test_update_model_card_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json does not exist: .* is not a folder written by "
                                                r"save_pretrained\(\)"):
        update_model_card(tmp_path, facts())
    MAPEEncoder(**ENC).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["model_class"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json does not record its model class .*pass "
                                         r"model_class='MAPEEncoder'"):
        update_model_card(tmp_path, facts())
    update_model_card(tmp_path, facts(), model_class="MAPEEncoder")
    assert "Model class: `MAPEEncoder`" in _card(tmp_path)


def test_data_facts_from_a_corpus():
    def entry(n_channels, seconds, **metadata):
        return SimpleNamespace(meta={"n_channels": n_channels, "n_times": int(seconds * 200), "sfreq": 200.0,
                                     "metadata": metadata})

    corpus = SimpleNamespace(entries=[entry(64, 1800, dataset="eegbci", subject=1),
                                      entry(64, 1800, dataset="eegbci", subject=2),
                                      entry(22, 3600, dataset="BNCI2014_001", subject=1)])
    data = DataFacts.from_corpus(corpus)
    assert (data.hours, data.subjects, data.recordings) == (2.0, 3, 3)
    assert data.channel_counts == [22, 64] and data.sources == ["BNCI2014_001", "eegbci"]
    unnamed = DataFacts.from_corpus([entry(19, 360), entry(19, 360, subject=4)], sources=["my files"])
    assert unnamed.subjects is None and unnamed.sources == ["my files"] and unnamed.hours == 0.2


def test_downstream_mean_and_std():
    row = DownstreamResult.from_scores("task", "AUROC", {3: 0.5, 7: 0.7})
    assert row.seeds == [3, 7] and row.mean == pytest.approx(0.6) and row.std == pytest.approx(0.1414, abs=1e-4)
    single = DownstreamResult.from_scores("task", "AUROC", {0: 0.8})
    assert single.std == 0.0


@pytest.mark.parametrize("build, message", [
    (lambda: DataFacts(hours=-1), r"^DataFacts.hours must be a non-negative number or None, got DataFacts.hours=-1$"),
    (lambda: DataFacts(subjects=2.5), r"^DataFacts.subjects must be a non-negative int or None"),
    (lambda: DataFacts(sources="eegbci"), r"^DataFacts.sources must be a list of str, got 'eegbci'$"),
    (lambda: DataFacts(channel_counts=[0]), r"^DataFacts.channel_counts must be a list of positive int"),
    (lambda: DownstreamResult("t", "acc", 0.5, -0.1, [0]), r"^DownstreamResult.std must be >= 0"),
    (lambda: DownstreamResult("t", "acc", float("nan"), 0.1, [0]), r"^DownstreamResult.mean must be a finite"),
    (lambda: DownstreamResult("t", "acc", 0.5, 0.1, []), r"^DownstreamResult.seeds must be a non-empty list of int"),
    (lambda: DownstreamResult("t", "acc", 0.5, 0.1, [1, 1]), r"^DownstreamResult.seeds repeats a seed: \[1, 1\]"),
    (lambda: DownstreamResult("", "acc", 0.5, 0.1, [1]), r"^DownstreamResult.task must be a non-empty str"),
    (lambda: DownstreamResult.from_scores("t", "acc", {}), r"^scores must be a non-empty \{seed: score\} dict"),
    (lambda: ModelCardFacts(data={"hours": 1}), r"^ModelCardFacts.data must be a DataFacts, got dict$"),
    (lambda: ModelCardFacts(downstream=[{"task": "t"}]), r"^ModelCardFacts.downstream must be a list of "
                                                         r"DownstreamResult"),
    (lambda: ModelCardFacts(limitations="short"), r"^ModelCardFacts.limitations must be a list of str"),
    (lambda: ModelCardFacts(recipe=["eegfm", "pretrain"]), r"^ModelCardFacts.recipe must be a str or None"),
])
def test_bad_facts_are_one_line_errors(build, message):
    with pytest.raises(ValueError, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_a_card_that_is_not_model_card_facts_is_refused(tmp_path):
    model = MAPEEncoder(**ENC)
    with pytest.raises(TypeError, match=r"^card must be an eegfm.model_card.ModelCardFacts, got dict$"):
        model.save_pretrained(tmp_path, card={"hours": 3})
    model.card_facts = "12 hours"
    with pytest.raises(TypeError, match=r"^card facts must be an eegfm.model_card.ModelCardFacts, got str$"):
        model.save_pretrained(tmp_path)


def test_hub_metadata_comes_from_pyproject():
    meta = hub_card()
    assert meta["repo_url"] == HOMEPAGE and meta["license"] == LICENSE.lower()
    assert meta["library_name"] == "eegfm" and meta["docs_url"] == f"{HOMEPAGE}#readme"


def test_base_model_metadata_only_for_a_hub_repo_id():
    card = render_model_card("MAPEClassifier", {"n_outputs": 2}, ModelCardFacts(base_model="eegfm/mape-encoder-base"))
    assert card.data.base_model == "eegfm/mape-encoder-base"
    assert "- Initialised from: eegfm/mape-encoder-base" in card.text
