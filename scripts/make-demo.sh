#!/usr/bin/env bash
# Remakes demo/ — the shipped task world (the Vessa Isles), its tokenizer,
# and a teacher and a student trained from scratch by refinery itself — and
# records what it made in demo/MANIFEST.json. Deterministic: the world, its
# corpora, the test set and the tokenizer come from fixed seeds; training
# runs refinery's own train job (`refinery run`). See README.md "The demo".
#
#   scripts/make-demo.sh              everything (about 25 minutes on 2 busy cores)
#   scripts/make-demo.sh --simulate   then also the simulated refinement
#                                     (scripts/demo/simulate.py, ~10 minutes more)
#   DEMO_STAGES=data,manifest scripts/make-demo.sh   only some stages
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
nice make -j2 all >/dev/null
# Debian's python3 (the scripts use the standard library, and jinja2 for the
# chat template check); a pyenv shim earlier on PATH would lack jinja2.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
# On a machine shared with other work, OpenMP threads that spin while they
# wait lose their turn to others; sleeping waits are faster there.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
start=$(date +%s)
"$PY" scripts/demo/make_demo.py --stages "${DEMO_STAGES:-data,teacher,student,evaluate,measure,manifest}"
if [ "${1:-}" = "--simulate" ]; then
  "$PY" scripts/demo/simulate.py --out build/demo/simulate-teacher.json
fi
"$PY" scripts/demo/check.py
echo "make-demo: done in $(( $(date +%s) - start )) s"
