#!/usr/bin/env bash
# Sets everything up (Python env, bubblewrap, chromium) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# No path given: pytest collects tests/ (testpaths in pyproject.toml); given paths run alone.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
