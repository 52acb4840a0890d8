#!/usr/bin/env bash
# The engine checks of issue 13 on a CUDA machine, in one go (sized for a few minutes of a lent GPU):
#   1. install vLLM (CUDA build) beside the project, if missing;
#   2. the vLLM tests (log-probs vs the learner, weight sync, greedy text vs the HF engine, a short
#      training run) on the GPU;
#   3. bench/engines.py: HF engine vs transformers' generate vs vLLM, same prompts, G, cap, temperature.
# Usage: bash scripts/gpu_engines.sh [B] [G] [MAX_NEW_TOKENS]    (defaults 16 8 128)
# Everything it prints is also written to $OUT (or ./gpu_engines_out) for the report.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-16}; G=${2:-8}; CAP=${3:-128}
OUTDIR=${OUT:-gpu_engines_out}; mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu.txt"
.venv/bin/python -c "import vllm" 2>/dev/null || $PIP install -e ".[vllm,test]" 2>&1 | tail -3
$PIP install -e ".[test]" 2>&1 | tail -3
.venv/bin/python -c "import torch, transformers, vllm; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| vllm', vllm.__version__)" | tee "$OUTDIR/versions.txt"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_ENABLE_V1_MULTIPROCESSING=0
# The tests build their models locally; on CUDA the engine takes vllm_gpu_memory_utilization of the GPU.
timeout 300 .venv/bin/python -m pytest tests/rollout/test_vllm.py tests/algo/test_correction.py -q -p no:cacheprovider -x \
  2>&1 | tee "$OUTDIR/tests.txt" || echo "tests exited $?" | tee -a "$OUTDIR/tests.txt"
timeout 400 .venv/bin/python bench/engines.py --device cuda --B "$B" --G "$G" --max-new-tokens "$CAP" --repeats 3 \
  2>&1 | tee "$OUTDIR/bench.txt"
