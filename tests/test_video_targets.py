"""Cached alignment targets (eegfm_video.targets) with tiny BLIP / CLIP / VAE models built offline."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eegfm_video import targets as T
from eegfm_video.targets import (
    DEFAULT_CAPTION_MODEL,
    DEFAULT_SD_MODEL,
    TargetCacheError,
    TargetConfig,
    load_blip_captioner,
    load_cached_targets,
    load_clip_text_embedder,
    load_vae_encoder,
    precompute_targets,
)

WORDS = ["a", "photo", "of", "cat", "dog", "the", "on", "grass", "man", "horse"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny BLIP captioner and a tiny SD layout (text_encoder, tokenizer, vae), saved locally."""
    from diffusers import AutoencoderKL
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
    )

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    # BLIP: BERT word-piece tokenizer ([DEC] is BLIP's decoder start token) + tiny text/vision towers
    blip = root / "blip"
    blip.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS]
    (blip / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(blip / "vocab.txt"), bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    text = dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=40, bos_token_id=5, pad_token_id=0,
                sep_token_id=3, eos_token_id=3, encoder_hidden_size=16)
    vision = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=8)
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision)).save_pretrained(blip)
    processor.save_pretrained(blip)
    # SD layout: CLIP byte-level BPE tokenizer from a tiny vocab/merges, tiny CLIP text model, tiny VAE
    sd = root / "sd"
    (sd / "tokenizer").mkdir(parents=True)
    clip_vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz":
        clip_vocab[char] = len(clip_vocab)
        clip_vocab[char + "</w>"] = len(clip_vocab)
    (sd / "tokenizer" / "vocab.json").write_text(json.dumps(clip_vocab))
    (sd / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    clip_tokenizer = CLIPTokenizer(str(sd / "tokenizer" / "vocab.json"), str(sd / "tokenizer" / "merges.txt"),
                                   model_max_length=77)
    clip_tokenizer.save_pretrained(sd / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(clip_vocab), hidden_size=16, intermediate_size=24,
                                 num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                 bos_token_id=0, eos_token_id=1, pad_token_id=1)).save_pretrained(sd / "text_encoder")
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                  latent_channels=4, norm_num_groups=4, sample_size=32).save_pretrained(sd / "vae")
    return {"blip": blip, "sd": sd}


def _clips(n=3, frames=2, height=16, width=24, seed=0):
    rng = np.random.default_rng(seed)
    return {f"clip{i}": rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8) for i in range(n)}


class Counting:
    """A stub model: records its calls, returns a deterministic function of its input."""

    def __init__(self, fn, **attrs):
        self.fn, self.calls = fn, 0
        self.__dict__.update(attrs)

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


def _stubs(tag="a"):
    captioner = Counting(lambda images: [f"{tag} {int(img.sum()) % 97}" for img in images])
    embedder = Counting(lambda caps: torch.tensor([[[float(len(c)), float(ord(c[-1]))]] * 4 for c in caps]))
    vae = Counting(lambda frames: torch.as_tensor(frames[:, ::4, ::4, :1], dtype=torch.float32).permute(0, 3, 1, 2),
                   scaling_factor=0.5)
    return captioner, embedder, vae


def _run(clips, cache, config, stubs, **kwargs):
    captioner, embedder, vae = stubs
    return precompute_targets(clips, cache, config, captioner=captioner, text_embedder=embedder,
                              vae_encoder=vae, progress=False, **kwargs)


# ----------------------------------------------------------------------------- the three models
def test_defaults_are_the_real_model_ids():
    config = TargetConfig()
    assert DEFAULT_CAPTION_MODEL == "Salesforce/blip-image-captioning-large" == config.caption_model
    assert DEFAULT_SD_MODEL == "stable-diffusion-v1-5/stable-diffusion-v1-5" == config.text_model == config.vae_model
    assert (config.text_encoder_subfolder, config.tokenizer_subfolder, config.vae_subfolder) == (
        "text_encoder", "tokenizer", "vae")
    assert config.latent_mode == "mean"


def test_blip_captioner(tiny_models):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    captioner = load_blip_captioner(tiny_models["blip"], max_new_tokens=4, batch_size=2)
    images = [frames[0] for frames in _clips(n=3, height=40, width=48).values()]
    captions = captioner(images)
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    assert set(" ".join(captions).split()) <= set(WORDS) | {"[UNK]"}  # special tokens removed
    # the same as BLIP's own generate + decode, whatever the batch size
    model = BlipForConditionalGeneration.from_pretrained(tiny_models["blip"]).eval()
    processor = BlipProcessor.from_pretrained(tiny_models["blip"])
    with torch.no_grad():
        ids = model.generate(**processor(images=images, return_tensors="pt"), max_new_tokens=4)
    assert captions == [c.strip() for c in processor.batch_decode(ids, skip_special_tokens=True)]


