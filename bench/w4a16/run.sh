#!/usr/bin/env bash
# bench/w4a16: batch-1 mat-vec on 4096x4096 and 4096x14336 weights (both
# orientations of the latter), W4A16 beside F32 and BF16 via OpenBLAS.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/w4a16/w4a16
make --no-print-directory "$bin" >/dev/null
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$bin"
