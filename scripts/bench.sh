#!/usr/bin/env bash
# `make bench`: every benchmark under bench/*/run.sh, each printing its figures
# beside a peer measured in the same run. BENCH=name runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*/run.sh; do
  name=$(basename "$(dirname "$b")")
  [ -n "${BENCH:-}" ] && [ "$BENCH" != "$name" ] && continue
  "$b"
done
