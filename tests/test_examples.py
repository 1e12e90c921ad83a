"""The example scripts as a user runs them (``python examples/X.py``, no arguments).

Each one must exit 0 and print something, with
- no Python warning beyond those the suite itself ignores (pyproject's ``filterwarnings``, so
  warnings are errors) and no MNE "filter_length ... is longer than the signal" (eegfm logs that
  one instead of warning);
- nothing left in the temporary folder (``TMPDIR`` is a fresh, empty one for each run);
and an example that reports an accuracy must cross-validate by subject: every scikit-learn
cross-validation call gets ``groups=`` and a group splitter, and no window overlaps another.
"""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import missing_data_message

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: examples that read the real test recordings, and which dataset
NEEDS_DATA = {"extract_features.py": "eegmat_bids", "finetune_bids.py": "eegmat_bids",
              "finetune_moabb.py": "eegbci", "moabb_cross_subject.py": "eegbci"}
SLOW = {"finetune_bids.py", "finetune_moabb.py", "moabb_cross_subject.py"}

# Runs the script like ``python script.py`` under the suite's own warning filters.
RUNNER = """
import runpy, sys, tomllib, warnings
from _pytest.config import parse_warning_filter
with open(sys.argv[1], "rb") as f:
    for line in tomllib.load(f)["tool"]["pytest"]["ini_options"]["filterwarnings"]:
        warnings.filterwarnings(*parse_warning_filter(line, escape=False))
script = sys.argv[2]
sys.argv, sys.path[0] = sys.argv[2:], str(__import__("pathlib").Path(script).parent)
runpy.run_path(script, run_name="__main__")
"""


def _param(path: Path):
    marks = [pytest.mark.slow] if path.name in SLOW else []
    if path.name in NEEDS_DATA:
        marks.append(pytest.mark.real_data(NEEDS_DATA[path.name]))
    return pytest.param(path, id=path.name, marks=marks)


def _run_example(script: Path, tmp: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python script.py`` (through RUNNER) with a fresh, empty TMPDIR ``tmp``, from ``cwd``."""
    tmp.mkdir()
    cwd.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "pyproject.toml"), str(script)],
                          capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory):
    """The runs of every example this session collected from this module, started together the first
    time one is asked for: two at a time (each is a one-thread subprocess, so the second core works
    too), the slowest first. Each test then checks its own run exactly as if it had started it."""
    wanted = [item.callspec.params["script"] for item in request.session.items
              if item.module is request.module and item.originalname == "test_example_runs_cleanly"]
    wanted = [s for s in dict.fromkeys(wanted)
              if s.name not in NEEDS_DATA or missing_data_message([NEEDS_DATA[s.name]]) is None]
    wanted.sort(key=lambda s: s.name not in SLOW)  # stable: the slow ones first
    pool = ThreadPoolExecutor(max_workers=2)
    runs = {}
    for script in wanted:
        folder = tmp_path_factory.mktemp(script.stem)
        runs[script] = (folder / "tmp", pool.submit(_run_example, script, folder / "tmp", folder / "cwd"))
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("script", [_param(p) for p in EXAMPLES])
def test_example_runs_cleanly(script, example_runs):
    tmp, run = example_runs[script]
    out = run.result()
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()
    text = out.stdout + out.stderr
    assert "filter_length" not in text and "longer than the signal" not in text, text[-3000:]
    # torch keeps its compile cache in TMPDIR/torchinductor_<user>: not the example's
    left = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_"))
    assert left == [], f"{script.name} left {left} in the temporary folder"


_CV = {"cross_val_score", "cross_validate", "cross_val_predict"}
_GROUP_SPLITTERS = {"GroupKFold", "LeaveOneGroupOut", "LeavePGroupsOut", "GroupShuffleSplit", "StratifiedGroupKFold"}


def _calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in names:
                yield name, node


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_reported_accuracies_are_cross_subject(script):
    source = script.read_text(encoding="utf-8")
    if "accuracy" not in source:
        return
    tree = ast.parse(source)
    for name, call in _calls(tree, _CV):
        keywords = {k.arg: k.value for k in call.keywords}
        assert "groups" in keywords, f"{script.name}: {name}(...) without groups="
        cv = keywords.get("cv")
        assert isinstance(cv, ast.Call) and getattr(cv.func, "id", None) in _GROUP_SPLITTERS, \
            f"{script.name}: {name}(...) must split by group (cv=GroupKFold(...), ...)"
    for name, call in _calls(tree, {"KFold", "StratifiedKFold", "ShuffleSplit", "train_test_split"}):
        pytest.fail(f"{script.name}: {name} splits windows, not subjects")
    for _, call in _calls(tree, {"from_corpus", "windows"}):  # windows never overlap (stride = length)
        assert "stride_seconds" not in {k.arg for k in call.keywords}, f"{script.name}: overlapping windows"
