"""Make ``import braindecode`` work next to a CPU-only torch.

braindecode hard-requires torchaudio. On machines where the only torchaudio wheel is a CUDA
build (no CPU build exists for the installed torch), its compiled extensions fail to load
(``OSError: libc10_cuda.so``) and every ``import torchaudio`` dies. braindecode only uses
torchaudio's pure-Python functions, so removing the unloadable ``torchaudio/lib/*.so`` lets it
run. This script does that only when ``import torchaudio`` actually fails with that OSError;
a working torchaudio (e.g. with CUDA torch) is never touched. eegfm itself never imports
braindecode or torchaudio.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path


def _import_ok(module: str) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def main() -> int:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None:
        print("torchaudio is not installed: nothing to fix")
        return 0
    ok, err = _import_ok("torchaudio")
    if not ok:
        if "OSError" not in err:
            print(f"import torchaudio fails for another reason, left alone: {err}", file=sys.stderr)
            return 1
        lib = Path(spec.submodule_search_locations[0]) / "lib"
        removed = sorted(lib.glob("*.so"))
        for path in removed:
            path.unlink()
        print(f"torchaudio's compiled extensions could not load ({err}); removed {len(removed)} "
              f"files from {lib} so braindecode can use its pure-Python parts")
    ok, err = _import_ok("braindecode")
    if not ok:
        print(f"import braindecode still fails: {err}", file=sys.stderr)
        return 1
    print("import braindecode: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
