"""Synthetic paired set: videos move as labelled, the EEG carries the class (linear check on band
powers), the on-disk format round-trips, the caption stand-ins, and a seconds-long run of the
end-to-end benchmark chain (benchmarks/video_e2e_synthetic.py)."""

import json

import numpy as np
import pytest
import torch

from eegfm_video.paired_clips import PairedClips
from eegfm_video.synthetic import (
    COLORS,
    SHAPE_FREQUENCIES,
    SHAPES,
    SYNTHETIC_CHANNELS,
    CaptionEmbedder,
    ShapeCaptioner,
    band_powers,
    make_synthetic_clips,
    render_clip,
    synthetic_eeg,
)

from conftest import load_script


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads only cost here


def linear_accuracy(features: np.ndarray, labels: np.ndarray, train: np.ndarray) -> float:
    """Least-squares one-vs-rest linear classifier on standardised features: test accuracy."""
    mean, std = features[train].mean(0), features[train].std(0) + 1e-9
    z = np.c_[(features - mean) / std, np.ones(len(features))]
    targets = np.eye(labels.max() + 1)[labels]
    weights = np.linalg.lstsq(z[train], targets[train], rcond=None)[0]
    return float(((z[~train] @ weights).argmax(1) == labels[~train]).mean())


def test_set_layout_labels_and_split():
    data = make_synthetic_clips(5, 2, n_frames=4, size=32, seed=1)
    assert data.class_names == ["square-left", "square-right", "circle-left", "circle-right", "triangle-left",
                                "triangle-right"]
    assert data.eeg.shape == (42, 8, 400) and data.eeg.dtype == np.float32
    assert data.videos.shape == (42, 4, 32, 32, 3) and data.videos.dtype == np.uint8
    assert data.ch_names == list(SYNTHETIC_CHANNELS) and data.sfreq == 200.0
    assert np.bincount(data.labels[data.split == "train"]).tolist() == [5] * 6
    assert np.bincount(data.labels[data.split == "test"]).tolist() == [2] * 6
    assert data.clip_ids[0] == "train_0000" and data.clip_ids[-1] == "test_0041"
    assert data.positions().shape == (8, 2)
    same = make_synthetic_clips(5, 2, n_frames=4, size=32, seed=1)
    assert np.array_equal(same.eeg, data.eeg) and np.array_equal(same.videos, data.videos)


def test_shapes_have_their_colour_and_move_the_labelled_way():
    data = make_synthetic_clips(3, 0, size=64, seed=2)
    for video, label in zip(data.videos, data.labels):
        shape, direction = data.class_names[label].split("-")
        mask = (video == np.array(COLORS[shape], np.uint8)).all(-1)  # (F, H, W)
        assert mask.sum(axis=(1, 2)).min() > 20  # the shape is in every frame
        centre_x = np.array([np.nonzero(m)[1].mean() for m in mask])
        steps = np.diff(centre_x)
        assert (steps > 0).all() if direction == "right" else (steps < 0).all()
    with pytest.raises(ValueError, match=r"direction must be one of \('left', 'right'\), got 'up'"):
        render_clip("square", "up")


def test_eeg_carries_the_class_linearly_in_band_powers():
    data = make_synthetic_clips(20, 10, size=16, seed=3)
    train = data.split == "train"
    assert linear_accuracy(band_powers(data.eeg), data.labels, train) >= 0.9  # chance 1/6
    # control: without the class rhythm, the same classifier is near chance
    shape_ids = np.array([SHAPES.index(name.split("-")[0]) for name in np.array(data.class_names)[data.labels]])
    noise_only = synthetic_eeg(shape_ids, data.labels % 2, signal_uv=0.0, seed=3)
    assert linear_accuracy(band_powers(noise_only), data.labels, train) < 0.4


def test_rhythm_frequency_and_lateralisation():
    eeg = synthetic_eeg(np.array([0, 1, 2, 3] * 10), np.array([0] * 20 + [1] * 20), noise_uv=1.0, seed=0)
    spectrum = np.abs(np.fft.rfft(eeg, axis=-1)) ** 2  # (40, 8, 201), 0.5 Hz bins
    freqs = np.fft.rfftfreq(400, 1 / 200)
    for shape_id, shape in enumerate(SHAPES):
        peak = freqs[spectrum[shape_id::4].mean((0, 1))[2:].argmax() + 2]
        assert abs(peak - SHAPE_FREQUENCIES[shape]) <= 1.0
    power = spectrum.sum(-1)  # (40, 8)
    left = np.array([ch in ("F3", "C3", "P3", "O1") for ch in SYNTHETIC_CHANNELS])
    assert (power[:20, left].sum(1) > power[:20, ~left].sum(1)).all()  # leftward motion: left hemisphere
    assert (power[20:, ~left].sum(1) > power[20:, left].sum(1)).all()


