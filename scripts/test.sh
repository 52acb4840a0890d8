#!/usr/bin/env bash
# Sets everything up (Python env, bubblewrap, chromium) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two pytest workers (GRPOKIT_TEST_WORKERS; 0 runs in this process alone), each test file on one
# worker (its module fixtures computed once): most long tests are child processes on one thread
# (training, torchrun ranks, vLLM), which left the second core idle (timings in the README).
# No path given: pytest collects tests/ (testpaths in pyproject.toml); given paths run alone.
exec .venv/bin/python -m pytest -p no:cacheprovider -n "${GRPOKIT_TEST_WORKERS:-2}" --dist loadfile "$@"
