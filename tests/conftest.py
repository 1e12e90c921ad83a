"""Shared test fixtures. Tests never reach the network: the Hub is offline for the session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

#: ../shared/data beside the repository (always present in CI); EEGFM_SHARED_DATA overrides it.
SHARED_DATA = Path(
    os.environ.get("EEGFM_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real EEG test data not found at {SHARED_DATA}; put the shared/ folder beside the repo")
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
