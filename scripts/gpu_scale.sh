#!/usr/bin/env bash
# Device checks of issue 14 for a lent GPU machine: LoRA, QLoRA and gradient checkpointing on CUDA
# (bf16 compute), and with >= 2 GPUs the 2-process NCCL run against the 1-process one.
# Usage: bash scripts/gpu_scale.sh [OUT_DIR]   (needs: pip install -e '.[lora,test]'; bitsandbytes for QLoRA)
set -uo pipefail
OUT=${1:-${OUT:-/tmp/gpu_scale}}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD/src:$PWD"
PY=${PYTHON:-python}
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $NGPU" | tee "$OUT/summary.txt"
run() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s)
  if "$@" > "$OUT/$name.log" 2>&1; then r=ok; else r="FAILED (rc $?)"; fi
  echo "$name: $r in $(( $(date +%s) - t0 ))s" | tee -a "$OUT/summary.txt"
}
COMMON=(--task add2 --steps 3 --prompts-per-step 4 --group-size 4 --max-new-tokens 32 --eval-size 0 --progress false)
# the tests that cover these paths, now on CUDA (device auto)
run tests_policy_lora $PY -m pytest -x -q -p no:cacheprovider tests/train/test_policy.py tests/train/test_lora.py
run lora     $PY -m grpokit train "${COMMON[@]}" --lora-rank 16 --lr 1e-4 --beta 0.04 --out "$OUT/lora" --lora-save-merged true
run eval_lora $PY -m grpokit eval --model "$OUT/lora" -n 20
run qlora    $PY -m grpokit train "${COMMON[@]}" --lora-rank 16 --lr 1e-4 --load-in-4bit true --out "$OUT/qlora"
run gradckpt $PY -m grpokit train "${COMMON[@]}" --gradient-checkpointing true --out "$OUT/gc"
if [ "$NGPU" -ge 2 ]; then
  run one_proc $PY -m grpokit train "${COMMON[@]}" --dtype fp32 --out "$OUT/p1"
  run two_proc $PY -m grpokit train "${COMMON[@]}" --dtype fp32 --nproc 2 --out "$OUT/p2"
  $PY - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import sys
from safetensors.torch import load_file
a = load_file(f"{sys.argv[1]}/p1/checkpoints/step_000003/model.safetensors")
b = load_file(f"{sys.argv[1]}/p2/checkpoints/step_000003/model.safetensors")
print("1 vs 2 NCCL ranks, max |dw| after 3 steps:", max(float((a[k] - b[k]).abs().max()) for k in a))
PY
else
  echo "two_proc: skipped (NCCL needs one GPU per rank; this machine has $NGPU)" | tee -a "$OUT/summary.txt"
fi
run bench_memory $PY bench/memory.py --models 135m,360m
cat "$OUT/summary.txt"
