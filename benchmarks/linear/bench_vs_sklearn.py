"""Time to reach scikit-learn's objective: mtlkit vs MultiTaskLasso / MultiTaskElasticNet.

For each shared-design problem (n, d, T) and each model, a reference optimum P* is computed by a
tight run (tol=1e-12) of both solvers, the lower objective winning (``--reference ours``: of
mtlkit only). Then each solver is refitted from scratch with tol = 1e-4, 1e-5, ... until its
objective is within ``--rel`` (default 1e-6) of P*; the wall time of that first successful fit
is the solver's time. The ratio printed is ours ÷ sklearn's,
both measured in this run. Both use the objective
``(1/(2n)) ‖Y − XWᵀ − 1bᵀ‖²_F + α (a Σ_j ‖W_{:,j}‖₂ + (1 − a)/2 ‖W‖²_F)`` (λ = α).

Run: ``python benchmarks/linear/bench_vs_sklearn.py`` (``--quick`` for a small run).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import MultiTaskElasticNet, MultiTaskLasso

from mtlkit.linear import MultiTaskRegressor

TOLS = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]


def make_problem(n, d, T, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[:, 1:] += 0.5 * X[:, :-1]  # correlated features
    support = rng.choice(d, size=max(1, d // 10), replace=False)
    W = np.zeros((T, d))
    W[:, support] = rng.standard_normal((T, support.size))
    Y = X @ W.T + rng.standard_normal((n, T))
    return np.asfortranarray(X), Y


def objective(X, Y, coef, intercept, alpha, a):
    R = Y - X @ coef.T - intercept
    norms = np.sqrt((coef**2).sum(axis=0))
    pen = a * norms.sum() + 0.5 * (1 - a) * (coef**2).sum()
    return 0.5 * np.vdot(R, R) / X.shape[0] + alpha * pen


def fit_sklearn(X, Y, alpha, a, tol, max_iter=100_000):
    cls = MultiTaskLasso if a == 1.0 else MultiTaskElasticNet
    kw = {} if a == 1.0 else {"l1_ratio": a}
    m = cls(alpha=alpha, tol=tol, max_iter=max_iter, **kw)
    t0 = time.perf_counter()
    m.fit(X, Y)
    return time.perf_counter() - t0, m.coef_, m.intercept_


def fit_ours(X, Y, alpha, a, tol, max_iter=100_000):
    m = MultiTaskRegressor("l21", alpha=alpha, l1_ratio=a, tol=tol, max_iter=max_iter)
    t0 = time.perf_counter()
    m.fit(X, Y)
    return time.perf_counter() - t0, m.coef_, m.intercept_


def time_to_target(fit, X, Y, alpha, a, target, rel):
    for tol in TOLS:
        seconds, coef, intercept = fit(X, Y, alpha, a, tol)
        if objective(X, Y, coef, intercept, alpha, a) <= target * (1 + rel):
            return seconds, tol
    return float("nan"), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--sizes", type=str, default=None, help="e.g. 1000x100x10,10000x300x30")
    parser.add_argument("--rel", type=float, default=1e-6)
    parser.add_argument("--alpha-frac", type=float, default=0.1, help="alpha / lambda_max")
    parser.add_argument(
        "--reference",
        choices=("both", "ours"),
        default="both",
        help="solvers whose tol=1e-12 runs define P* ('ours' skips sklearn's slow tight run)",
    )
    args = parser.parse_args()
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    elif args.quick:
        sizes = [(500, 50, 5), (2000, 100, 10), (10000, 200, 20)]
    else:
        sizes = [(1000, 100, 10), (10000, 300, 30), (30000, 500, 50), (100000, 1000, 100)]
    warnings.simplefilter("ignore", ConvergenceWarning)
    header = f"{'n':>7} {'d':>5} {'T':>4} {'model':<12} {'sklearn s':>10} {'(tol)':>7} "
    header += f"{'mtlkit s':>9} {'(tol)':>7} {'ratio':>6}"
    print(header)
    for n, d, T in sizes:
        X, Y = make_problem(n, d, T)
        lam_max = MultiTaskRegressor("l21").lambda_max(X, Y)
        alpha = args.alpha_frac * lam_max
        for name, a in (("MTLasso", 1.0), ("MTElasticNet", 0.5)):
            ref = []
            solvers = (fit_sklearn, fit_ours) if args.reference == "both" else (fit_ours,)
            for fit in solvers:
                _, coef, intercept = fit(X, Y, alpha, a, 1e-12)
                ref.append(objective(X, Y, coef, intercept, alpha, a))
            target = min(ref)
            t_sk, tol_sk = time_to_target(fit_sklearn, X, Y, alpha, a, target, args.rel)
            t_us, tol_us = time_to_target(fit_ours, X, Y, alpha, a, target, args.rel)
            print(
                f"{n:>7} {d:>5} {T:>4} {name:<12} {t_sk:>10.3f} {tol_sk!s:>7} "
                f"{t_us:>9.3f} {tol_us!s:>7} {t_us / t_sk:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
