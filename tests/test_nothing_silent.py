"""Robustness housekeeping: stale temporaries cleaned on open, one builder per cache entry,
bounded open memory maps, and a full disk that names the path being written."""

import errno
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _ddp_worker import ToyRegressor, make_batches

import eegfm._fsutil as fsutil
import eegfm.data.cache as cache_mod
from eegfm import NeuralTokenizer
from eegfm.data import EEGCorpus, Recording, cache_codes
from eegfm.data.cache import RecordingCache, set_max_open_maps
from eegfm.training import TrainConfig, Trainer, save_checkpoint
from eegfm.training.checkpoint import link_or_copy_atomic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HOUR = 3600.0


def _rec(seed=0, n_times=400):
    data = np.random.default_rng(seed).normal(0, 10, (3, n_times)).astype(np.float32)
    meta = {"positions": [[50.0, 30.0], [50.0, 50.0], [50.0, 70.0]]}
    return Recording(data, ["Fz", "Cz", "Pz"], 200.0, f"mem{seed}.edf", meta)


@pytest.fixture(scope="module")
def dead_pid():
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def _atomic_leftover(folder, name, pid, age=0.0):
    path = Path(folder) / f".{name}.{pid}-{fsutil.HOST_TAG}-{'0' * 32}.tmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    _age(path, age)
    return path


def _cache_leftover(root, pid, age=0.0, rand="0a1b2c3d"):
    path = Path(root) / f".tmp-{'f' * 32}-{pid}-{fsutil.HOST_TAG}-{rand}"
    path.mkdir(parents=True)
    (path / "data.npy").write_bytes(b"garbage")
    _age(path, age)
    return path


# ---------------------------------------------------------------- 1. stale temporaries
def test_pid_alive(dead_pid):
    assert fsutil.pid_alive(os.getpid())
    assert not fsutil.pid_alive(dead_pid)


def test_atomic_write_names_its_writer(tmp_path):
    seen = []
    fsutil.atomic_write(tmp_path / "a.bin", lambda f: seen.append(os.listdir(tmp_path)) or f.write(b"x"))
    (tmp_name,) = seen[0]
    match = fsutil.ATOMIC_TMP.match(tmp_name)
    assert match and int(match["pid"]) == os.getpid() and match["host"] == fsutil.HOST_TAG
    assert os.listdir(tmp_path) == ["a.bin"]


def test_recording_cache_open_removes_stale_build_dirs(tmp_path, dead_pid, caplog):
    dead = _cache_leftover(tmp_path, dead_pid, rand="00000001")
    live = _cache_leftover(tmp_path, os.getpid(), rand="00000002")  # maybe a write in progress
    old = _cache_leftover(tmp_path, os.getpid(), age=2 * HOUR, rand="00000003")
    other_host = tmp_path / f".tmp-{'f' * 32}-{dead_pid}-{'0' * 8}-00000004"  # pid of another machine
    other_host.mkdir()
    (tmp_path / "unrelated").mkdir()
    with caplog.at_level(logging.INFO, logger="eegfm"):
        RecordingCache(tmp_path)
    assert not dead.exists() and not old.exists()
    assert live.exists() and other_host.exists() and (tmp_path / "unrelated").exists()
    assert f"writer pid {dead_pid} is gone" in caplog.text and str(dead) in caplog.text and str(old) in caplog.text


def test_code_cache_open_removes_stale_tmp_files(tmp_path, dead_pid):
    torch.manual_seed(0)
    tok = NeuralTokenizer(patch_size=50, embed_dim=16, depth=1, num_heads=2, code_dim=8, num_codes=32,
                          decoder_depth=1).eval()
    corpus = EEGCorpus([_rec()], tmp_path / "cache", progress=False)
    windows = corpus.windows(1.0, 1.0)
    cache_codes(windows, tok, corpus.cache.root, progress=False)
    (folder,) = (tmp_path / "cache" / "codes").iterdir()
    dead = _atomic_leftover(folder, "x.npy", dead_pid)
    live = _atomic_leftover(folder, "y.npy", os.getpid())
    old = _atomic_leftover(folder, "z.npy", os.getpid(), age=2 * HOUR)
    cache_codes(windows, tok, corpus.cache.root, progress=False)
    assert not dead.exists() and not old.exists() and live.exists()


def test_trainer_removes_stale_checkpoint_tmp_files(tmp_path, dead_pid):
    run = tmp_path / "run"
    dead = _atomic_leftover(run / "checkpoints", "step_0000005.pt", dead_pid)
    live = _atomic_leftover(run / "checkpoints", "last.pt", os.getpid())
    old = _atomic_leftover(run / "checkpoints", "step_0000001.pt", os.getpid(), age=2 * HOUR)
    metrics = _atomic_leftover(run, "metrics.csv", dead_pid)
    config = TrainConfig(steps=2, warmup_steps=1, checkpoint_every=2, run_dir=str(run), progress=False,
                         device="cpu", metrics="none")
    Trainer(ToyRegressor(), config, make_batches()).fit()
    assert not dead.exists() and not old.exists() and not metrics.exists() and live.exists()
    assert (run / "checkpoints" / "last.pt").is_file()


