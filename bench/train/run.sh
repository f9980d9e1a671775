#!/usr/bin/env bash
# bench/train: training tokens/s (forward + backward + AdamW, LoRA r=16 on
# every linear layer, α=1 KD from a teacher twice the student's size) and
# peak memory, beside PyTorch on the same checkpoints and threads in the same
# run, as ratios. See train.c. STEPS (4) and THREADS (every core) override.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/train/train
[ -x "$bin" ] || make --no-print-directory "$bin"
dir=${BENCH_DIR:-/tmp/refinery-bench-train}
steps=${STEPS:-4}
threads=${THREADS:-$(nproc)}
echo "== bench/train"
ours=$("$bin" --dir "$dir" --steps "$steps" --threads "$threads")
echo "$ours" | grep -v '^RESULT'
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "bench/train: /usr/bin/python3 has no torch (apt-get install python3-torch); no PyTorch peer"
  exit 0
fi
peer=$(/usr/bin/python3 bench/train/train_torch.py "$dir" "$steps" "$threads")
echo "$peer" | grep -v '^RESULT'
val() { echo "$1" | sed -n "s/^RESULT.*$2=\([0-9.]*\).*/\1/p"; }
awk -v a="$(val "$ours" tokens_per_s)" -v b="$(val "$peer" tokens_per_s)" \
    -v ma="$(val "$ours" peak_mib)" -v mb="$(val "$peer" peak_mib)" \
    'BEGIN { printf "ratio: speed %.2fx PyTorch, peak memory %.2fx PyTorch\n", a / b, ma / mb }'
