#!/usr/bin/env bash
# Runs every fuzz target (build/fuzz/fuzz_*) for SECONDS each (argument 1,
# default 60): first the committed corpus tests/fuzz/corpus/<target>/ is
# replayed (every seed and every reproducer of a crash fixed before), then
# libFuzzer mutates from it, writing what it finds new to build/fuzz/corpus/
# (the committed folder is read, never written). A crash leaves its input in
# build/fuzz/crashes/<target>/ and fails the run; add it to the committed
# corpus once fixed. Prints one line per target: execs, execs/s, result.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
B=${BUILD:-build}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for bin in "$B"/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  t=$(basename "$bin")
  seeds=tests/fuzz/corpus/$t
  work=$B/fuzz/corpus/$t
  crashes=$B/fuzz/crashes/$t
  mkdir -p "$work" "$crashes"
  log=$B/fuzz/$t.log
  # 1. replay: every committed input once
  if ! "$bin" -runs=0 "$seeds" >"$log" 2>&1; then
    echo "fuzz $t: a committed input fails (see $log)"; tail -n 30 "$log"; fail=1; continue
  fi
  # 2. fuzz: new inputs into the work folder, seeds read from the committed one
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz $t: FAILED after ${execs:-?} execs ($(ls "$crashes" | head -n 3 | tr '\n' ' '))"
    grep -m1 -E "ERROR: |runtime error|SUMMARY" "$log"
    fail=1
  else
    echo "fuzz $t: ${execs:-0} execs, ${rate:-0} execs/s, no crash"
  fi
done
exit "$fail"
