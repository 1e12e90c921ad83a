"""open_npy_map: np.load(mmap_mode="r") without the AST parser, so many threads can open files at once."""

import ast
import threading

import numpy as np
import pytest

from eegfm.data.npy_map import open_npy_map

ARRAYS = {
    "float32 (C, T)": np.arange(24, dtype=np.float32).reshape(4, 6),
    "no rows": np.zeros((0, 5), dtype=np.int16),
    "fortran order": np.asfortranarray(np.linspace(0, 1, 15).reshape(3, 5)),
    "big-endian 1-d": np.arange(5, dtype=">i8"),
    "0-d": np.array(3.5),
    "bool": np.array([True, False, True]),
    "structured (np.load's parser)": np.zeros((2, 3), dtype=[("a", "<f4"), ("b", "<i2")]),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_it_reads_what_np_load_reads(tmp_path, name):
    path = tmp_path / "a.npy"
    np.save(path, ARRAYS[name])
    got, want = open_npy_map(path), np.load(path, mmap_mode="r")
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.flags.f_contiguous == want.flags.f_contiguous
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert not got.flags.writeable


def test_plain_arrays_never_touch_the_ast_parser(tmp_path, monkeypatch):
    """CPython 3.11's AST constructor fails when threads parse at once (seen in CI via np.load)."""
    path = tmp_path / "a.npy"
    np.save(path, np.ones((64, 6000), dtype=np.float32))

    def refuse(*args, **kwargs):
        raise AssertionError("ast.literal_eval called")

    monkeypatch.setattr(ast, "literal_eval", refuse)
    assert open_npy_map(path).shape == (64, 6000)


def test_many_threads_open_maps_at_once(tmp_path):
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], np.full((3, 50), i, dtype=np.float32))
    errors, sums = [], {}

    def read(k):
        try:
            for _ in range(200):
                sums[k] = float(open_npy_map(paths[k % 8]).sum())
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sums == {k: 150.0 * (k % 8) for k in range(16)}


def test_a_truncated_file_fails_as_np_load_does(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((10, 10), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError):
        open_npy_map(path)
    path.write_bytes(b"\x93NUMPY\x01")
    with pytest.raises(ValueError):
        open_npy_map(path)
