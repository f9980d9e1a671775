#!/usr/bin/env bash
# bench/forward: prefill and decode tokens/s on a ~100M-parameter Llama beside
# PyTorch and llama.cpp (same weights, dtype and threads, in the same run), and
# decode's weight bandwidth beside a memory-copy bandwidth. See forward.c.
# DTYPES="bf16 f32 w4a16" by default (w4a16: our GPTQ of the bf16 checkpoint,
# beside llama.cpp's Q4_0 of the same integers); THREADS defaults to every core;
# ROUNDS (5) rounds of all engines back to back, medians reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The PyTorch peer uses Debian's torch, installed here when missing.
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch >/dev/null ||
      echo "bench/forward: could not install python3-torch; running without the PyTorch peer"
  else
    echo "bench/forward: /usr/bin/python3 has no torch (apt-get install python3-torch); no PyTorch peer"
  fi
fi
# The llama.cpp peer: node-llama-cpp's prebuilt libllama.so driven from C
# (bench/forward/llamacpp/setup.sh installs and builds it once).
llama=$(bench/forward/llamacpp/setup.sh) ||
  { llama=""; echo "bench/forward: no llama.cpp peer (see the message above)"; }
bin=build/bench/forward/forward
[ -x "$bin" ] || make --no-print-directory "$bin"
for dt in ${DTYPES:-bf16 f32 w4a16}; do
  echo "== bench/forward $dt"
  "$bin" --dtype "$dt" ${THREADS:+--threads "$THREADS"} --rounds "${ROUNDS:-5}" \
    ${llama:+--llama "$llama"}
done
