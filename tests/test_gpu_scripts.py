"""scripts/gpu_wheels.sh and scripts/gpu_run.sh: what carries benchmarks/gpu_check.sh to a GPU machine
without a package index (the download itself needs the index and the run a GPU: not run here)."""

import importlib.metadata as metadata
import re
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _wheel_names() -> list[str]:
    text = (SCRIPTS / "gpu_wheels.sh").read_text()
    return re.search(r'NAMES="([^"]*)"', text).group(1).split()


def test_every_wheel_the_gpu_machine_needs_is_installed_here_to_pin_its_version():
    names = _wheel_names()
    assert {"braindecode", "mne", "diffusers", "pydantic_core"} <= set(names)
    assert len(names) == len(set(names))
    versions = {name: metadata.version(name) for name in names}  # raises PackageNotFoundError if one is missing
    assert all(versions.values())


def test_the_scripts_parse_and_the_runner_runs_the_gpu_check():
    for name in ("gpu_wheels.sh", "gpu_run.sh"):
        subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)
    runner = (SCRIPTS / "gpu_run.sh").read_text()
    assert "benchmarks/gpu_check.sh" in runner and "--target /tmp/site" in runner and "--no-index" in runner
