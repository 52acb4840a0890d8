#!/usr/bin/env bash
# Device checks of issue 14 for a lent GPU machine: LoRA, QLoRA and gradient checkpointing on CUDA
# (bf16 compute), and with >= 2 GPUs the 2-process NCCL runs (replicated and FSDP2-sharded) against the
# 1-process one in fp32, plus FSDP2 with bf16 compute (MixedPrecisionPolicy) and a reference model.
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
  run two_proc_fsdp $PY -m grpokit train "${COMMON[@]}" --dtype fp32 --nproc 2 --sharding fsdp --out "$OUT/p2f"
  # bf16 compute over fp32 master shards, with the KL reference sharded too; then resumed on one GPU
  run fsdp_bf16 $PY -m grpokit train "${COMMON[@]}" --dtype auto --beta 0.04 --nproc 2 --sharding fsdp --stop-after 2 --out "$OUT/p2fb"
  run fsdp_bf16_resume_1proc $PY -m grpokit train "${COMMON[@]}" --dtype auto --beta 0.04 --resume true --out "$OUT/p2fb"
  run ddp_bf16 $PY -m grpokit train "${COMMON[@]}" --dtype auto --beta 0.04 --nproc 2 --out "$OUT/p2db"
  $PY - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import sys
from safetensors.torch import load_file
def w(run):
    return load_file(f"{sys.argv[1]}/{run}/checkpoints/step_000003/model.safetensors")
def show(label, a, b):  # one line per pair; a failed run says so instead of stopping the summary
    try:
        wa, wb = w(a), w(b)
        print(label, max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa))
    except Exception as e:
        print(label, f"n/a ({type(e).__name__}: {e})")
show("1 vs 2 NCCL ranks (ddp), fp32, max |dw| after 3 steps:", "p1", "p2")
show("1 vs 2 NCCL ranks (fsdp), fp32, max |dw| after 3 steps:", "p1", "p2f")
show("bf16 compute, fsdp (stopped at 2, resumed on 1 GPU) vs ddp, max |dw| (bf16 rounding, not 0):", "p2db", "p2fb")
PY
else
  echo "two_proc: skipped (NCCL needs one GPU per rank; this machine has $NGPU)" | tee -a "$OUT/summary.txt"
fi
if [ "$NGPU" -ge 2 ]; then
  run bench_memory $PY bench/memory.py --models 135m,360m
else  # the 2-rank cells need a GPU per rank under NCCL
  run bench_memory $PY bench/memory.py --models 135m,360m --cells "full;lora;full + checkpointing;lora + checkpointing"
fi
cat "$OUT/summary.txt"
