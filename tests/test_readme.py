"""Every ```python block of README.md runs as a user would copy it.

Each block runs on its own (a fresh namespace: a block must import what it uses) in an empty
working directory that holds what the README's paths name:

- ``shared/data`` -> the real EEG test recordings (DATA.md); blocks that read it are ``real_data``;
- ``runs/pretrain/encoder`` -> a tiny ``MAPEEncoder`` (what ``eegfm pretrain`` writes there);

offline (``HF_HUB_OFFLINE=1``), with warnings as errors, and failing on MNE's "filter_length
is longer than the signal" (which eegfm logs instead of warning).

The README may steer a block only with a visible HTML comment on the line(s) right above it:

- ``<!-- readme-test: skip: REASON -->``: not run (e.g. it needs the Hub's datasets or a GPU);
  it must still compile and its imports must work. ``EXPECTED_SKIPPED`` counts them;
- ``<!-- readme-test: run with `OLD` -> `NEW` (REASON) -->``: run with ``OLD`` replaced by ``NEW``
  (sizes only, e.g. fewer epochs); ``OLD`` must occur in the block exactly once.
"""

from __future__ import annotations

import ast
import logging
import sys

import pytest

from conftest import DATASETS, REPO, SHARED_DATA

sys.path.insert(0, str(REPO / "scripts"))
from readme_blocks import Block, readme_blocks  # noqa: E402  (shared with scripts/pip_walkthrough.py)

README = REPO / "README.md"
#: how many blocks README.md marks ``skip`` (the OpenEEGBench call downloads its datasets from the Hub).
EXPECTED_SKIPPED = 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.skip is None]


def _param(block: Block):
    named = [name for name in DATASETS if f"shared/data/{name}" in block.code]
    marks = [pytest.mark.real_data(*named)] if "shared/data" in block.code else []
    return pytest.param(block, id=f"README.md:{block.line}", marks=marks)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    import torch

    from eegfm import MAPEEncoder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    torch.manual_seed(0)
    MAPEEncoder(embed_dim=32, depth=1, num_heads=2).save_pretrained(tmp_path / "runs" / "pretrain" / "encoder")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("block", [_param(b) for b in RUN])
# MOABB's results store calls h5py in a way h5py now deprecates (as in tests/test_moabb_example.py)
@pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype is deprecated")
# braindecode's Hub mixin says it rebuilt chs_info from config.json (as in tests/test_braindecode_generic.py)
@pytest.mark.filterwarnings("ignore:Modifying chs_info argument using the _deserialize_chs_info:UserWarning")
def test_readme_block_runs(block, workdir, caplog):
    code = compile(block.runnable(), f"README.md:{block.line}", "exec")
    with caplog.at_level(logging.WARNING):
        exec(code, {"__name__": "__main__"})
    too_long = [r.getMessage() for r in caplog.records if "filter_length" in r.getMessage()]
    assert not too_long, too_long


def test_readme_skips_few_blocks_each_with_a_reason():
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert len(skipped) == EXPECTED_SKIPPED, [(b.line, b.skip) for b in skipped]
    assert len(RUN) >= 4
    for block in skipped:  # still valid Python whose imports work
        tree = ast.parse(block.code, f"README.md:{block.line}")
        imports = ast.Module([node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], [])
        exec(compile(imports, f"README.md:{block.line}", "exec"), {})


def test_directives_are_checked():
    text = 'a\n<!-- readme-test: run with `x=2` -> `x=1` (short) -->\n```python\nx=2\n```\n'
    [block] = readme_blocks(text)
    assert block.replace == [("x=2", "x=1")] and block.runnable() == "x=1\n" and block.line == 3
    [block] = readme_blocks("<!-- readme-test: skip: needs a GPU -->\n```python\nimport torch\n```\n")
    assert block.skip == "needs a GPU"
    with pytest.raises(ValueError, match="not understood"):
        readme_blocks("<!-- readme-test: skip -->\n```python\npass\n```\n")  # no reason
    with pytest.raises(ValueError, match="not right above"):
        readme_blocks("<!-- readme-test: skip: x -->\n\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="must occur once"):
        readme_blocks('<!-- readme-test: run with `y` -> `z` (r) -->\n```python\nx=1\n```\n')[0].runnable()
