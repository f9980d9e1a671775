#!/usr/bin/env bash
# bench/dedup: Self-Instruct's greedy ROUGE-L 0.7 filter over 10,000 and
# 50,000 generated instructions (tests/reference/rouge_reference.py corpus:
# templates, mutations that make near duplicates, odd characters), refinery
# (engine/data/dedup) beside the Python peer bench/dedup/dedup_ref.py on the
# same corpus in the same run; the decisions must be identical. refinery's
# time is the best of RUNS runs (default 3). SIZES overrides "10000 50000";
# NAIVE=N also times the plain all-pairs loop on the first N texts.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/dedup/dedup
make --no-print-directory "$bin" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== bench/dedup: greedy ROUGE-L > 0.7, OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}"
printf '%-8s %8s %12s %12s %9s  %s\n' texts kept refinery_s python_s ratio "length_cut/candidates/prefix_cut/bag_cut/lcs"
for n in ${SIZES:-10000 50000}; do
  python3 tests/reference/rouge_reference.py corpus "$n" 11 > "$tmp/c.jsonl"
  read -r ours kept counters < <("$bin" "$tmp/c.jsonl" "$tmp/ours.txt" "${RUNS:-3}")
  naive=()
  [ -n "${NAIVE:-}" ] && naive=(--naive "$NAIVE")
  read -r peer pkept rest < <(python3 bench/dedup/dedup_ref.py "$tmp/c.jsonl" "$tmp/peer.txt" "${naive[@]}")
  cmp -s "$tmp/ours.txt" "$tmp/peer.txt" || { echo "bench/dedup: decisions differ at $n texts"; exit 1; }
  printf '%-8s %8s %12s %12s %8.0fx  %s\n' "$n" "$kept" "$ours" "$peer" \
    "$(echo "$peer / $ours" | bc -l)" "$counters"
  # (an if, not `&&`: as the loop's last command a false test would end
  # the script with status 1, and make bench with it)
  if [ -n "${rest:-}" ]; then
    echo "         plain all-pairs Python loop on the first ${rest#* } texts: ${rest%% *} s (same decisions)"
  fi
done
