#!/usr/bin/python3
"""bench/hpo: the table from the RUN lines of hpo.c and optuna_bench.py (stdin).
Per function and budget: each sampler's median best value and median regret
(best - the known minimum), the ratio of its median regret to Optuna TPE's
(below 1: ahead), its wins over Optuna TPE seed by seed, and the median time
per ask. Ends with how many functions each sampler is ahead of TPE on.
usage: table.py BUDGET,BUDGET < runs"""
import statistics
import sys

OPTIMUM = {"branin": 0.397887357729739, "hartmann6": -3.32236801141551,
           "rosenbrock4": 0.0, "ackley5": 0.0, "mixed": 0.0}
PEER = "optuna-tpe"


def main():
    budgets = [int(b) for b in sys.argv[1].split(",")]
    runs = {}  # (function, sampler) -> {seed: (bests, secs, asks)}
    for line in sys.stdin:
        p = line.split()
        if not p or p[0] != "RUN":
            continue
        fn, sampler, seed = p[1], p[2], int(p[3])
        bests = [float(v) for v in p[4:4 + len(budgets)]]
        secs, asks = float(p[4 + len(budgets)]), int(p[5 + len(budgets)])
        runs.setdefault((fn, sampler), {})[seed] = (bests, secs, asks)
    functions = list(dict.fromkeys(f for f, _ in runs))
    samplers = list(dict.fromkeys(s for _, s in runs))
    ahead = {(s, b): 0 for s in samplers for b in budgets}
    print("%-12s %6s %-14s %12s %12s %9s %8s %9s" % (
        "function", "trials", "sampler", "median best", "med regret", "vs TPE", "wins", "ms/ask"))
    for fn in functions:
        for bi, b in enumerate(budgets):
            peer = runs.get((fn, PEER), {})
            peer_regret = (statistics.median(r[0][bi] for r in peer.values()) - OPTIMUM[fn]
                           if peer else None)
            for s in samplers:
                r = runs.get((fn, s))
                if not r:
                    continue
                med = statistics.median(v[0][bi] for v in r.values())
                regret = med - OPTIMUM[fn]
                ms = statistics.median(v[1] / v[2] * 1e3 for v in r.values())
                ratio = wins = "-"
                if peer and s != PEER:
                    ratio = "%.3g" % (regret / peer_regret) if peer_regret > 0 else "inf"
                    common = [k for k in r if k in peer]
                    w = sum(r[k][0][bi] < peer[k][0][bi] for k in common)
                    wins = "%d/%d" % (w, len(common))
                    if regret < peer_regret:
                        ahead[(s, b)] += 1
                print("%-12s %6d %-14s %12.5g %12.4g %9s %8s %9.3g" % (
                    fn, b, s, med, regret, ratio, wins, ms))
        print()
    for b in budgets:
        print("ahead of %s (lower median regret) at %d trials: %s" % (PEER, b, ", ".join(
            "%s %d/%d" % (s, ahead[(s, b)], len(functions)) for s in samplers if s != PEER)))


if __name__ == "__main__":
    main()
