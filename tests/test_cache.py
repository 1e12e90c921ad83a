"""Tests for eegfm.data.cache."""

import json
import os

import mne
import numpy as np
import pytest

import eegfm.data.cache as cache_mod
from eegfm.data.cache import CacheCorruptError, CacheEntry, RecordingCache, cached_preprocess, source_fingerprint
from eegfm.data.preprocessing import PreprocessConfig
from eegfm.data.recording import Recording


def _rec(seed=0, n_times=500):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 10, (3, n_times)).astype(np.float32)
    meta = {"positions": [[50.0, 30.0], [50.0, 50.0], [50.0, 70.0]], "preprocess_hash": "abc", "subject": 1}
    return Recording(data, ["Fz", "Cz", "Pz"], 200.0, "mem.edf", meta)


class Counter:
    def __init__(self, rec):
        self.rec, self.calls = rec, 0

    def __call__(self):
        self.calls += 1
        return self.rec


def test_round_trip_memmap_and_reuse(tmp_path):
    cache = RecordingCache(tmp_path / "c")
    rec = _rec()
    build = Counter(rec)
    entry = cache.get_or_create("mem.edf", {"h": "abc"}, build)
    assert isinstance(entry.data, np.memmap) and entry.data.dtype == np.float32
    np.testing.assert_array_equal(entry.data, rec.data)
    assert entry.ch_names == ["Fz", "Cz", "Pz"] and entry.sfreq == 200.0 and entry.n_times == 500
    assert entry.positions.shape == (3, 2) and entry.positions[1].tolist() == [50.0, 50.0]
    assert entry.meta["metadata"]["subject"] == 1 and entry.meta["preprocess_hash"] == "abc"
    w = entry.window(100, 50)
    assert w.shape == (3, 50) and not isinstance(w, np.memmap) and w.flags.writeable
    np.testing.assert_array_equal(w, rec.data[:, 100:150])
    with pytest.raises(IndexError, match=r"window\(start=480, length=50\) is outside .*n_times=500"):
        entry.window(480, 50)
    again = cache.get_or_create("mem.edf", {"h": "abc"}, build)
    assert build.calls == 1 and again.path == entry.path
    assert cache.entries() == [entry.path]
    back = again.to_recording()
    np.testing.assert_array_equal(back.data, rec.data)
    assert back.metadata["positions"] == rec.metadata["positions"]


def test_fingerprint_change_makes_new_entry(tmp_path):
    cache = RecordingCache(tmp_path)
    build = Counter(_rec())
    a = cache.get_or_create("x", {"preprocess_hash": "1"}, build)
    b = cache.get_or_create("x", {"preprocess_hash": "2"}, build)
    c = cache.get_or_create("y", {"preprocess_hash": "1"}, build)
    assert build.calls == 3 and len({a.path, b.path, c.path}) == 3


def test_source_fingerprint(tmp_path):
    f = tmp_path / "a.set"
    f.write_bytes(b"123")
    (tmp_path / "a.fdt").write_bytes(b"4567")
    fp = source_fingerprint(f)
    assert fp["size"] == 3 and fp["path"] == str(f.resolve()) and fp["companions"][0]["size"] == 4
    os.utime(f, ns=(fp["mtime_ns"] + 10**9, fp["mtime_ns"] + 10**9))
    assert source_fingerprint(f)["mtime_ns"] != fp["mtime_ns"]
    with pytest.raises(FileNotFoundError, match="source file not found"):
        source_fingerprint(tmp_path / "missing.edf")


def test_build_failure_leaves_nothing(tmp_path):
    cache = RecordingCache(tmp_path)

    def boom():
        raise RuntimeError("reader crashed")

    with pytest.raises(RuntimeError, match="reader crashed"):
        cache.get_or_create("x", {}, boom)
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_write_is_atomic(tmp_path, monkeypatch):
    cache = RecordingCache(tmp_path)
    real_save = np.save

    def half_save(fh, arr, *a, **k):
        fh.write(b"\x93NUMPY partial")  # a few bytes, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.np, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_create("x", {}, Counter(_rec()))
    assert cache.entries() == []
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    monkeypatch.setattr(cache_mod.np, "save", real_save)
    build = Counter(_rec())
    entry = cache.get_or_create("x", {}, build)
    assert build.calls == 1
    np.testing.assert_array_equal(entry.data, _rec().data)


def test_leftover_tmp_never_read_and_cleaned(tmp_path):
    cache = RecordingCache(tmp_path)
    entry_id = cache.entry_id("x", {})
    stale = tmp_path / f".tmp-{entry_id}-999999-deadbeef"
    stale.mkdir()
    (stale / "data.npy").write_bytes(b"garbage")
    build = Counter(_rec())
    entry = cache.get_or_create("x", {}, build)  # the tmp dir is ignored
    assert build.calls == 1 and entry.path.name == entry_id
    assert cache.clean_tmp() == []  # fresh: maybe a live writer
    assert cache.clean_tmp(max_age_s=0) == [stale]
    assert not stale.exists() and entry.path.exists()


