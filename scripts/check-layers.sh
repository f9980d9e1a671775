#!/usr/bin/env bash
# Checks that no file includes a header of a higher layer (README "Source
# layout"). Layers, lowest first: the engine's sub-layers in order, then
# service, then the front ends (handlers, cli), then cmd (the entry point,
# which wires them all). A folder may include its own headers and those of
# any lower layer; handlers and cli are siblings and include neither each
# other nor, for cli, the service. Prints each offending include; exits 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.."

rank() {
  case "$1" in
    engine/core) echo 0 ;; engine/backend) echo 1 ;; engine/tokenizer) echo 2 ;;
    engine/model) echo 3 ;; engine/generate) echo 4 ;; engine/eval) echo 5 ;;
    engine/train) echo 6 ;; engine/quant) echo 7 ;; engine/data) echo 8 ;;
    engine/hpo) echo 9 ;; engine/jobs) echo 10 ;;
    service) echo 20 ;; handlers | cli) echo 30 ;; cmd) echo 40 ;;
    *) echo "" ;;
  esac
}

layer_of() { # path → its layer folder
  case "$1" in
    engine/*/*) echo "${1%/*}" | cut -d/ -f1-2 ;;
    *) echo "${1%%/*}" ;;
  esac
}

bad=0
while IFS= read -r f; do
  from=$(layer_of "$f")
  rf=$(rank "$from")
  if [ -z "$rf" ]; then
    case "$from" in tests | bench) continue ;; esac
    echo "check-layers: $f is in no known layer ($from)"; bad=1; continue
  fi
  while IFS= read -r inc; do
    to=$(layer_of "$inc")
    rt=$(rank "$to")
    if [ -z "$rt" ]; then
      echo "check-layers: $f includes \"$inc\", which is in no known layer"; bad=1
    elif [ "$rt" -gt "$rf" ] || { [ "$rt" -eq "$rf" ] && [ "$to" != "$from" ]; } ||
         { [ "$from" = cli ] && [ "$to" = service ]; }; then
      echo "check-layers: $f ($from) includes \"$inc\" ($to), a higher or sibling layer"; bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(git ls-files '*.c' '*.h' | grep -E '^(engine|service|handlers|cli|cmd)/')
[ "$bad" -eq 0 ] && echo "check-layers: every include points down"
exit "$bad"
