#!/usr/bin/env bash
# Set up everything on a fresh machine, idempotently: a virtual environment in .venv with
# torch installed FIRST (so no later requirement can pull a multi-GB CUDA build), then eegfm
# with its dev extras, then the torchaudio fix braindecode needs beside a CPU torch.
# A second run with unchanged pyproject.toml/setup files returns at once.
#   EEGFM_VENV     where the environment goes (default .venv)
#   TORCH_VERSION  torch to install first (default 2.13.0)
#   PYTHON         interpreter that creates the environment (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EEGFM_VENV:-.venv}
torch_version=${TORCH_VERSION:-2.13.0}
key=$(cat pyproject.toml scripts/setup.sh scripts/fix_torchaudio.py eegfm/fix_torchaudio.py | sha256sum | cut -c1-16)
stamp="$venv/.eegfm-setup-$key-$torch_version"
if [ -f "$stamp" ]; then
    exit 0
fi
echo "[setup] creating $venv (torch==$torch_version first, then eegfm[dev])"
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip_install() {  # quiet, minus the noise of package-index locations that do not exist here
    "$venv/bin/python" -m pip install --quiet --no-input "$@" 2>&1 | { grep -v "^WARNING: Location '" || true; }
}
pip_install "torch==$torch_version"
pip_install -e ".[dev]" "torch==$torch_version"
"$venv/bin/python" scripts/fix_torchaudio.py
"$venv/bin/python" -c "import eegfm, sys; assert 'braindecode' not in sys.modules; print('[setup] eegfm', eegfm.__version__, 'ready')"
touch "$stamp"