def test_clip_text_embedder_pads_to_77_like_stable_diffusion(tiny_models):
    from transformers import CLIPTextModel, CLIPTokenizer

    embedder = load_clip_text_embedder(tiny_models["sd"], batch_size=2)
    captions = ["a cat on grass", "dog", "the man on the horse " * 20]  # the last one is truncated
    out = embedder(captions)
    assert out.shape == (3, 77, 16) and out.dtype == torch.float32
    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"], subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(tiny_models["sd"], subfolder="text_encoder").eval()
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert ids.shape == (3, 77) and ids[1, -1] == tokenizer.pad_token_id
    with torch.no_grad():
        expected = encoder(ids).last_hidden_state  # no attention mask, as SD 1.x's pipeline
    torch.testing.assert_close(out, expected)


def test_vae_encoder_scaled_mean_or_seeded_sample(tiny_models):
    from diffusers import AutoencoderKL

    frames = _clips(n=1, frames=3)["clip0"]
    encoder = load_vae_encoder(tiny_models["sd"], batch_size=2)
    latents = encoder(frames)
    assert latents.shape == (3, 4, 8, 12)  # 2 blocks: downsampling 2 ** (2 - 1) = 2 (SD's 4 blocks: 8)
    assert encoder.downsample == 2 and encoder.scaling_factor == 0.18215
    vae = AutoencoderKL.from_pretrained(tiny_models["sd"], subfolder="vae").eval()
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        posterior = vae.encode(pixels).latent_dist
    torch.testing.assert_close(latents, posterior.mean * 0.18215)
    # torch frames work too; a sample is reproducible from its seed and differs from the mean
    torch.testing.assert_close(encoder(torch.from_numpy(frames)), latents)
    first = load_vae_encoder(tiny_models["sd"], latent_mode="sample", seed=3)(frames)
    again = load_vae_encoder(tiny_models["sd"], latent_mode="sample", seed=3)(frames)
    other = load_vae_encoder(tiny_models["sd"], latent_mode="sample", seed=4)(frames)
    assert torch.equal(first, again) and not torch.allclose(first, other) and not torch.allclose(first, latents)


