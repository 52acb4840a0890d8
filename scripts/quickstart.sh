#!/usr/bin/env bash
# Sets everything up and runs the main job: a short GRPO run of SmolLM2-135M-Instruct (embedded,
# offline) on one-digit addition (configs/quickstart.yaml), ending with held-out accuracy before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/grpokit train --config configs/quickstart.yaml "$@"
