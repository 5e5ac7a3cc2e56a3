#!/usr/bin/env bash
# Runs one test (by name filter) N times in a row, optionally under CPU load, and keeps the output
# of every failing run: the tool for an intermittent failure.
#   tests/flake_loop.sh FILE FILTER [RUNS] [LOAD]
#     FILE    the test file (e.g. tests/e2e/qemu_test.ts)
#     FILTER  part of the test's name (deno test --filter)
#     RUNS    how many runs (default 50)
#     LOAD    busy loops on the side (default 2: one per CPU here), at nice $LOAD_NICE (default 0)
# Prints one line per run and a closing 'N passed, N failed' line; failing runs' output is kept in
# $TMPDIR/flake-<run>.log (the path is printed). Exit 1 when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
file=${1:?test file}
filter=${2:?test name filter}
runs=${3:-50}
load=${4:-2}
export PATH="$PWD/node_modules/.bin:$PATH"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
for _ in $(seq "$load"); do nice -n "${LOAD_NICE:-0}" sh -c 'while :; do :; done' & pids+=($!); done
passed=0 failed=0
for i in $(seq "$runs"); do
  log=${TMPDIR:-/tmp}/flake-$i.log
  t0=$(date +%s)
  if deno test --no-prompt --allow-all "$file" --filter "$filter" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "run $i: ok ($(($(date +%s) - t0)) s)"; rm -f "$log"
  else
    failed=$((failed + 1)); echo "run $i: FAILED ($(($(date +%s) - t0)) s), output in $log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
