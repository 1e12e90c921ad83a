"""The ```python blocks of README.md, with the ``readme-test`` directives right above them.

Shared by ``tests/test_readme.py`` (runs every block against the development install) and
``scripts/pip_walkthrough.py`` (runs them against a wheel installed with pip). Standard library
only: the walk-through imports it before any eegfm is installed.

The README may steer a block only with a visible HTML comment on the line(s) right above it:

- ``<!-- readme-test: skip: REASON -->``: not run (e.g. it needs the Hub's datasets or a GPU);
  it must still compile and its imports must work;
- ``<!-- readme-test: run with `OLD` -> `NEW` (REASON) -->``: run with ``OLD`` replaced by ``NEW``
  (sizes only, e.g. fewer epochs); ``OLD`` must occur in the block exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Block", "readme_blocks"]

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
