#!/usr/bin/python3
"""Writes the reference fixtures of the HPO samplers' tests under
tests/reference/fixtures/hpo/, from independent implementations in Debian's
packages (apt-get install -y python3-torch python3-optuna):

    /usr/bin/python3 tests/reference/hpo_reference.py

sobol.json   torch.quasirandom.SobolEngine(32, scramble=False).draw(256) in
             float64: the Joe-Kuo direction numbers in Gray-code order, which
             engine/hpo/sobol.c must reproduce exactly (every value is a
             dyadic rational of at most 30 bits).
parzen.json  Optuna 3.1's univariate _ParzenEstimator with TPESampler's
             defaults (prior weight 1, magic clip, no endpoints,
             default_weights) built on fixed observations for every kind of
             dimension: its normalised weights, kernel centres and bandwidths
             (or categorical weights) and log_pdf at a set of points, for
             engine/hpo/tpe.c's rf_parzen_* to match. Optuna 3.1's truncated
             normal log density leaves out the -log(scale) term (optuna issue
             #5109, fixed by PR #5110 in Optuna 3.5), so its kernels are not
             normalised; engine/hpo/tpe.c uses the normalised density, and so
             does this script: truncnorm.logpdf is wrapped with the fix.
"""
import json
import os

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm, parzen_estimator
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

_optuna_logpdf = _truncnorm.logpdf


def _normalised_logpdf(x, a, b, loc=0, scale=1):
    # Optuna PR #5110: the density of a scaled truncated normal divides by the scale.
    return _optuna_logpdf(x, a, b, loc=loc, scale=scale) - np.log(scale)


if "log(scale)" not in open(_truncnorm.__file__).read():
    parzen_estimator.truncnorm.logpdf = _normalised_logpdf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "hpo")


def sobol():
    pts = torch.quasirandom.SobolEngine(dimension=32, scramble=False).draw(256, dtype=torch.float64)
    return {"source": "torch %s SobolEngine(32, scramble=False).draw(256)" % torch.__version__,
            "points": pts.tolist()}


def parzen_case(name, dim_json, dist, obs, points):
    params = _ParzenEstimatorParameters(
        consider_prior=True, prior_weight=1.0, consider_magic_clip=True,
        consider_endpoints=False, weights=default_weights, multivariate=False)
    is_cat = isinstance(dist, CategoricalDistribution)
    internal = np.asarray(obs, dtype=float)
    pe = _ParzenEstimator({"x": internal}, {"x": dist}, params)
    samples = np.asarray(points, dtype=int if is_cat else float)
    case = {"name": name, "dim": dim_json, "obs": list(map(float, obs)),
            "weights": pe._weights.tolist(), "points": list(map(float, points)),
            "log_pdf": pe.log_pdf({"x": samples}).tolist()}
    if is_cat:
        case["cat_weights"] = pe._categorical_weights["x"].tolist()
    else:
        case["mus"] = pe._mus["x"].tolist()
        case["sigmas"] = pe._sigmas["x"].tolist()
    return case


def parzen():
    rng = np.random.RandomState(11)
    cases = []
    f = FloatDistribution(-5, 10)
    fj = {"type": "float", "low": -5, "high": 10}
    grid = list(np.linspace(-5, 10, 13))
    cases.append(parzen_case("float_prior_only", fj, f, [], grid))
    cases.append(parzen_case("float_one", fj, f, [2.5], grid))
    cases.append(parzen_case("float_seven", fj, f, list(rng.uniform(-5, 10, 7)), grid))
    cases.append(parzen_case("float_ties_and_ends", fj, f, [-5, 1, 1, 1, 10, 3.5], grid))
    cases.append(parzen_case("float_thirty_ramp", fj, f, list(rng.uniform(-5, 10, 30)), grid))
    lf = FloatDistribution(1e-5, 1e-1, log=True)
    cases.append(parzen_case("log_float", {"type": "log_float", "low": 1e-5, "high": 1e-1}, lf,
                             list(10 ** rng.uniform(-5, -1, 5)),
                             list(10 ** np.linspace(-5, -1, 9))))
    i = IntDistribution(4, 64, step=4)
    cases.append(parzen_case("int_step", {"type": "int", "low": 4, "high": 64, "step": 4}, i,
                             [8, 8, 24, 60, 36, 4], list(range(4, 65, 4))))
    li = IntDistribution(1, 32, log=True)
    cases.append(parzen_case("log_int", {"type": "log_int", "low": 1, "high": 32}, li,
                             [1, 3, 3, 17], [1, 2, 3, 5, 8, 13, 21, 32]))
    c = CategoricalDistribution(["a", "b", "c", "d"])
    cases.append(parzen_case("categorical",
                             {"type": "categorical", "choices": ["a", "b", "c", "d"]}, c,
                             [0, 2, 2, 3, 2, 0, 1, 2], [0, 1, 2, 3]))
    cases.append(parzen_case("categorical_prior_only",
                             {"type": "categorical", "choices": ["a", "b", "c", "d"]}, c,
                             [], [0, 1, 2, 3]))
    return {"source": "optuna %s _ParzenEstimator, TPESampler defaults" % optuna.__version__,
            "cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in (("sobol.json", sobol()), ("parzen.json", parzen())):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(data, f, indent=None, separators=(",", ":"))
            f.write("\n")
        print("wrote", os.path.join(OUT, name))


if __name__ == "__main__":
    main()
