#!/usr/bin/env bash
# bench/hpo: refinery's gp, tpe and random samplers beside Optuna's TPE and
# RandomSampler (Debian's python3-optuna) on Branin, Hartmann-6, Rosenbrock-4,
# Ackley-5 and a mixed int/log-int/categorical space, budgets 16 and 32,
# 20 seeds each, in one run; prints the table of bench/hpo/table.py.
# SEEDS, BUDGETS, FUNCTIONS (comma lists) override.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bench/hpo/hpo
make --no-print-directory "$bin" >/dev/null
seeds=${SEEDS:-20} budgets=${BUDGETS:-16,32}
functions=${FUNCTIONS:-branin,hartmann6,rosenbrock4,ackley5,mixed}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "== bench/hpo: $functions, budgets $budgets, $seeds seeds (medians over seeds)"
# One thread for OpenBLAS: a GP ask factorises matrices of a few dozen rows.
OPENBLAS_NUM_THREADS=1 "$bin" --seeds "$seeds" --budgets "$budgets" --functions "$functions" >"$tmp"
if /usr/bin/python3 -c 'import optuna' 2>/dev/null; then
  /usr/bin/python3 bench/hpo/optuna_bench.py --seeds "$seeds" --budgets "$budgets" \
    --functions "$functions" >>"$tmp"
else
  echo "bench/hpo: /usr/bin/python3 has no optuna (apt-get install python3-optuna); no peer"
fi
/usr/bin/python3 bench/hpo/table.py "$budgets" <"$tmp"
