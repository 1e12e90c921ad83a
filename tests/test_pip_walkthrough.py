"""``scripts/pip_walkthrough.py``: README.md walked through against a wheel installed with pip.

The slow test runs the script's default mode (the wheel installed with ``pip install --no-deps
--target`` outside the repository, this interpreter's dependencies, the development install
hidden) in a subprocess: every README python block, the ``eegfm`` / ``eegfm-video`` commands
and the bundled sample must work from the wheel. ``--fresh-venv`` (a new venv, torch first) is
for a person to run by hand and is not run here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATASETS, REPO

sys.path.insert(0, str(REPO / "scripts"))
import pip_walkthrough  # noqa: E402
from readme_blocks import readme_blocks  # noqa: E402

SCRIPT = REPO / "scripts" / "pip_walkthrough.py"
BLOCKS = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.skip is None]
#: the test-data folders (shared/data/<name>) that the README's blocks read
NEEDED = [name for name in DATASETS if any(f"shared/data/{name}" in b.code for b in RUN)]


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


@pytest.mark.slow
@pytest.mark.real_data(*NEEDED)
def test_readme_walkthrough_from_a_pip_installed_wheel(pip_walk):
    # the walk was started in the background with the session's first test (conftest.py: pip_walk)
    proc, tmp_path, stdout, stderr = pip_walk
    try:
        returncode = proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/pip_walkthrough.py took more than 900 s")
    proc = subprocess.CompletedProcess(proc.args, returncode, stdout.read_text(), stderr.read_text())
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-8000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASS: "), out[-8000:]
    assert f"{len(RUN)} of {len(RUN)} README python blocks run, {len(BLOCKS) - len(RUN)} skipped" in last
    where = Path(re.search(r"^\[walk\] eegfm imported from: (.+)$", out, re.M)[1]).resolve()
    assert tmp_path.resolve() in where.parents, where  # the --target install in the walk's folder ...
    assert REPO not in where.parents, where  # ... not the source tree (the development install)
    assert where.parts[-2:] == ("eegfm", "__init__.py")
    assert "install eegfm[video]: pip install 'eegfm[video]'" in out  # eegfm-video without the extra
    assert not list(tmp_path.iterdir())  # a PASS removes its temporary folder


def test_the_guard_hides_the_development_install_and_catches_the_source_tree(tmp_path):
    """The walk's sitecustomize removes the editable finder; an eegfm from the source tree anyway
    (here: the repository as the working directory) makes the process exit with status 97."""
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(pip_walkthrough.GUARD, encoding="utf-8")
    env = _env(PYTHONPATH=str(tmp_path / "guard"), PYTHONNOUSERSITE="1",
               EEGFM_WALK_SITE=str(tmp_path / "site"), EEGFM_WALK_REPO=str(REPO))
    find = "import importlib.util; print(importlib.util.find_spec('eegfm'))"
    hidden = subprocess.run([sys.executable, "-c", find], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert hidden.returncode == 0 and hidden.stdout.strip() == "None", hidden.stdout + hidden.stderr
    from_repo = subprocess.run([sys.executable, "-c", "import eegfm"], cwd=REPO, env=env, capture_output=True,
                               text=True)
    assert from_repo.returncode == 97, from_repo.stderr
    assert f"eegfm was imported from {REPO / 'eegfm' / '__init__.py'}, not from the pip install" in from_repo.stderr


def test_the_walk_refuses_a_folder_inside_the_repository():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(REPO / "tests")], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "is inside the repository" in proc.stderr, proc.stderr
