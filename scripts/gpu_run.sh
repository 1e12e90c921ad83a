#!/usr/bin/env bash
# On the GPU machine (the device tool's `run`, with `carry: [".whl"]`): install the wheels that
# scripts/gpu_wheels.sh downloaded into /tmp/site and run benchmarks/gpu_check.sh, writing its JSON,
# XML and log under $OUT/gpu (where the device tool fetches files from; at most 8 come back, so they are
# also packed into one archive) or under benchmarks/results/gpu without $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$DIR"/*.whl \
  || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHON=python3 PYTHONUNBUFFERED=1
RESULTS=/tmp/gpu_results
mkdir -p "$RESULTS"
bash benchmarks/gpu_check.sh "$RESULTS" 2>&1 | grep -v '^USDT' | tee "$RESULTS/gpu_check.log"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/gpu_results.tgz" -C /tmp gpu_results && cp "$RESULTS/gpu_check.log" "$OUT/"
else
  mkdir -p benchmarks/results/gpu && cp -r "$RESULTS"/* benchmarks/results/gpu/
fi
exit "$status"
