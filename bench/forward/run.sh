#!/usr/bin/env bash
# bench/forward: prefill and decode tokens/s on a ~100M-parameter Llama beside
# PyTorch (same weights, dtype and threads, in the same run), and decode's
# weight bandwidth beside a memory-copy bandwidth. See forward.c.
# DTYPES="bf16 f32" by default; THREADS defaults to every core.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/forward/forward
[ -x "$bin" ] || make --no-print-directory "$bin"
for dt in ${DTYPES:-bf16 f32}; do
  echo "== bench/forward $dt"
  "$bin" --dtype "$dt" ${THREADS:+--threads "$THREADS"}
done
