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
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import DATASETS, REPO, SHARED_DATA

README = REPO / "README.md"
#: how many blocks README.md marks ``skip`` (the OpenEEGBench call downloads its datasets from the Hub).
EXPECTED_SKIPPED = 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(?P<body>.*?)\s*-->$")
_SKIP = re.compile(r"^skip:\s*(?P<reason>\S.*)$")
_REPLACE = re.compile(r"^run with `(?P<old>[^`]+)`\s*->\s*`(?P<new>[^`]*)`\s*\((?P<reason>.+)\)$")


@dataclass
class Block:
    line: int  # 1-based line of the ```python fence
    code: str
    skip: str | None = None
    replace: list[tuple[str, str]] = field(default_factory=list)

    def runnable(self) -> str:
        code = self.code
        for old, new in self.replace:
            assert code.count(old) == 1, f"README.md:{self.line}: {old!r} must occur once in the block"
            code = code.replace(old, new)
        return code


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text`` with the directives right above them. A directive that is
    not right above a python block, or that does not parse, is an error."""
    lines = text.splitlines()
    blocks, used = [], set()
    for i, line in enumerate(lines):
        if line.strip() != "```python":
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        block = Block(line=i + 1, code="\n".join(lines[i + 1:end]) + "\n")
        k = i - 1
        while k >= 0 and _DIRECTIVE.match(lines[k].strip()):
            body = _DIRECTIVE.match(lines[k].strip())["body"]
            used.add(k)
            if m := _SKIP.match(body):
                block.skip = m["reason"]
            elif m := _REPLACE.match(body):
                block.replace.append((m["old"], m["new"]))
            else:
                raise ValueError(f"README.md:{k + 1}: readme-test directive not understood: {body!r}")
            k -= 1
        blocks.append(block)
    stray = [k + 1 for k, line in enumerate(lines)
             if line.strip().startswith("<!--") and "readme-test" in line and k not in used]
    if stray:
        raise ValueError(f"README.md lines {stray}: readme-test directives not right above a ```python block")
    return blocks


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