# ---------------------------------------------------------------- 2. one builder per entry
_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from eegfm.data.cache import RecordingCache
    from eegfm.data.recording import Recording

    root, counter, ready, n = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    cache = RecordingCache(root)
    (ready / sys.argv[5]).touch()
    while len(list(ready.iterdir())) < n:  # start together
        time.sleep(0.01)

    def build():
        with open(counter, "a") as f:
            f.write("built\\n")
        time.sleep(1.0)
        data = np.arange(6, dtype=np.float32).reshape(3, 2)
        return Recording(data, ["Fz", "Cz", "Pz"], 200.0, "x", {"positions": [[0, 0], [0, 1], [1, 1]]})

    print(cache.get_or_create("x", {"v": 1}, build).path)
""")


@pytest.mark.skipif(cache_mod.fcntl is None, reason="no fcntl: concurrent builders race by design")
def test_concurrent_processes_build_an_entry_once(tmp_path):
    script, counter, ready = tmp_path / "build.py", tmp_path / "count.txt", tmp_path / "ready"
    script.write_text(_BUILDER)
    ready.mkdir()
    n = 3  # the third waits on a lock file its holder unlinks: it must retry on the new one
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(counter), str(ready),
                               str(n), str(i)], stdout=subprocess.PIPE, text=True) for i in range(n)]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0] * n
    assert counter.read_text().splitlines() == ["built"]
    assert len(paths) == 1
    assert os.listdir(tmp_path / "cache") == [Path(paths.pop()).name]  # no lock or temporary left


_CORPUS_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from eegfm.data import EEGCorpus, Recording
    from eegfm.data.sources import RecordingSource

    root, counter, ready, n = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    (ready / sys.argv[5]).touch()
    while len(list(ready.iterdir())) < n:  # start together
        time.sleep(0.01)

    def load(seed):
        with open(counter, "a") as f:
            f.write(f"built {seed}\\n")
        time.sleep(0.5)
        data = np.random.default_rng(seed).normal(0, 10, (3, 800)).astype(np.float32)
        return Recording(data, ["Fz", "Cz", "Pz"], 200.0, f"mem{seed}")

    sources = [RecordingSource(f"mem{i}", lambda i=i: load(i), {"v": i}) for i in range(2)]
    corpus = EEGCorpus(sources, root, progress=False)
    print(corpus.n_built, corpus.n_reused)
""")


@pytest.mark.skipif(cache_mod.fcntl is None, reason="no fcntl: concurrent builders race by design")
def test_concurrent_corpora_preprocess_each_recording_once(tmp_path):
    script, counter, ready = tmp_path / "corpus.py", tmp_path / "count.txt", tmp_path / "ready"
    script.write_text(_CORPUS_BUILDER)
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(counter), str(ready), "2",
                               str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sorted(counter.read_text().splitlines()) == ["built 0", "built 1"]
    built_reused = [tuple(map(int, out.split())) for out, _ in outs]
    assert sum(b for b, _ in built_reused) == 2 and sum(r for _, r in built_reused) == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")) == []


def test_build_lock_is_reentrant_within_a_thread(tmp_path):
    cache = RecordingCache(tmp_path)
    inner = []

    def build():  # a build that asks for its own entry does not deadlock
        inner.append(cache.get_or_create("x", {}, lambda: _rec(1)))
        return _rec(2)

    entry = cache.get_or_create("x", {}, build)
    assert entry.path == inner[0].path
    np.testing.assert_array_equal(entry.data, _rec(1).data)


# ---------------------------------------------------------------- 3. bounded open maps
@pytest.fixture
def three_maps():
    set_max_open_maps(3)
    yield
    set_max_open_maps(cache_mod._bound_from_env())


def test_open_maps_are_bounded(tmp_path, three_maps):
    cache = RecordingCache(tmp_path)
    entries = [cache.get_or_create(f"r{i}", {}, lambda i=i: _rec(i)) for i in range(6)]
    for entry in entries:
        assert isinstance(entry.data, np.memmap)
    assert [e._data is not None for e in entries] == [False] * 3 + [True] * 3
    np.testing.assert_array_equal(entries[0].window(10, 20), _rec(0).data[:, 10:30])  # reopened
    assert [e._data is not None for e in entries] == [True] + [False] * 3 + [True] * 2
    set_max_open_maps(1)
    assert sum(e._data is not None for e in entries) == 1 and entries[0]._data is not None


