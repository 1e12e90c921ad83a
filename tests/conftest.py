"""Shared test fixtures. Tests never reach the network: the Hub is offline for the session.

Real EEG test data
------------------
Tests that read the real recordings (``../shared/data`` beside the repository, or the folder
``EEGFM_SHARED_DATA`` names) are marked ``real_data``; a test that takes the ``shared_data``
fixture is marked automatically. When the recordings are missing, such a test is **skipped**
with one message naming the datasets it needs and pointing at ``DATA.md`` (public sources,
checksums) and ``scripts/fetch_test_data.py`` (downloads and verifies them) -- except in CI
(``CI`` set to anything but ``""``/``0``/``false``; ``.ci/run`` sets it), where it **fails**, so
nothing is silently skipped there. Every other test runs without the recordings.

CUDA tests
----------
Tests marked ``cuda`` need a CUDA GPU. They are collected only when the ``-m`` expression
names ``cuda`` (``benchmarks/gpu_check.sh`` runs ``pytest -m cuda``); otherwise they are
deselected at collection (reported as deselected, never as skipped), so a CPU run or CI has
no skipped test for them.
"""

import importlib.util
import inspect
import os
import signal
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: ../shared/data beside the repository (always present in CI); EEGFM_SHARED_DATA overrides it.
SHARED_DATA = Path(os.environ.get("EEGFM_SHARED_DATA") or REPO.parent / "shared" / "data")
#: sha256 and path (relative to SHARED_DATA) of every file the tests read.
CHECKSUMS = Path(__file__).resolve().parent / "data_checksums.txt"
#: the datasets, by their folder in SHARED_DATA (DATA.md has their public sources).
DATASETS = {
    "eegbci": "PhysioNet EEG Motor Movement/Imagery (eegmmidb 1.0.0)",
    "eegmat_bids": "PhysioNet EEG During Mental Arithmetic Tasks (eegmat 1.0.0, as BIDS)",
    "eeglab": "EEGLAB tutorial sample (eeglab_data.set/.fdt)",
    "openbci_sample": "OpenBCI GUI v6 sample recording",
    "uci_eeg_eye_state": "UCI EEG Eye State (ARFF)",
}


def load_script(relative_path: str):
    """Import one of the repository's scripts (``"benchmarks/downstream.py"``) as a module and return it.

    Its folder goes on ``sys.path`` (scripts import their neighbours) and the module into
    ``sys.modules`` under its file name (dataclasses look their module up there).
    """
    path = REPO / relative_path
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def in_ci() -> bool:
    """True under CI (``CI`` env var set and not ``0``/``false``/``no``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def expected_files() -> dict[str, list[str]]:
    """Dataset folder -> the files (relative paths) of it that the tests read."""
    files: dict[str, list[str]] = {}
    if not CHECKSUMS.is_file():
        return files
    for line in CHECKSUMS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            path = line.split(maxsplit=1)[1].strip()
            files.setdefault(path.split("/", 1)[0], []).append(path)
    return files


def missing_data_message(datasets=None, root: Path | None = None) -> str | None:
    """None when every file of ``datasets`` (default: all) is under ``root``, else what is missing
    and how to get it, in one message."""
    root = SHARED_DATA if root is None else Path(root)
    wanted = list(datasets) if datasets else list(DATASETS)
    listed = expected_files()
    missing = {name: [p for p in listed.get(name, [name]) if not (root / p).exists()] for name in wanted}
    missing = {name: paths for name, paths in missing.items() if paths}
    if not missing:
        return None
    what = "; ".join(f"{DATASETS.get(name, name)} ({name}/: {len(paths)} of {len(listed.get(name, [name]))} "
                     f"files missing, e.g. {paths[0]})" for name, paths in missing.items())
    where = "no such folder" if not root.is_dir() else "incomplete"
    return (f"real EEG test data not found at {root} ({where}): {what}. Get it with "
            f"`python scripts/fetch_test_data.py --dest {root}` (public sources and sha256 checksums: DATA.md), "
            "or point EEGFM_SHARED_DATA at a copy."
            + (" CI=true: a missing data folder is a failure in CI, not a skip." if in_ci() else ""))


def _datasets_of(item) -> list[str] | None:
    """The datasets a test needs: the ``real_data`` marker's arguments, else the dataset folders its
    function names, else those its module names, else None (all of them)."""
    marker = item.get_closest_marker("real_data")
    if marker is not None and marker.args:
        return list(marker.args)
    for source in (lambda: inspect.getsource(item.function), lambda: Path(str(item.fspath)).read_text("utf-8")):
        try:
            named = [name for name in DATASETS if name in source()]
        except (OSError, TypeError, AttributeError):
            continue
        if named:
            return named
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("real_data") is None:
            item.add_marker(pytest.mark.real_data)
    if "cuda" not in (config.getoption("markexpr", "") or ""):  # GPU tests only when -m names them
        gpu = [item for item in items if item.get_closest_marker("cuda") is not None]
        if gpu:
            config.hook.pytest_deselected(items=gpu)
            items[:] = [item for item in items if item.get_closest_marker("cuda") is None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("real_data") is None:
        return
    message = missing_data_message(_datasets_of(item))
    if message:
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real EEG test data folder (the ``real_data`` check has run before this)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(missing_data_message(), pytrace=False)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: OpenMP threads only add overhead (and spin
    badly when the 2 cores are shared). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ the pip walk-through, in the background
#: the test that checks scripts/pip_walkthrough.py's default run (tests/test_pip_walkthrough.py)
PIP_WALK_TEST = "test_readme_walkthrough_from_a_pip_installed_wheel"


@pytest.fixture(scope="session")
def pip_walk(tmp_path_factory):
    """``scripts/pip_walkthrough.py`` (default mode) started in a subprocess, as its test runs it:
    (process, its working folder, stdout file, stderr file). It is a chain of one-thread
    subprocesses (a wheel build, the commands, the README's blocks), so it runs beside the rest of
    the session on the second core (``_start_pip_walk_early``); its test waits for it."""
    folder = tmp_path_factory.mktemp("pip_walk")
    workdir, logs = folder / "work", folder / "logs"
    workdir.mkdir()
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1")
    with open(logs / "stdout", "w") as stdout, open(logs / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "pip_walkthrough.py"), "--workdir",
                                 str(workdir), "--shared-data", str(SHARED_DATA)], cwd=workdir, env=env,
                                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
    try:
        yield proc, workdir, logs / "stdout", logs / "stderr"
    finally:
        if proc.poll() is None:  # its test did not wait for it (deselected, failed early): stop the chain
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session", autouse=True)
def _start_pip_walk_early(request):
    """Starts ``pip_walk`` with the session's first test when the walk-through's test was collected
    (and its data is there), so that it is done, or nearly, when its test comes."""
    for item in request.session.items:
        if getattr(item, "originalname", None) == PIP_WALK_TEST:
            marker = item.get_closest_marker("real_data")
            if missing_data_message(list(marker.args) if marker and marker.args else None) is None:
                request.getfixturevalue("pip_walk")
            break
