#!/usr/bin/env bash
# bench/gptq: GPTQ of one 4096x4096 layer with 128 x 2048 calibration tokens,
# refinery beside the torch reference on the same CPU in the same run (the Hessian
# against torch's best formulation, a fused addmm_; gptq_torch.py says what is compared).
# SEQS, SEQLEN, N, K override the sizes; THREADS defaults to every core.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/gptq/gptq
make --no-print-directory "$bin" >/dev/null
N=${N:-4096} K=${K:-4096} SEQS=${SEQS:-128} SEQLEN=${SEQLEN:-2048}
THREADS=${THREADS:-$(nproc)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== bench/gptq: ${N}x${K} layer, ${SEQS} x ${SEQLEN} calibration tokens, ${THREADS} threads"
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$bin" "$tmp/layer.safetensors" "$N" "$K" "$SEQS" "$SEQLEN"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  # the peer under both OpenMP wait policies, its threads pinned to ours; the
  # faster run is kept (bench/forward: Debian's torch pairs OpenMP with
  # OpenBLAS-pthread, whose threads fight when both spin)
  best="" bt=""
  for wait in "" PASSIVE; do
    out=$(env ${wait:+OMP_WAIT_POLICY=$wait} OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
      /usr/bin/python3 bench/gptq/gptq_torch.py "$tmp/layer.safetensors" "$SEQS" "$SEQLEN" "$THREADS")
    t=$(echo "$out" | sed -n 's/^torch .* total \([0-9.]*\) s.*/\1/p')
    if [ -z "$bt" ] || awk -v a="$t" -v b="$bt" 'BEGIN { exit !(a < b) }'; then best=$out bt=$t; fi
  done
  echo "$best"
else
  echo "bench/gptq: /usr/bin/python3 has no torch (apt-get install python3-torch); no peer"
fi