def test_open_maps_bound_holds_across_threads(tmp_path, three_maps):
    cache = RecordingCache(tmp_path)
    entries = [cache.get_or_create(f"r{i}", {}, lambda i=i: _rec(i)) for i in range(8)]
    errors = []

    def read(seed):
        rng = np.random.default_rng(seed)
        try:
            for i in rng.integers(0, len(entries), 300):
                np.testing.assert_array_equal(entries[i].window(5, 7), _rec(int(i)).data[:, 5:12])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=read, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(e._data is not None for e in entries) <= 3


def test_window_dataset_bounds_its_open_maps(tmp_path, three_maps):
    recordings = [_rec(i) for i in range(6)]
    windows = EEGCorpus(recordings, tmp_path, progress=False).windows(1.0)
    for i in range(len(windows)):
        windows[i]
        assert len(windows._arrays) <= 3
    assert list(windows._arrays) == [3, 4, 5]
    first = windows[0]["x"]  # entry 0 reopened, least recently read (3) closed
    assert list(windows._arrays) == [4, 5, 0]
    np.testing.assert_array_equal(first, np.load(windows._paths[0])[:, :first.shape[1]])


def test_max_open_maps_settings(monkeypatch):
    monkeypatch.setenv("EEGFM_MAX_OPEN_MAPS", "5")
    assert cache_mod._bound_from_env() == 5
    monkeypatch.setenv("EEGFM_MAX_OPEN_MAPS", "lots")
    with pytest.raises(ValueError, match="EEGFM_MAX_OPEN_MAPS='lots' is not a positive integer"):
        cache_mod._bound_from_env()
    with pytest.raises(ValueError, match="positive integer"):
        set_max_open_maps(0)


# ---------------------------------------------------------------- 4. disk full names the path
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_cache_entry_disk_full_names_the_entry(tmp_path, monkeypatch):
    cache = RecordingCache(tmp_path)
    monkeypatch.setattr(cache_mod.np, "save", _disk_full)
    with pytest.raises(OSError) as info:
        cache.get_or_create("x", {}, lambda: _rec())
    final = tmp_path / cache.entry_id("x", {})
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == (f"[Errno {errno.ENOSPC}] no space left on device while writing cache entry {final} "
                               "(free space or point cache_dir to a larger disk)")
    assert os.listdir(tmp_path) == []


def test_checkpoint_disk_full_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "step_0000005.pt"
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError, match=re.escape(f"no space left on device while writing checkpoint {path} (free")):
        save_checkpoint(path, {"step": 5})
    assert os.listdir(path.parent) == []


class _Usage:
    def __init__(self, free):
        self.total, self.used, self.free = 1 << 30, (1 << 30) - free, free


def test_a_real_full_disk_is_recognised_without_errno(tmp_path, monkeypatch):
    """numpy says "N requested and M written" (no errno) and torch "unexpected pos" on a full disk."""
    def numpy_full(*args, **kwargs):
        raise OSError("320000 requested and 262112 written")

    def torch_full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda folder: _Usage(4096))
    cache = RecordingCache(tmp_path / "cache")
    monkeypatch.setattr(cache_mod.np, "save", numpy_full)
    with pytest.raises(OSError, match="no space left on device while writing cache entry .*cache") as info:
        cache.get_or_create("x", {}, lambda: _rec())
    assert info.value.errno == errno.ENOSPC and os.listdir(tmp_path / "cache") == []
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    monkeypatch.setattr(torch, "save", torch_full)
    with pytest.raises(OSError, match=re.escape(f"no space left on device while writing checkpoint {path} (")):
        save_checkpoint(path, {"step": 5})
    assert os.listdir(path.parent) == []


def test_other_write_errors_keep_their_message_when_space_is_left(tmp_path, monkeypatch):
    def torch_broken(*args, **kwargs):
        raise RuntimeError("something else broke")

    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda folder: _Usage(10 << 30))
    monkeypatch.setattr(torch, "save", torch_broken)
    with pytest.raises(RuntimeError, match="something else broke"):
        save_checkpoint(tmp_path / "last.pt", {"step": 5})
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(errno, "EDQUOT"), reason="no EDQUOT on this platform")
def test_atomic_write_quota_exceeded(tmp_path):
    def write(f):
        f.write(b"partial")
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    path = tmp_path / "a.bin"
    with pytest.raises(OSError, match=re.escape(f"disk quota exceeded while writing file {path} (")) as info:
        fsutil.atomic_write(path, write)
    assert info.value.errno == errno.EDQUOT and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_code_cache_disk_full_names_the_file(tmp_path, monkeypatch):
    tok = NeuralTokenizer(patch_size=50, embed_dim=16, depth=1, num_heads=2, code_dim=8, num_codes=32,
                          decoder_depth=1).eval()
    corpus = EEGCorpus([_rec()], tmp_path / "cache", progress=False)
    windows = corpus.windows(1.0, 1.0)
    cache_codes(windows, tok, corpus.cache.root, progress=False)  # writes spec.json and the codes
    (folder,) = (tmp_path / "cache" / "codes").iterdir()
    (codes,) = folder.glob("*.npy")
    codes.unlink()
    monkeypatch.setattr(fsutil.os, "fsync", _disk_full)
    with pytest.raises(OSError, match=re.escape(f"while writing tokenizer codes {codes} (free space or point "
                                                 "cache_dir")):
        cache_codes(windows, tok, corpus.cache.root, progress=False)
    assert os.listdir(folder) == ["spec.json"]


