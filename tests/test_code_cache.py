"""Tokenizer codes computed once in fp32, cached beside the recordings, and fed to pre-training."""

import json

import numpy as np
import pytest
import torch

from eegfm import NeuralTokenizer
from eegfm.data import EEGCorpus, Recording, cache_codes, tokenizer_fingerprint
from eegfm.models.pretrainer import MaskedPretrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOK = dict(patch_size=50, embed_dim=16, depth=1, num_heads=2, code_dim=8, num_codes=32, decoder_depth=1)


def _recording(name, n_chans, seconds, seed):
    rng = np.random.default_rng(seed)
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "F3", "F4"][:n_chans]
    data = (rng.standard_normal((n_chans, int(seconds * 200))) * rng.uniform(5, 30, (n_chans, 1))).astype(np.float32)
    return Recording(data, names, 200.0, name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    recs = [_recording("a", 8, 6.0, 0), _recording("b", 3, 5.0, 1), _recording("c", 5, 3.0, 2)]
    return EEGCorpus(recs, tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    tok = NeuralTokenizer(**TOK)
    batch = torch.randn(4, 8, 400) * 20
    tok(batch, torch.rand(8, 2) * 100)  # k-means initialises the codebook: codes differ between tokens
    return tok.eval()


def _windows(corpus):
    return corpus.windows(1.0, 0.5)  # overlapping windows: each entry has several


def test_cached_codes_equal_online_fp32_codes(corpus, tokenizer):
    windows = _windows(corpus)
    coded = cache_codes(windows, tokenizer, corpus.cache.root, progress=False)
    loader = corpus.loader(coded, batch_size=5, patch_size=TOK["patch_size"], seed=0)
    seen = 0
    for batch in loader:
        online, mask = tokenizer.tokenize(**batch.encoder_inputs())
        assert batch.targets.shape == online.shape and batch.targets.dtype == torch.long
        assert torch.equal(batch.targets, online)  # -1 at the same padded tokens too
        assert (batch.targets[~mask] == -1).all()
        seen += len(batch.x)
    assert seen == len(windows)
    assert len(set(np.concatenate([c.ravel() for c in coded.codes]).tolist())) > 3  # not one code everywhere


def test_second_run_reads_the_cache_without_the_tokenizer(corpus, tokenizer, monkeypatch):
    windows = _windows(corpus)
    first = cache_codes(windows, tokenizer, corpus.cache.root, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the tokenizer ran although every window's codes were cached")

    monkeypatch.setattr(tokenizer, "tokenize", fail)
    again = cache_codes(windows, tokenizer, corpus.cache.root, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(first.codes, again.codes))


def test_a_stale_cache_is_never_read(corpus, tokenizer, tmp_path):
    windows = _windows(corpus)
    cache_codes(windows, tokenizer, tmp_path, progress=False)
    other = NeuralTokenizer(**TOK)
    other.load_state_dict(tokenizer.state_dict())
    assert tokenizer_fingerprint(other) == tokenizer_fingerprint(tokenizer)
    with torch.no_grad():
        other.quantizer.codebook.mul_(-1.0)  # another tokenizer: other codes
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)
    coded = cache_codes(windows, other.eval(), tmp_path, progress=False)
    batch = next(iter(corpus.loader(coded, batch_size=4, patch_size=TOK["patch_size"], shuffle=False)))
    assert torch.equal(batch.targets, other.tokenize(**batch.encoder_inputs())[0])
    assert len(list((tmp_path / "codes").iterdir())) == 2  # one folder per tokenizer, never mixed
    # other windows (stride) -> another folder too
    cache_codes(corpus.windows(1.0), tokenizer, tmp_path, progress=False)
    assert len(list((tmp_path / "codes").iterdir())) == 3


def test_a_damaged_file_is_recomputed_and_a_wrong_spec_is_refused(corpus, tokenizer, tmp_path):
    windows = _windows(corpus)
    first = [np.array(c) for c in cache_codes(windows, tokenizer, tmp_path, progress=False).codes]  # copies
    folder = next((tmp_path / "codes").iterdir())
    victim = sorted(folder.glob("*.npy"))[0]
    victim.write_bytes(b"truncated")
    again = cache_codes(windows, tokenizer, tmp_path, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(first, again.codes))
    spec = json.loads((folder / "spec.json").read_text())
    (folder / "spec.json").write_text(json.dumps({**spec, "window": 1}))
    with pytest.raises(RuntimeError, match="code cache .* holds .*delete that folder"):
        cache_codes(windows, tokenizer, tmp_path, progress=False)


def test_targets_are_fp32_codes_under_bf16_autocast(corpus, tokenizer):
    pre = MaskedPretrainer(patch_size=TOK["patch_size"], embed_dim=16, depth=1, num_heads=2,
                           num_codes=TOK["num_codes"]).attach_tokenizer(tokenizer)
    batch = next(iter(corpus.loader(_windows(corpus), batch_size=8, patch_size=TOK["patch_size"], shuffle=False)))
    args = (batch.x, batch.positions, batch.channel_mask, batch.n_times)
    plain = pre._targets(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = pre._targets(*args)
    assert torch.equal(plain, under_autocast)
    # what the guard prevents: the tokenizer itself in bf16 gives other codes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        raw_bf16, _ = tokenizer.tokenize(batch.x, batch.positions, channel_mask=batch.channel_mask,
                                         n_times=batch.n_times)
    assert not torch.equal(raw_bf16, plain)


def test_pretraining_uses_cached_targets(corpus, tokenizer, monkeypatch):
    pre = MaskedPretrainer(patch_size=TOK["patch_size"], embed_dim=16, depth=1, num_heads=2,
                           num_codes=TOK["num_codes"]).attach_tokenizer(tokenizer)
    coded = cache_codes(_windows(corpus), tokenizer, corpus.cache.root, progress=False)
    batch = next(iter(corpus.loader(coded, batch_size=6, patch_size=TOK["patch_size"], seed=1)))
    expected = pre(**batch.encoder_inputs(), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(tokenizer, "tokenize", lambda *a, **k: pytest.fail("tokenizer ran despite cached codes"))
    torch.manual_seed(0)
    step = pre.training_step(batch)
    assert torch.isfinite(step["loss_sum"])
    got = pre(**batch.encoder_inputs(), targets=batch.targets, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got.loss, expected.loss)
