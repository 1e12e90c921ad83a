#!/usr/bin/env bash
# Wheels that let the GPU machine run benchmarks/gpu_check.sh: its image has torch (2.11, CUDA) and
# Python 3.12 but none of mne, braindecode or diffusers, and it cannot reach a package index. This
# downloads, for Python 3.12 on x86-64 Linux, the packages that `import eegfm`, braindecode's Labram and
# diffusers' UNet need beyond what that image holds, at the versions of this checkout's .venv
# (boto3/botocore, zarr/numcodecs, pycountry and kernels are left out: not needed at import). About 21 MB.
#
#   bash scripts/gpu_wheels.sh [DIR]        # DIR defaults to .whl (git-ignored); then, on the GPU machine:
#   bash scripts/gpu_run.sh [DIR]           # install them into /tmp/site and run benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${PYTHON:-.venv/bin/python}
NAMES="CoLT5-attention annotated-types array-api-compat array-api-extra axial_positional_embedding bracex
braindecode cffi decorator diffusers docstring-inheritance hyper-connections jmespath linear-attention-transformer
linformer local-attention mne mne-bids moabb nemar-py platformdirs pooch product_key_memory pydantic pydantic_core
pymatreader pyriemann remotezip skorch sniffio soundfile torchinfo truststore typing-inspection wcmatch wfdb"
SPECS=$("$PY" - $NAMES <<'PYEOF'
import importlib.metadata as metadata
import sys
print(" ".join(f"{name}=={metadata.version(name)}" for name in sys.argv[1:]))
PYEOF
)
mkdir -p "$DIR"
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DIR" $SPECS
echo "$(ls "$DIR"/*.whl | wc -l) wheels in $DIR ($(du -sh "$DIR" | cut -f1))"
