#!/usr/bin/env bash
# Sets everything up and runs the main job: a short GRPO run of SmolLM2-135M-Instruct (embedded,
# offline) on one-step grade-school word problems (configs/quickstart.yaml), ending with held-out
# greedy accuracy and pass@1 before and after. The one-digit addition job: --config configs/add1.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/grpokit train --config configs/quickstart.yaml "$@"
