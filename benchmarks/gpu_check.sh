#!/usr/bin/env bash
# One prepared GPU check (issue 17): the CUDA-marked tests and every GPU benchmark, on one GPU
# (planned for an H200 in under 8 minutes; steps 1-7 took 134 s on one, step 8 113 s and step 9 115 s),
# each step with its own time limit, JSON under OUT.
#
#   benchmarks/gpu_check.sh                   # on the GPU machine: OUT = benchmarks/results/gpu
#   benchmarks/gpu_check.sh --tiny [OUT]      # CPU, tiny sizes: every command path in about a minute
#
# Steps (a failing step is recorded and the next one runs; the exit status is 1 if any failed):
#   1. pytest -m cuda on the test files that hold CUDA tests (junit XML in OUT)
#   2. encoder training step, B=128, bf16, 64 ch x 4 s, vs braindecode Labram, unpadded (eegfm's last block
#      on the CLS token alone, forward_cls); 2b. the same with every token through the last block
#   3. the same on padded mixed-montage batches (19/32/64 channels)
#   4. pre-training step (single pass, cached codes) vs a LaBraM-style masked step, unpadded
#   5. the same, padded
#   5b. the pre-training step with the first 6 of 12 blocks on the visible tokens only
#       (MaskedPretrainer(visible_blocks=6)), unpadded and padded
#   6. VQ codebook lookup memory (chunked vs torch.cdist)
#   7. inflated UNet step at fp16 vs the 2-D UNet (SD-1.5 architecture, random weights)
#   8. where the time goes: kernel tables of the encoder step, Labram and the UNets, the step with each
#      patch-embedder variant (conv_impl conv/matmul, checkpoint_convs) and the embedder alone (gpu_profile.py)
#   9. the encoder step with both models compiled (torch.compile, compile time outside the timing)
#  10. the patch embedder alone at B=128: memory kept for the backward, peak and time of each way its
#      convolution stack runs (ConvNormGELU, written out, checkpointed, nn.Conv1d; conv_block_memory.py)
# The machine needs torch with CUDA, and mne, braindecode and diffusers importable (PYTHON names
# the interpreter; benchmarks/results/README.md, "The GPU check", says how they were carried).
# OUT/gpu_check_summary.json lists each step's command, exit status and seconds.
# In --tiny mode step 1 only collects the CUDA tests (there is no GPU to run them on).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
TINY=0
if [ "${1:-}" = "--tiny" ]; then TINY=1; shift; fi
OUT=${1:-benchmarks/results/gpu}
mkdir -p "$OUT"
SUMMARY="$OUT/gpu_check_summary.tsv"
: > "$SUMMARY"

if [ "$TINY" = 1 ]; then
  ENC=(--device cpu --size tiny --batch-size 3 --n-chans 8 --caps 3,5,8 --seconds 1 --patch-size 50
       --dtype bf16 --warmup 1 --steps 1 --rounds 1 --num-codes 32)
  VQ=(--device cpu --n 4000 --naive-n 1000 --k 64)
  UNET=(--device cpu --size tiny --dtype fp32 --frames 2 --height 8 --width 8 --warmup 1 --steps 1 --rounds 1
        --inference-steps 1)
  TESTS=(--collect-only)
  PROFILE=(--device cpu --size tiny --batch-size 2 --n-chans 4 --seconds 2 --warmup 1 --steps 1 --rounds 1
            --profile-steps 1 --top 5)
  COMPILED=(--device cpu --size tiny --batch-size 2 --n-chans 4 --seconds 1 --patch-size 50 --dtype fp32
            --warmup 1 --steps 1 --rounds 1)
  CONVMEM=(--device cpu --batch-size 1 --rounds 1)
  T_TESTS=60 T_STEP=60 T_VQ=60 T_UNET=60 T_PROFILE=60 T_COMPILED=240 T_CONVMEM=60
  VISIBLE=1  # of tiny's 2 blocks
else
  ENC=(--device cuda --size base --batch-size 128 --dtype bf16 --warmup 5 --steps 10 --rounds 3)
  VQ=(--device cuda)
  UNET=(--device cuda --dtype fp16 --warmup 3 --steps 10 --rounds 3 --inference-steps 50)
  TESTS=()
  PROFILE=(--device cuda --unet --compile-embedder)
  COMPILED=("${ENC[@]}")
  # took 12, 21, 20, 20, 22, 16 and 23 s on an H200 (steps 1-7), 113 s for step 8 and 100-150 s for step 9
  CONVMEM=(--device cuda --batch-size 128 --rounds 5)
  T_TESTS=60 T_STEP=40 T_VQ=30 T_UNET=60 T_PROFILE=180 T_COMPILED=200 T_CONVMEM=40
  VISIBLE=6  # of base's 12 blocks
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, record status and duration
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$*" >> "$SUMMARY"
  echo "== $name: exit $rc, $((SECONDS - start)) s"
}

mapfile -t CUDA_TEST_FILES < <(grep -l "pytest.mark.cuda" tests/test_*.py)
step cuda_tests "$T_TESTS" "$PY" -m pytest -q -m cuda "${TESTS[@]}" --junitxml="$OUT/cuda_tests.xml" "${CUDA_TEST_FILES[@]}"
step encoder_step "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --out "$OUT"
step encoder_step_full_last "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --full-last-block \
  --out "$OUT"
step encoder_step_padded "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --padded --out "$OUT"
step pretrain_step "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --task pretrain --single-pass \
  --cached-codes --out "$OUT"
step pretrain_step_padded "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --task pretrain \
  --single-pass --cached-codes --padded --out "$OUT"
step pretrain_step_visible "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --task pretrain \
  --single-pass --cached-codes --visible-blocks "$VISIBLE" --out "$OUT"
step pretrain_step_visible_padded "$T_STEP" "$PY" benchmarks/encoder_throughput.py "${ENC[@]}" --task pretrain \
  --single-pass --cached-codes --visible-blocks "$VISIBLE" --padded --out "$OUT"
step vq_lookup_memory "$T_VQ" "$PY" benchmarks/vq_lookup_memory.py "${VQ[@]}" --out "$OUT"
step video_unet_step "$T_UNET" "$PY" benchmarks/video_unet_step.py "${UNET[@]}" --out "$OUT"
step profile "$T_PROFILE" "$PY" benchmarks/gpu_profile.py "${PROFILE[@]}" --out "$OUT"
step encoder_step_compiled "$T_COMPILED" "$PY" benchmarks/encoder_throughput.py "${COMPILED[@]}" --compile \
  --compile-labram --out "$OUT"
step conv_block_memory "$T_CONVMEM" "$PY" benchmarks/conv_block_memory.py "${CONVMEM[@]}" \
  --out "$OUT/conv_block_memory_${CONVMEM[1]}.json"

"$PY" - "$SUMMARY" "$OUT/gpu_check_summary.json" <<'EOF'
import json, sys
rows = [line.rstrip("\n").split("\t", 3) for line in open(sys.argv[1])]
steps = [{"step": n, "exit": int(rc), "seconds": int(s), "command": c} for n, rc, s, c in rows]
json.dump({"steps": steps, "passed": all(s["exit"] == 0 for s in steps)}, open(sys.argv[2], "w"), indent=2)
print("\n".join(f"{s['step']:22s} exit {s['exit']:3d} {s['seconds']:4d} s" for s in steps))
EOF
rm -f "$SUMMARY"
! grep -q '"passed": false' "$OUT/gpu_check_summary.json"