def test_concurrent_writer_loses_race(tmp_path, monkeypatch):
    cache = RecordingCache(tmp_path)
    winner = Counter(_rec(seed=1))
    real_write = RecordingCache._write

    def write_then_race(self, tmp, rec, key, fp):
        real_write(self, tmp, rec, key, fp)
        # another process finishes the same entry first
        monkeypatch.setattr(RecordingCache, "_write", real_write)
        RecordingCache(tmp_path).get_or_create(key, fp, winner)

    monkeypatch.setattr(RecordingCache, "_write", write_then_race)
    entry = cache.get_or_create("x", {}, Counter(_rec(seed=2)))
    monkeypatch.setattr(RecordingCache, "_write", real_write)
    assert winner.calls == 1
    np.testing.assert_array_equal(entry.data, _rec(seed=1).data)
    assert [p.name for p in tmp_path.iterdir()] == [entry.path.name]


def test_truncated_data_is_an_error(tmp_path):
    cache = RecordingCache(tmp_path)
    entry = cache.get_or_create("x", {}, Counter(_rec()))
    path = entry.path / "data.npy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 100)
    with pytest.raises(CacheCorruptError, match=r"corrupt cache entry .*data\.npy is truncated.*Delete it"):
        cache.get_or_create("x", {}, Counter(_rec()))
    path.write_bytes(b"")
    with pytest.raises(CacheCorruptError, match=r"data\.npy has no valid \.npy header"):
        CacheEntry(entry.path)


def test_corrupt_meta_is_an_error(tmp_path):
    cache = RecordingCache(tmp_path)
    entry = cache.get_or_create("x", {}, Counter(_rec()))
    meta = entry.path / "meta.json"
    good = meta.read_text()
    meta.write_text("{not json")
    with pytest.raises(CacheCorruptError, match=rf"{entry.path.name}.*meta\.json is not valid JSON"):
        cache.get_or_create("x", {}, Counter(_rec()))
    bad = json.loads(good)
    bad["n_times"] = 400
    meta.write_text(json.dumps(bad))
    with pytest.raises(CacheCorruptError, match=r"holds float32 \(3, 500\).*meta\.json says float32 \(3, 400\)"):
        CacheEntry(entry.path)
    meta.unlink()
    with pytest.raises(CacheCorruptError, match=r"meta\.json is missing"):
        CacheEntry(entry.path)


def test_build_without_positions_is_rejected(tmp_path):
    rec = _rec()
    rec.metadata.pop("positions")
    with pytest.raises(ValueError, match=r"metadata\['positions'\] must have shape \(3, 2\)"):
        RecordingCache(tmp_path).get_or_create("x", {}, lambda: rec)
    assert list(tmp_path.iterdir()) == []


def _write_fif(path, seed=0):
    rng = np.random.default_rng(seed)
    info = mne.create_info(["Fz", "Cz", "Pz", "C3", "C4", "O1"], 200.0, "eeg")
    raw = mne.io.RawArray(rng.normal(0, 1e-5, (6, 4000)), info, verbose=False)
    raw.save(path, overwrite=True, verbose=False)


def test_cached_preprocess_file_reuse_and_invalidation(tmp_path, monkeypatch):
    src = tmp_path / "rec_raw.fif"
    _write_fif(src)
    cache = RecordingCache(tmp_path / "cache")
    cfg = PreprocessConfig(l_freq=1.0, h_freq=40.0)
    calls = []
    real = cache_mod.preprocess
    monkeypatch.setattr(cache_mod, "preprocess", lambda *a, **k: calls.append(1) or real(*a, **k))

    e1 = cached_preprocess(src, cache, cfg)
    assert e1.data.shape == (6, 4000) and e1.positions.shape == (6, 2)
    assert e1.meta["preprocess_hash"] == cfg.hash() and e1.meta["source"] == str(src.resolve())
    assert cached_preprocess(src, cache, cfg).path == e1.path and len(calls) == 1
    # config change -> new entry
    e2 = cached_preprocess(src, cache, PreprocessConfig(l_freq=1.0, h_freq=30.0))
    assert e2.path != e1.path and len(calls) == 2
    # touching the file -> new entry
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    e3 = cached_preprocess(src, cache, cfg)
    assert e3.path not in (e1.path, e2.path) and len(calls) == 3
    # a custom reader is part of the key
    def reader(p):
        return mne.io.read_raw_fif(p, preload=False, verbose=False)

    e4 = cached_preprocess(src, cache, cfg, reader=reader)
    assert e4.path != e3.path and len(calls) == 4
    np.testing.assert_allclose(e4.data, e3.data)


def test_cached_preprocess_raw(tmp_path):
    src = tmp_path / "rec_raw.fif"
    _write_fif(src)
    cache = RecordingCache(tmp_path / "cache")
    raw = mne.io.read_raw_fif(src, preload=False, verbose=False)
    a = cached_preprocess(raw, cache)
    assert cached_preprocess(raw, cache).path == a.path
    cropped = raw.copy().crop(0, 10.0)
    assert cached_preprocess(cropped, cache).path != a.path
    mem = mne.io.RawArray(np.random.default_rng(3).normal(0, 1e-5, (6, 4000)), raw.info, verbose=False)
    b = cached_preprocess(mem, cache)
    assert b.path != a.path and cached_preprocess(mem, cache).path == b.path
