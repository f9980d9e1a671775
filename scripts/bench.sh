#!/usr/bin/env bash
# `make bench`: every benchmark under bench/*/run.sh, each printing its figures
# beside a peer measured in the same run. BENCH=name runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
# OpenBLAS's kernels for this CPU (engine/backend/blas_core.h: Debian's
# library falls back to SSE3 ones on CPUs newer than it knows). Our binaries
# set this themselves; exported here so that every PyTorch peer, which runs
# on the same library, gets the same kernels.
if core=$(build/bench/forward/forward --blas-core 2>/dev/null); then
  export OPENBLAS_CORETYPE=$core
  echo "OpenBLAS kernels: $core"
fi
for b in bench/*/run.sh; do
  name=$(basename "$(dirname "$b")")
  [ -n "${BENCH:-}" ] && [ "$BENCH" != "$name" ] && continue
  "$b"
done
