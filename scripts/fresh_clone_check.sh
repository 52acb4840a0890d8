#!/usr/bin/env bash
# What a new user gets: clones this repository's committed HEAD into a scratch folder and runs the
# README's two commands (the lines of its first code block) exactly as written, in that clone,
# which makes its own fresh .venv, with an empty model cache (GRPOKIT_CACHE) as on a new machine.
# Times each command, prints a summary, and exits non-zero if either fails.
#
# Usage: bash scripts/fresh_clone_check.sh [--main-args "ARGS"] [--test-args "ARGS"] [--only main|test] [--keep]
#   --main-args / --test-args  appended to the first / second command (e.g. --main-args "--steps 2
#                              --eval_size 4" for a short main job, --test-args "tests/test_x.py");
#                              the summary shows the commands as run
#   --only main|test           run just one of the two commands
#   --keep                     keep the scratch folder (clone, .venv, logs); by default it is removed
#   --print                    only print the commands it would run, one a line, and exit
# Uncommitted changes are not part of the check: commit first.
# As on an AVX2-only CPU without native bf16 (fp32 compute; this machine's AVX-512/AMX kernels off):
#   ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 bash scripts/fresh_clone_check.sh
# (the same clock and memory, so still faster than a real AVX2 laptop).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
main_args="" test_args="" only="" keep=0 print=0
while [ $# -gt 0 ]; do
  case "$1" in
    --main-args) main_args=$2; shift 2 ;;
    --test-args) test_args=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --print) print=1; shift ;;
    *) echo "fresh_clone_check.sh: unknown option $1 (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done

# The README's first code block, one command per line (comments stay: bash ignores them).
mapfile -t commands < <(awk '/^```/ { if (inside) exit; inside = 1; next } inside && NF' "$root/README.md")
if [ ${#commands[@]} -ne 2 ]; then
  echo "fresh_clone_check.sh: expected the README's first code block to hold 2 commands, found ${#commands[@]}" >&2
  exit 2
fi

names=(main test) to_run=()
for i in 0 1; do
  cmd=${commands[$i]%%#*}                     # the command as written, less its comment
  cmd=${cmd%"${cmd##*[![:space:]]}"}          # and its trailing spaces
  extra=$main_args; [ "$i" = 1 ] && extra=$test_args
  [ -z "$extra" ] || cmd="$cmd $extra"
  to_run+=("$cmd")
done
if [ "$print" = 1 ]; then printf '%s\n' "${to_run[@]}"; exit 0; fi

sha=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  echo "fresh_clone_check.sh: warning: uncommitted changes in $root are not checked (HEAD is ${sha:0:10})" >&2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/grpokit-fresh.XXXXXX")
if [ "$keep" = 0 ]; then trap 'rm -rf "$scratch"' EXIT; fi
git clone -q --no-checkout "$root" "$scratch/grpokit"
git -C "$scratch/grpokit" checkout -q --detach "$sha"
mkdir "$scratch/cache" "$scratch/logs"
echo "fresh_clone_check.sh: clone of ${sha:0:10} in $scratch/grpokit; model cache $scratch/cache" >&2

ran=() codes=() times=()
for i in 0 1; do
  [ -z "$only" ] || [ "$only" = "${names[$i]}" ] || continue
  cmd=${to_run[$i]}
  echo "==> [${names[$i]}] $cmd" >&2
  start=$(date +%s)
  set +e
  (cd "$scratch/grpokit" && env -u VIRTUAL_ENV -u PYTHONPATH GRPOKIT_CACHE="$scratch/cache" bash -c "$cmd") 2>&1 \
    | tee "$scratch/logs/${names[$i]}.log"
  code=${PIPESTATUS[0]}
  set -e
  ran+=("$cmd") codes+=("$code") times+=($(( $(date +%s) - start )))
done

echo
echo "fresh-clone check of ${sha:0:10} ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs):"
fail=0
for i in "${!ran[@]}"; do
  t=${times[$i]}
  status=ok; [ "${codes[$i]}" = 0 ] || { status="FAILED (exit ${codes[$i]})"; fail=1; }
  printf '  %-60s %3dm %02ds  %s\n' "${ran[$i]}" $((t / 60)) $((t % 60)) "$status"
done
[ "$keep" = 0 ] || echo "  (clone, .venv and logs kept in $scratch)"
exit $fail
