"""Make ``import braindecode`` work next to a CPU-only torch (run by scripts/setup.sh).

A thin wrapper: the fix ships inside the package as ``python -m eegfm.fix_torchaudio``
(eegfm/fix_torchaudio.py), so a pip user has it too.
"""

import sys

from eegfm.fix_torchaudio import main

if __name__ == "__main__":
    sys.exit(main())