def test_last_pt_copy_disk_full_names_the_file(tmp_path, monkeypatch):
    src = save_checkpoint(tmp_path / "step_0000005.pt", {"step": 5})
    monkeypatch.setattr(os, "link", _disk_full)  # no hard link: copy, and the copy finds the disk full
    monkeypatch.setattr(fsutil.os, "fsync", _disk_full)
    with pytest.raises(OSError, match=re.escape(f"while writing checkpoint {tmp_path / 'last.pt'} (free")):
        link_or_copy_atomic(src, tmp_path / "last.pt")
    assert os.listdir(tmp_path) == ["step_0000005.pt"]


# ---------------------------------------------------------------- files MNE reads with a mere warning
def test_an_edf_with_identical_labels_is_a_counted_skip(tmp_path):
    edfio = pytest.importorskip("edfio")
    from eegfm.data import from_files

    x = np.random.default_rng(0).normal(0, 20, (3, 8000))
    signals = [edfio.EdfSignal(r, 200, label=n, physical_dimension="uV") for n, r in zip(["Fz", "Fz", "Cz"], x)]
    edfio.Edf(signals).write(tmp_path / "dup.edf")
    corpus = EEGCorpus(from_files([tmp_path / "dup.edf"]), tmp_path / "cache", progress=False)
    assert len(corpus) == 0 and len(corpus.skipped) == 1
    key, why = corpus.skipped[0]
    assert key.endswith("dup.edf")
    assert why.startswith(f"DuplicateChannelError: {key}: two or more channels carry the same label")


def test_a_file_mne_cannot_read_is_named_under_on_error_raise(tmp_path):
    from eegfm.data import from_files

    (tmp_path / "notes.edf").write_text("not an EDF")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'notes.edf'}: cannot be read as EEG (")):
        EEGCorpus(from_files([tmp_path / "notes.edf"]), tmp_path / "cache", progress=False, on_error="raise")


@pytest.mark.parametrize("field, value, match", [
    ("steps", float("nan"), "steps must be a whole number >= 1, got steps=nan"),
    ("steps", 2.5, "steps must be a whole number >= 1"),
    ("warmup_steps", float("nan"), "warmup_steps must be a finite number >= 0, got warmup_steps=nan"),
    ("grad_clip", float("nan"), "grad_clip must be a number"),
])
def test_training_settings_that_would_pass_silently(tmp_path, field, value, match):
    config = TrainConfig(**{"steps": 4, "run_dir": str(tmp_path), "metrics": "none", "progress": False, field: value})
    with pytest.raises(ValueError, match=re.escape(match)):
        Trainer(ToyRegressor(), config, make_batches())


def test_encoder_inputs_that_would_pass_silently():
    from eegfm import MAPEEncoder, proportion_coordinates

    torch.manual_seed(0)
    enc = MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2)
    pos = torch.tensor(proportion_coordinates(["Fz", "Cz", "Pz"]), dtype=torch.float32)
    with pytest.raises(ValueError, match=re.escape("x has an empty batch (shape (0, 3, 200))")):
        enc(torch.randn(0, 3, 200), pos)
    x = torch.randn(2, 3, 200)
    with pytest.raises(ValueError, match=re.escape("recording 1 of the batch has no token: n_times=20 valid samples, "
                                                   "fewer than one patch (50)")):
        enc(x, pos, n_times=torch.tensor([200, 20]))
    with pytest.raises(ValueError, match=re.escape("recording 0 of the batch has no token: every channel is masked (channel_mask all False)")):
        enc(x, pos, channel_mask=torch.tensor([[False, False, False], [True, True, True]]))
    assert enc(x, pos, n_times=torch.tensor([200, 20]), check_finite=False).cls.shape == (2, 16)  # opted out


def test_recording_takes_nested_lists():
    rec = Recording([[1.0, 2.0], [3.0, 4.0]], ["Fz", "Cz"], 200.0, "lists")
    assert isinstance(rec.data, np.ndarray) and rec.data.shape == (2, 2)
    with pytest.raises(ValueError, match=re.escape("lists: data must be (channels, times), got shape (2,)")):
        Recording([1.0, 2.0], ["Fz"], 200.0, "lists")
