#!/usr/bin/python3
"""bench/hpo peer: Optuna's TPESampler (defaults) and RandomSampler on the
functions, bounds and budgets of bench/hpo/hpo.c, sequential ask/tell.
Prints the same lines as hpo.c:
    RUN <function> optuna-<sampler> <seed> <best after b1> <best after b2> ... <ask seconds> <asks>
where the ask time is study.ask() plus the suggest_* calls (independent
samplers draw in suggest_*), the study in Optuna's default in-memory storage.
usage: optuna_bench.py [--seeds N] [--budgets 16,32] [--functions a,b] [--samplers tpe,random]"""
import argparse
import math
import time

import optuna


def branin(p):
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HART_AL = [1.0, 1.2, 3.0, 3.2]
HART_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
          [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HART_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
          [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
          [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
          [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(p):
    x = [p["x%d" % (i + 1)] for i in range(6)]
    s = 0.0
    for i in range(4):
        e = sum(HART_A[i][j] * (x[j] - HART_P[i][j]) ** 2 for j in range(6))
        s += HART_AL[i] * math.exp(-e)
    return -s


def rosenbrock4(p):
    x = [p["x%d" % (i + 1)] for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


def ackley5(p):
    x = [p["x%d" % (i + 1)] for i in range(5)]
    s1 = sum(v * v for v in x)
    s2 = sum(math.cos(2 * math.pi * v) for v in x)
    return -20 * math.exp(-0.2 * math.sqrt(s1 / 5)) - math.exp(s2 / 5) + 20 + math.e


def mixed(p):
    centre = {"sgd": -1.5, "adam": -3.3, "muon": -2.5}
    offset = {"sgd": 0.8, "adam": 0.1, "muon": 0.0}
    l = math.log10(p["lr"]) - centre[p["opt"]]
    r = (p["r"] - 24) / 16
    dep = math.log2(p["depth"]) - 2
    return l * l + r * r + dep * dep / 4 + offset[p["opt"]] + 2 * (p["x"] - 0.3) ** 2


def floats(names, low, high):
    return [(n, "float", low, high) for n in names]


FUNCTIONS = {
    "branin": (branin, [("x1", "float", -5, 10), ("x2", "float", 0, 15)]),
    "hartmann6": (hartmann6, floats(["x%d" % (i + 1) for i in range(6)], 0, 1)),
    "rosenbrock4": (rosenbrock4, floats(["x%d" % (i + 1) for i in range(4)], -5, 10)),
    "ackley5": (ackley5, floats(["x%d" % (i + 1) for i in range(5)], -32.768, 32.768)),
    "mixed": (mixed, [("lr", "log_float", 1e-5, 1e-1), ("r", "int", 4, 64, 4),
                      ("depth", "log_int", 1, 32), ("opt", "categorical", ["sgd", "adam", "muon"]),
                      ("x", "float", 0, 1)]),
}


def suggest(trial, dim):
    name, kind = dim[0], dim[1]
    if kind == "float":
        return trial.suggest_float(name, dim[2], dim[3])
    if kind == "log_float":
        return trial.suggest_float(name, dim[2], dim[3], log=True)
    if kind == "int":
        return trial.suggest_int(name, dim[2], dim[3], step=dim[4])
    if kind == "log_int":
        return trial.suggest_int(name, dim[2], dim[3], log=True)
    return trial.suggest_categorical(name, dim[2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budgets", default="16,32")
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--samplers", default="tpe,random")
    a = ap.parse_args()
    budgets = [int(b) for b in a.budgets.split(",")]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for fname in a.functions.split(","):
        f, dims = FUNCTIONS[fname]
        for sname in a.samplers.split(","):
            for seed in range(a.seeds):
                sampler = (optuna.samplers.TPESampler(seed=seed) if sname == "tpe"
                           else optuna.samplers.RandomSampler(seed=seed))
                study = optuna.create_study(sampler=sampler, direction="minimize")
                best, secs, at = math.inf, 0.0, {}
                for t in range(max(budgets)):
                    t0 = time.perf_counter()
                    trial = study.ask()
                    params = {d[0]: suggest(trial, d) for d in dims}
                    secs += time.perf_counter() - t0
                    v = f(params)
                    study.tell(trial, v)
                    best = min(best, v)
                    if t + 1 in budgets:
                        at[t + 1] = best
                print("RUN %s optuna-%s %d %s %.6f %d" % (
                    fname, sname, seed, " ".join("%.10g" % at[b] for b in budgets), secs,
                    max(budgets)), flush=True)


if __name__ == "__main__":
    main()