def test_paired_clips_round_trip_subset_and_errors(tmp_path):
    data = make_synthetic_clips(2, 1, n_frames=3, size=16, seed=4)
    loaded = PairedClips.load(data.save(tmp_path / "set"))
    for name in ("eeg", "videos", "labels", "split"):
        assert np.array_equal(getattr(loaded, name), getattr(data, name))
    assert (loaded.ch_names, loaded.sfreq, loaded.clip_ids, loaded.class_names) == \
        (data.ch_names, data.sfreq, data.clip_ids, data.class_names)
    test = loaded.subset("test")
    assert len(test) == 6 and set(test.split.tolist()) == {"test"} and list(test.clips()) == test.clip_ids
    with pytest.raises(FileNotFoundError, match=r"is not a paired-clips directory: missing \['eeg.npy'"):
        PairedClips.load(tmp_path)
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got 'val'"):
        data.subset("val")
    with pytest.raises(ValueError, match=r"split values must be 'train' or 'test', got \['val'\]"):
        PairedClips(data.eeg, data.ch_names, 200.0, data.videos, data.labels, np.array(["val"] * len(data)),
                    data.clip_ids)
    with pytest.raises(ValueError, match=r"videos has 17 rows but eeg has 18"):
        PairedClips(data.eeg, data.ch_names, 200.0, data.videos[:-1], data.labels, data.split, data.clip_ids)
    with pytest.raises(ValueError, match=r"shapes must be a non-empty subset of"):
        make_synthetic_clips(1, 1, shapes=("hexagon",))


def test_caption_stand_ins():
    frames = [render_clip(shape, "left", n_frames=1, size=32)[0] for shape in SHAPES]
    assert ShapeCaptioner()(frames) == ["a red square", "a green circle", "a blue triangle", "a yellow cross"]
    assert ShapeCaptioner()([np.full((8, 8, 3), 24, np.uint8)]) == ["an empty frame"]
    embed = CaptionEmbedder(4, 8, seed=1)
    out = embed(["a red square", "a green circle", "a red square"])
    assert out.shape == (3, 4, 8) and torch.equal(out[0], out[2]) and not torch.equal(out[0], out[1])
    assert torch.equal(embed(["a green circle"])[0], out[1])  # independent of the other captions
    assert not torch.equal(CaptionEmbedder(4, 8, seed=2)(["a red square"])[0], out[0])


def test_end_to_end_chain_runs_in_seconds(tmp_path, monkeypatch):
    bench = load_script("benchmarks/video_e2e_synthetic.py")
    cfg = bench.E2EConfig(n_train_per_class=2, n_test_per_class=1, size=16, n_frames=3, vae_steps=3, vae_batch=4,
                          cotrain_steps=2, batch_size=4, inference_steps=2, classifier_steps=2, embed_dim=16)
    lines = []
    report = bench.run_chain(cfg, tmp_path, log=lines.append)
    assert len(lines) == 7 and lines[0].startswith("[1/6] synthetic set: 12 train / 6 test clips, 6 classes")
    assert report["cotrain"]["summary"]["steps"] == 2 and len(report["cotrain"]["curve"]) == 2
    acc = report["accuracy"]
    assert acc["chance"] == pytest.approx(1 / 6)
    assert all(0.0 <= acc[k] <= 1.0 for k in ("generated", "real_test", "vae_reconstruction",
                                              "generated_from_shuffled_eeg"))
    ev = report["evaluation"]
    assert ev["video"]["2-way"]["chance"] == 0.5 and ev["video"]["6-way"]["chance"] == pytest.approx(1 / 6)
    assert ev["video_spec7_protocol_top3_gt"]["2-way"]["chance"] == 0.75
    assert -1.0 <= ev["ssim"]["mean"] <= 1.0
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "samples.gif").is_file()
    manifest = json.loads((tmp_path / "targets" / "manifest.json").read_text())
    assert manifest["clip_ids"][:2] == ["train_0000", "train_0001"]
