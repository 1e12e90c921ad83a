"""Make ``import braindecode`` work when torchaudio cannot load its compiled library.

Run it as ``python -m eegfm.fix_torchaudio`` (``--dry-run`` only says what it would remove).

braindecode (``eegfm[data]``) imports torchaudio. When the installed torchaudio wheel was built
for another torch, or for CUDA beside a CPU-only torch, its compiled extensions fail to load
(``OSError: Could not load this library: .../torchaudio/lib/_torchaudio.so``) and every
``import torchaudio`` dies. The clean fix is the torchaudio built for the installed torch
(``pip install torchaudio==<torch's version>``). Where there is none, this module removes the
unloadable ``torchaudio/lib/*.so`` files, after which braindecode runs on the pure-Python parts
of torchaudio it uses. It does so only when ``import torchaudio`` fails with that ``OSError``; a
working torchaudio is never touched. ``import eegfm`` never imports braindecode or torchaudio.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "torchaudio_lib_dir"]


def _import_ok(module: str) -> tuple[bool, str]:
    """Whether ``import module`` works in a fresh interpreter, and the last line of its error."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 0, lines[-1] if lines else ""


def torchaudio_lib_dir() -> Path | None:
    """The folder of torchaudio's compiled extensions (``torchaudio/lib``), or None if not installed."""
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def main(argv: list[str] | None = None) -> int:
    """Remove torchaudio's compiled extensions if, and only if, they cannot load.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--dry-run`` lists the files
        without removing them.

    Returns
    -------
    int
        0 when ``import braindecode`` works afterwards (or torchaudio is not installed), 1 when
        torchaudio fails for another reason or braindecode still does not import.
    """
    parser = argparse.ArgumentParser(prog="python -m eegfm.fix_torchaudio", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be removed, remove none")
    args = parser.parse_args(argv)
    lib = torchaudio_lib_dir()
    if lib is None:
        print("torchaudio is not installed: nothing to fix")
        return 0
    ok, err = _import_ok("torchaudio")
    if not ok:
        if "OSError" not in err:
            print(f"import torchaudio fails for another reason, left alone: {err}", file=sys.stderr)
            return 1
        files = sorted(lib.glob("*.so"))
        if args.dry_run:
            print(f"torchaudio's compiled extensions cannot load ({err}); would remove {len(files)} files from "
                  f"{lib}: {', '.join(p.name for p in files)}")
            return 0
        for path in files:
            path.unlink()
        print(f"torchaudio's compiled extensions could not load ({err}); removed {len(files)} files from {lib} "
              "so braindecode can use its pure-Python parts")
    ok, err = _import_ok("braindecode")
    if not ok:
        print(f"import braindecode still fails: {err}", file=sys.stderr)
        return 1
    print("import braindecode: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
