"""School benchmark (ILEA exam scores, 139 schools = tasks), protocol of ``../shared/README.md``.

For each training fraction p and seed: split every school's rows at random into p train / rest
test; standardize the 27 non-constant columns on the training part; keep column 27 (all ones) as
a penalized bias feature with y centred by its pooled training mean (``--bias feature``, as in
MALSAR: the bias is shrunk toward the shared model too; ``--bias intercept`` drops it and fits
unpenalized per-task intercepts); weight rows equally (``--task-weighting sum``); choose λ (and
ρ for ``mean``/``clustered``) by 3-fold CV on the training rows only; refit; report on the test
rows the explained variance ``EV = 1 − pooled test MSE / pooled test variance of y`` and the
mean per-school RMSE, as mean ± std over seeds. Skips cleanly (exit 0) when the data file is
absent. Methods named ``… + shared`` fit the penalty on the deviations ``V`` from an unpenalized
common model (``W = 1 w₀ᵀ + V``, estimator option ``shared=0``).

Run: ``python benchmarks/linear/bench_school.py`` (``--quick``: 3 seeds, 10 λ values;
``--seeds``, ``--alphas``, ``--fractions``, ``--methods`` override).

``--defaults`` measures what a new user gets: every method is ``MultiTaskRegressorCV(penalty,
random_state=seed)`` with nothing else set (default λ grid, mixing and ``shared`` grids, 5 folds,
tolerance, unpenalized per-school intercepts, per-task averaged losses), on the 27 standardized
columns (the all-ones column dropped, ``--bias intercept``); ``pooled ridge`` is the same
estimator with ``l2`` on the pooled rows as one task. A method name here is a penalty name
(``mean``, ``l21``, ``trace``, …); by default the two ridge baselines and every penalty that
:data:`METHODS` uses.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mtlkit.cli.threads import positive_int
from mtlkit.linear import PENALTIES, MultiTaskRegressorCV

DEFAULT_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "school.mat"

METHODS = {
    # name: (penalty, extra CV kwargs); "pooled" is one ridge model for all schools.
    "single-task ridge": ("l2", {}),
    "pooled ridge": ("l2", {}),
    # shared=None: the plain penalty (the CV estimators' default would also try a shared part).
    "l1": ("l1", {"shared": None}),
    "l21": ("l21", {"l1_ratio": [0.5, 1.0], "shared": None}),
    "trace": ("trace", {"shared": None}),
    "mean": ("mean", {"rho": [0.0, 0.01, 0.1]}),
    "clustered (k=1)": ("clustered", {"rho": [0.01, 0.1, 1.0], "n_clusters": 1, "shared": None}),
    "clustered (k=3)": ("clustered", {"rho": [0.01, 0.1, 1.0], "n_clusters": 3, "shared": None}),
    # The same penalties on the deviations V from an unpenalized shared model w₀ (W = 1w₀ᵀ + V,
    # ``shared=0``): R no longer pulls the schools with 2–25 training rows toward zero.
    "trace + shared": ("trace", {"shared": 0.0}),
    "l21 + shared": ("l21", {"l1_ratio": [0.5, 1.0], "shared": 0.0}),
    "clustered (k=1) + shared": ("clustered", {"rho": [0.01, 0.1, 1.0], "shared": 0.0}),
}


RIDGES = ("single-task ridge", "pooled ridge")


def method_names(defaults: bool) -> list[str]:
    """The methods run when ``--methods`` is not given: :data:`METHODS`, or with ``--defaults``
    the two ridge baselines and the distinct penalties of the other methods."""
    if not defaults:
        return list(METHODS)
    penalties = dict.fromkeys(p for name, (p, _) in METHODS.items() if name not in RIDGES)
    return [*RIDGES, *penalties]


def check_methods(methods: list[str], defaults: bool) -> None:
    """An error naming the first of ``methods`` that is not a ridge baseline or a penalty name
    (``defaults``), or not a key of :data:`METHODS`."""
    known = [*RIDGES, *PENALTIES] if defaults else list(METHODS)
    unknown = [m for m in methods if m not in known]
    if unknown:
        mode = "--defaults " if defaults else ""
        raise ValueError(
            f"--methods: unknown {mode}method {unknown[0]!r}; choose from {', '.join(known)}"
        )


def load_school(path: Path):
    from scipy.io import loadmat

    mat = loadmat(path)
    Xs = [np.asarray(x, dtype=np.float64) for x in mat["X"].ravel()]
    ys = [np.asarray(y, dtype=np.float64).ravel() for y in mat["Y"].ravel()]
    return Xs, ys


def split(Xs, ys, frac, rng):
    train, test = [], []
    for X, y in zip(Xs, ys, strict=True):
        n = y.size
        perm = rng.permutation(n)
        k = min(max(2, round(frac * n)), n - 1)
        train.append((X[perm[:k]], y[perm[:k]]))
        test.append((X[perm[k:]], y[perm[k:]]))
    return train, test


def standardize(train, test, bias):
    """Standardize columns 0–26 on the training rows; column 27 (ones) is kept as a penalized
    feature with ``bias == "feature"`` (y then centred by its pooled training mean and no free
    intercept, as MALSAR does) or dropped for unpenalized per-task intercepts."""
    Xall = np.vstack([X for X, _ in train])[:, :27]
    mu, sd = Xall.mean(axis=0), Xall.std(axis=0)
    sd[sd == 0] = 1.0
    ybar = np.concatenate([y for _, y in train]).mean() if bias == "feature" else 0.0

    def prep(X, y):
        Z = (X[:, :27] - mu) / sd
        return (np.hstack([Z, X[:, 27:28]]) if bias == "feature" else Z), y - ybar

    return [prep(X, y) for X, y in train], [prep(X, y) for X, y in test]


def fit_predict(method, train, test, n_alphas, seed, args):
    if args.defaults:
        penalty = "l2" if method in RIDGES else method
        cv = MultiTaskRegressorCV(penalty, random_state=seed)
        return _fit_predict(method, cv, train, test)
    penalty, extra = METHODS[method]
    cv = MultiTaskRegressorCV(
        penalty,
        alphas=n_alphas,
        cv=3,
        random_state=seed,
        tol=args.tol,
        max_iter=args.max_iter,
        fit_intercept=args.bias == "intercept",
        task_weighting=args.task_weighting,
        **extra,
    )
    return _fit_predict(method, cv, train, test)


def _fit_predict(method, cv, train, test):
    if method == "pooled ridge":
        X = np.vstack([X for X, _ in train])
        y = np.concatenate([y for _, y in train])
        model = cv.fit(X, y)
        return [model.predict(X) for X, _ in test]
    model = cv.fit([X for X, _ in train], [y for _, y in train])
    return model.predict([X for X, _ in test])


def scores(test, preds):
    y = np.concatenate([y for _, y in test])
    p = np.concatenate(preds)
    ev = 1.0 - np.mean((y - p) ** 2) / np.var(y)
    rmse = np.mean(
        [np.sqrt(np.mean((yt - pt) ** 2)) for (_, yt), pt in zip(test, preds, strict=True)]
    )
    return ev, rmse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--quick", action="store_true", help="3 seeds, 10 λ values")
    parser.add_argument("--seeds", type=positive_int, default=None)
    parser.add_argument("--fractions", type=str, default="0.1,0.2,0.3,0.75")
    parser.add_argument(
        "--methods", type=str, default=None, help="comma-separated (default: see --defaults)"
    )
    parser.add_argument("--tol", type=float, default=1e-3, help="solver tolerance in CV and refit")
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--alphas", type=int, default=None, help="number of λ values")
    parser.add_argument("--bias", choices=("feature", "intercept"), default="feature")
    parser.add_argument("--task-weighting", choices=("sum", "mean"), default="sum")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="estimator defaults only (implies --bias intercept --task-weighting mean)",
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",") if args.methods else method_names(args.defaults)
    try:
        check_methods(methods, args.defaults)
    except ValueError as error:
        parser.error(str(error))
    if args.defaults:
        args.bias, args.task_weighting = "intercept", "mean"
    if not args.data.exists():
        print(f"School data not found at {args.data}; skipping.")
        return 0
    seeds = args.seeds or (3 if args.quick else 10)
    n_alphas = args.alphas or (10 if args.quick else 20)
    setting = "estimator defaults, 5-fold CV" if args.defaults else "3-fold CV"
    fractions = [float(f) for f in args.fractions.split(",")]
    warnings.simplefilter("ignore", ConvergenceWarning)
    Xs, ys = load_school(args.data)
    print(
        f"School: {len(Xs)} tasks, {sum(y.size for y in ys)} rows; {seeds} seeds, "
        f"{'default' if args.defaults else n_alphas} λ values, {setting} on training rows"
    )
    print("| train | method | EV (%) | mean per-task RMSE | fit s |")
    print("|---|---|---|---|---|")
    for frac in fractions:
        results = {m: [] for m in methods}
        times = {m: 0.0 for m in methods}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            train, test = standardize(*split(Xs, ys, frac, rng), args.bias)
            for m in methods:
                t0 = time.perf_counter()
                preds = fit_predict(m, train, test, n_alphas, seed, args)
                times[m] += time.perf_counter() - t0
                results[m].append(scores(test, preds))
                print(
                    f"  p={frac} seed={seed} {m}: {time.perf_counter() - t0:.1f}s", file=sys.stderr
                )
        for m in methods:
            r = np.array(results[m])
            print(
                f"| {frac:.0%} | {m} | {100 * r[:, 0].mean():.1f} ± {100 * r[:, 0].std():.1f} "
                f"| {r[:, 1].mean():.2f} ± {r[:, 1].std():.2f} | {times[m] / seeds:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