def test_frozen_teachers_ignore_a_callers_bf16_autocast(tiny_models):
    """Captions, text embeddings and latents are those of the float32 models inside a bf16 autocast."""
    captioner = load_blip_captioner(tiny_models["blip"], max_new_tokens=4, batch_size=2)
    embedder = load_clip_text_embedder(tiny_models["sd"], batch_size=2)
    encoder = load_vae_encoder(tiny_models["sd"], batch_size=2)
    frames = _clips(n=1, frames=3)["clip0"]
    captions = ["a cat on grass", "the man on the horse"]
    plain = (captioner(list(frames)), embedder(captions), encoder(frames))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = (captioner(list(frames)), embedder(captions), encoder(frames))
    assert under_autocast[0] == plain[0]
    for got, expected in zip(under_autocast[1:], plain[1:]):
        assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_model_errors(tiny_models):
    encoder = load_vae_encoder(tiny_models["sd"])
    with pytest.raises(ValueError, match=(r"frames height and width must be divisible by the VAE's downsampling "
                                          r"factor 2, got 15 x 24")):
        encoder(np.zeros((2, 15, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frames must be uint8 RGB in \[0, 255\], got dtype float32"):
        encoder(np.zeros((2, 16, 24, 3), np.float32))
    with pytest.raises(ValueError, match=(r"frames must have shape \(frames, height, width, 3\) \(RGB\), got \(16, "
                                          r"24, 3\)")):
        encoder(np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=(r"latent_mode must be one of \('mean', 'sample'\), got 'samples'. Did you "
                                          r"mean 'sample'\?")):
        load_vae_encoder(tiny_models["sd"], latent_mode="samples")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        load_clip_text_embedder(tiny_models["sd"], batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 0"):
        load_blip_captioner(tiny_models["blip"], max_new_tokens=0)


# ----------------------------------------------------------------------------- the cache
def test_precompute_with_local_models_then_reuse_without_loading(tiny_models, tmp_path, monkeypatch):
    config = TargetConfig(caption_model=str(tiny_models["blip"]), caption_max_new_tokens=4,
                          text_model=str(tiny_models["sd"]), vae_model=str(tiny_models["sd"]))
    clips = _clips(n=3, height=32, width=32)
    first = precompute_targets(clips, tmp_path / "cache", config, batch_size=2, progress=False)
    assert first.clip_ids == ["clip0", "clip1", "clip2"] and len(first) == 3
    assert first.captions == load_blip_captioner(tiny_models["blip"], max_new_tokens=4)([c[0] for c in clips.values()])
    torch.testing.assert_close(torch.from_numpy(np.array(first.text_embeddings)),
                               load_clip_text_embedder(tiny_models["sd"])(first.captions))
    assert first.latents.shape == (3, 2, 4, 16, 16) and first.latents.dtype == np.float32
    vae = load_vae_encoder(tiny_models["sd"])
    for row, frames in enumerate(clips.values()):
        torch.testing.assert_close(torch.from_numpy(np.array(first.latents[row])), vae(frames))
    assert first.scaling_factor == 0.18215
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["clip_ids"] == first.clip_ids
    assert manifest["kinds"]["captions"]["key"]["caption_model"] == str(Path(tiny_models["blip"]).resolve())
    assert manifest["kinds"]["text_embeddings"]["key"]["text_model"] == str(Path(tiny_models["sd"]).resolve())
    assert manifest["kinds"]["latents"]["key"] == {"vae_model": str(Path(tiny_models["sd"]).resolve()),
                                                   "vae_subfolder": "vae", "latent_mode": "mean"}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "captions.npy", "latents.npy", "manifest.json", "text_embeddings.npy"]  # no temporary file left

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the cache matches")

    for name in ("load_blip_captioner", "load_clip_text_embedder", "load_vae_encoder"):
        monkeypatch.setattr(T, name, refuse)
    second = precompute_targets(clips, tmp_path / "cache", config, progress=False)
    assert second.captions == first.captions
    assert np.array_equal(second.text_embeddings, first.text_embeddings)
    assert np.array_equal(second.latents, first.latents)
    assert isinstance(second.latents, np.memmap) and not second.latents.flags.writeable
    # the cache can be read without clips or models, and checked against a config
    assert np.array_equal(load_cached_targets(tmp_path / "cache", config, mmap=False).latents, first.latents)


def test_second_run_calls_no_model_and_reads_no_frame(tmp_path):
    class LazyClips(dict):
        reads = 0

        def __getitem__(self, key):
            LazyClips.reads += 1
            return super().__getitem__(key)

    clips = LazyClips(_clips(n=5))
    stubs = _stubs()
    config = TargetConfig(caption_model="stub-blip", text_model="stub-clip", vae_model="stub-vae")
    first = _run(clips, tmp_path, config, stubs, batch_size=2)
    assert [s.calls for s in stubs] == [3, 3, 5]  # 3 batches of first frames / captions, 5 clips
    assert first.captions == [f"a {int(c[0].sum()) % 97}" for c in _clips(n=5).values()]
    assert first.scaling_factor == 0.5
    reads = LazyClips.reads
    second = _run(clips, tmp_path, config, stubs, batch_size=2)
    assert [s.calls for s in stubs] == [3, 3, 5] and LazyClips.reads == reads
    assert second.captions == first.captions and np.array_equal(second.latents, first.latents)


def test_a_changed_model_id_or_option_recomputes_what_depends_on_it(tmp_path):
    clips = _clips(n=4)
    base = TargetConfig(caption_model="stub-blip", text_model="stub-clip", vae_model="stub-vae")

    def run(config, tag="a", **kwargs):
        stubs = _stubs(tag)
        out = _run(clips, tmp_path, config, stubs, **kwargs)
        return [s.calls > 0 for s in stubs], out

    assert run(base)[0] == [True, True, True]
    assert run(base)[0] == [False, False, False]
    # a new captioner changes the captions, so their text embeddings too, not the latents
    called, out = run(TargetConfig(**{**base.to_dict(), "caption_model": "stub-blip-2"}), tag="b")
    assert called == [True, True, False] and out.captions[0].startswith("b ")
    called, _ = run(TargetConfig(**{**base.to_dict(), "caption_model": "stub-blip-2", "caption_num_beams": 3}))
    assert called == [True, True, False]
    config = TargetConfig(**{**base.to_dict(), "caption_model": "stub-blip-2", "caption_num_beams": 3})
    assert run(TargetConfig(**{**config.to_dict(), "text_model": "stub-clip-2"}))[0] == [False, True, False]
    config = TargetConfig(**{**config.to_dict(), "text_model": "stub-clip-2"})
    assert run(TargetConfig(**{**config.to_dict(), "vae_model": "stub-vae-2"}))[0] == [False, False, True]
    config = TargetConfig(**{**config.to_dict(), "vae_model": "stub-vae-2"})
    sample = TargetConfig(**{**config.to_dict(), "latent_mode": "sample", "seed": 1})
    assert run(sample)[0] == [False, False, True]
    assert run(sample)[0] == [False, False, False]
    assert run(TargetConfig(**{**sample.to_dict(), "seed": 2}))[0] == [False, False, True]
    # the seed only matters for sampled latents
    assert config.key("latents") == TargetConfig(**{**config.to_dict(), "seed": 9}).key("latents")
    # other clip ids, or overwrite=True, recompute everything
    assert run(TargetConfig(**{**sample.to_dict(), "seed": 2}), overwrite=True)[0] == [True, True, True]
    stubs = _stubs()
    _run(_clips(n=3), tmp_path, base, stubs)
    assert [s.calls > 0 for s in stubs] == [True, True, True]


def test_an_interrupted_run_never_leaves_a_stale_entry(tmp_path):
    clips = _clips(n=4)
    config = TargetConfig(caption_model="stub-blip", text_model="stub-clip", vae_model="stub-vae")
    good = _run(clips, tmp_path, config, _stubs())
    good_latents = np.array(good.latents)
    del good

    calls = []

    def broken(frames):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("GPU fell over")
        return torch.zeros(2, 1, 4, 6)

    other = TargetConfig(**{**config.to_dict(), "vae_model": "stub-vae-2"})
    with pytest.raises(RuntimeError, match="GPU fell over"):
        precompute_targets(clips, tmp_path, other, captioner=_stubs()[0], text_embedder=_stubs()[1],
                           vae_encoder=broken, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "captions.npy", "latents.npy", "manifest.json", "text_embeddings.npy"]  # the temporary file is gone
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "latents" not in manifest["kinds"] and {"captions", "text_embeddings"} <= set(manifest["kinds"])
    assert np.array_equal(np.load(tmp_path / "latents.npy"), good_latents)  # the old file was never replaced
    with pytest.raises(TargetCacheError, match=r"has no 'latents' \(an interrupted run\?\)"):
        load_cached_targets(tmp_path)
    # the old models' latents are not trusted any more: they are recomputed, the rest reused
    stubs = _stubs()
    again = _run(clips, tmp_path, config, stubs)
    assert [s.calls > 0 for s in stubs] == [False, False, True]
    assert np.array_equal(again.latents, good_latents)


def test_config_round_trip_and_errors(tmp_path):
    config = TargetConfig(caption_model="x", latent_mode="sample", seed=4)
    assert TargetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown TargetConfig keys \['vae_modle'\].*Did you mean 'vae_model'\?"):
        TargetConfig.from_dict({"vae_modle": "x"})
    with pytest.raises(ValueError, match=r"latent_mode must be one of \('mean', 'sample'\), got 'mode'"):
        TargetConfig(latent_mode="mode")
    with pytest.raises(ValueError, match="caption_num_beams must be an integer >= 1, got 0"):
        TargetConfig(caption_num_beams=0)
    with pytest.raises(ValueError, match=(r"kind must be one of \('captions', 'text_embeddings', 'latents'\), got "
                                          r"'caption'")):
        config.key("caption")
    stubs = _stubs()
    with pytest.raises(ValueError, match="clips is empty"):
        _run({}, tmp_path, config, stubs)
    with pytest.raises(TypeError, match="config must be a TargetConfig, got dict"):
        _run(_clips(), tmp_path, {"caption_model": "x"}, stubs)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        _run(_clips(), tmp_path, config, stubs, batch_size=0)
    with pytest.raises(ValueError, match="clip ids must be unique once converted to str"):
        _run({1: _clips()["clip0"], "1": _clips()["clip1"]}, tmp_path, config, stubs)
    bad = {**_clips(n=2), "odd": np.zeros((2, 16, 24, 3), np.float64)}
    with pytest.raises(ValueError, match=r"frames of clip 'odd' must be uint8 RGB in \[0, 255\], got dtype float64"):
        _run(bad, tmp_path, config, stubs)
    mixed = {**_clips(n=2), "short": np.zeros((1, 16, 24, 3), np.uint8)}
    with pytest.raises(ValueError, match=(r"every clip must have the frames shape of the first clip \(2, 16, 24, "
                                          r"3\); clip 'short' has \(1, 16, 24, 3\)")):
        _run(mixed, tmp_path / "mixed", config, stubs)
    with pytest.raises(ValueError, match="captioner returned 1 captions for 2 images"):
        precompute_targets(_clips(n=2), tmp_path / "short", config, captioner=lambda images: ["one"], progress=False)
    with pytest.raises(TargetCacheError, match="has no valid manifest.json: it is not a target cache"):
        load_cached_targets(tmp_path / "nowhere")
    done = _run(_clips(n=2), tmp_path / "done", config, _stubs())
    with pytest.raises(TargetCacheError, match="'captions' in .* was made with .*'x'.*not .*'y'"):
        load_cached_targets(done.directory, TargetConfig(**{**config.to_dict(), "caption_model": "y"}))
    assert done.index("clip1") == 1
    with pytest.raises(KeyError, match="clip 'clip9' is not in the targets of"):
        done.index("clip9")
