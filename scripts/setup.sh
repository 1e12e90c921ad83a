#!/usr/bin/env bash
# Set up everything on a fresh machine, idempotently: a virtual environment in .venv with
# torch installed FIRST (so no later requirement can pull a multi-GB CUDA build), then eegfm,
# then (full set-up only) the torchaudio fix braindecode needs beside a CPU torch.
#   bash scripts/setup.sh          eegfm with its dev extras: the test suite, the benchmarks, video (CI)
#   bash scripts/setup.sh --demo   eegfm with its core dependencies only: enough for `eegfm demo`
#                                  (also EEGFM_SETUP=demo); a full set-up already there satisfies it
# A second run with unchanged pyproject.toml/setup files returns at once. Each step prints a
# line before it starts, and pip shows what it collects, downloads (with a progress bar) and installs.
#   EEGFM_VENV     where the environment goes (default .venv)
#   TORCH_VERSION  torch to install first (default 2.13.0)
#   PYTHON         interpreter that creates the environment (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${EEGFM_SETUP:-dev}
for arg in "$@"; do
    case "$arg" in
        --demo) mode=demo ;;
        --dev) mode=dev ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "[setup] unknown option $arg (use --demo, --dev or nothing)" >&2; exit 2 ;;
    esac
done
case "$mode" in demo|dev) ;; *) echo "[setup] EEGFM_SETUP must be demo or dev, got $mode" >&2; exit 2 ;; esac
venv=${EEGFM_VENV:-.venv}
torch_version=${TORCH_VERSION:-2.13.0}
key=$(cat pyproject.toml scripts/setup.sh scripts/fix_torchaudio.py eegfm/fix_torchaudio.py | sha256sum | cut -c1-16)
stamp="$venv/.eegfm-setup-$key-$torch_version"
if [ -f "$stamp-dev" ] || { [ "$mode" = demo ] && [ -f "$stamp-demo" ]; }; then
    echo "[setup] $venv is already set up ($([ -f "$stamp-dev" ] && echo dev || echo demo)); nothing to do"
    exit 0
fi
if [ "$mode" = dev ]; then target=".[dev]"; steps=4; else target="."; steps=3; fi
SECONDS=0
step() { echo "[setup] ($1/$steps, ${SECONDS} s so far) $2"; }
pip_install() {  # pip's own progress output, minus the noise of package-index locations that do not exist here
    "$venv/bin/python" -m pip install --no-input --progress-bar on "$@" \
        2> >(grep --line-buffered -v "^WARNING: Location '" >&2 || true)
}
if [ -x "$venv/bin/python" ]; then
    step 1 "using the virtual environment $venv"
else
    step 1 "creating the virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
step 2 "installing torch==$torch_version first (the largest download)"
pip_install "torch==$torch_version"
if [ "$mode" = dev ]; then
    step 3 "installing eegfm[dev]: core dependencies plus the test, data, benchmark, fine-tuning and video extras"
else
    step 3 "installing eegfm with its core dependencies only (numpy, mne, huggingface_hub, safetensors, tqdm, jinja2, matplotlib)"
fi
pip_install -e "$target" "torch==$torch_version"
if [ "$mode" = dev ]; then
    step 4 "fixing torchaudio for braindecode beside a CPU torch (only if it cannot load)"
    "$venv/bin/python" scripts/fix_torchaudio.py
fi
"$venv/bin/python" -c "import eegfm, sys; assert 'braindecode' not in sys.modules; print('[setup] eegfm', eegfm.__version__, 'ready')"
echo "[setup] done in ${SECONDS} s ($mode set-up in $venv)"
touch "$stamp-$mode"
