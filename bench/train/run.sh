#!/usr/bin/env bash
# bench/train: training tokens/s (forward + backward + AdamW, LoRA r=16 on
# every linear layer, α=1 KD from a teacher about twice the student's size)
# and memory, beside PyTorch on the same checkpoints and threads in the same
# run, as ratios, at two sizes: small (10M student) and 100m (100M student,
# where the weights dominate memory). See train.c. Memory: peak RSS, and the
# peak above each process's own baseline (PyTorch's after `import torch`).
# The PyTorch peer runs as shipped and with OMP_WAIT_POLICY=PASSIVE (Debian's
# torch: its OpenMP threads otherwise fight OpenBLAS's; bench/forward does the
# same) and its faster run is kept. STEPS (12 small, 6 100m), SIZES and
# THREADS (every core) override.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/train/train
[ -x "$bin" ] || make --no-print-directory "$bin"
threads=${THREADS:-$(nproc)}
val() { echo "$1" | sed -n "s/^RESULT.*$2=\([0-9.]*\).*/\1/p"; }
have_torch=1
/usr/bin/python3 -c 'import torch' 2>/dev/null || have_torch=0
for size in ${SIZES:-small 100m}; do
  dir=${BENCH_DIR:-/tmp/refinery-bench-train}/$size
  steps=${STEPS:-$([ "$size" = small ] && echo 12 || echo 6)}
  echo "== bench/train $size"
  mkdir -p "$dir"
  "$bin" --size "$size" --dir "$dir" --generate
  ours=$("$bin" --size "$size" --dir "$dir" --steps "$steps" --threads "$threads")
  echo "$ours" | grep -v '^RESULT'
  if [ "$have_torch" = 0 ]; then
    echo "bench/train: /usr/bin/python3 has no torch (apt-get install python3-torch); no PyTorch peer"
    continue
  fi
  best=""
  for wait in "" PASSIVE; do
    peer=$(env ${wait:+OMP_WAIT_POLICY=$wait} /usr/bin/python3 bench/train/train_torch.py "$dir" "$steps" "$threads")
    echo "$peer" | grep -v '^RESULT'
    if [ -z "$best" ] || awk -v a="$(val "$peer" tokens_per_s)" -v b="$(val "$best" tokens_per_s)" \
        'BEGIN { exit !(a > b) }'; then best=$peer; fi
  done
  awk -v a="$(val "$ours" tokens_per_s)" -v b="$(val "$best" tokens_per_s)" \
      -v ma="$(val "$ours" peak_mib)" -v mb="$(val "$best" peak_mib)" \
      -v xa="$(val "$ours" above_mib)" -v xb="$(val "$best" above_mib)" \
      'BEGIN { printf "ratio (%s, PyTorch at its faster wait policy): speed %.2fx, peak memory %.2fx, memory above baseline %.2fx\n", "'"$size"'", a / b, ma / mb, xa / xb }'
done
