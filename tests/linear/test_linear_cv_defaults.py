"""Defaults of the CV estimators: mixing grids searched, warm starts, early stop, and the
planted related-tasks problems on which the defaults must beat single-task and pooled models."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegressionCV, RidgeCV

from mtlkit.linear import (
    MultiTaskClassifierCV,
    MultiTaskRegressor,
    MultiTaskRegressorCV,
    regularization_path,
)
from mtlkit.linear._cv import (
    DEFAULT_MIXING_GRID,
    DEFAULT_SHARED_GRID,
    STOP_PATIENCE,
    STOP_RISE,
)
from mtlkit.linear._losses import make_loss
from mtlkit.linear._penalties import make_penalty
from mtlkit.linear._solver import Composite, fista


def related_tasks(seed=0, T=8, d=10, n=15, n_test=200, spread=0.2, classification=False):
    """Per-task designs with ``w_t = w₀ + spread · v_t`` (few rows per task) and test sets."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(d)
    Xs, ys, Xt, yt = [], [], [], []
    for _ in range(T):
        w = w0 + spread * rng.standard_normal(d)
        X = rng.standard_normal((n + n_test, d))
        z = X @ w
        y = (z + 0.5 * rng.standard_normal(z.size) > 0).astype(int) if classification else z
        if not classification:
            y = y + 1.0 * rng.standard_normal(z.size)
        Xs.append(X[:n]), ys.append(y[:n]), Xt.append(X[n:]), yt.append(y[n:])
    return Xs, ys, Xt, yt


def test_default_grids_are_searched_and_choices_exposed():
    Xs, ys, _, _ = related_tasks()
    for penalty in ("mean", "l21", "trace", "l2"):
        cv = MultiTaskRegressorCV(penalty, alphas=5, cv=3, random_state=0).fit(Xs, ys)
        name, grid = DEFAULT_MIXING_GRID.get(penalty, (None, (None,)))
        shared = DEFAULT_SHARED_GRID.get(penalty, (None,))
        expected = [(m, s) for m in grid for s in shared]
        assert [(mix[name] if name else None, mix["shared"]) for mix in cv.mixings_] == expected
        if len(expected) > 1:
            assert cv.cv_errors_.shape == (len(expected), 5, 3)
            best = np.nanargmin(cv.cv_errors_.mean(axis=2)) // 5
        else:
            assert cv.cv_errors_.shape == (5, 3)
            best = 0
        chosen = cv.mixings_[best]
        assert (cv.l1_ratio_, cv.rho_, cv.shared_) == (
            chosen["l1_ratio"],
            chosen["rho"],
            chosen["shared"],
        )
        assert (cv.shared_coef_ is None) == (cv.shared_ is None)


def test_user_values_replace_the_default_grids():
    Xs, ys, _, _ = related_tasks()
    cv = MultiTaskRegressorCV("l21", alphas=3, cv=3, l1_ratio=0.7, shared=None).fit(Xs, ys)
    assert cv.mixings_ == [{"l1_ratio": 0.7, "rho": None, "shared": None}]
    cv = MultiTaskRegressorCV("trace", alphas=3, cv=3, shared=[None, 0.5]).fit(Xs, ys)
    assert [m["shared"] for m in cv.mixings_] == [None, 0.5]


EDGES = [(t, t + 1) for t in range(7)]  # the graph penalty's task chain


def _path(estimator, Xs, ys) -> list[np.ndarray]:
    """λ_max, then the λ grid, coefficients and intercepts of a 3-point path."""
    return [
        np.array(estimator.lambda_max(Xs, ys)),
        *regularization_path(estimator, Xs, ys, alphas=3)[:3],
    ]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("penalty", ["l1", "l2", "elasticnet", "l21", "trace", "mean", "graph"])
def test_lambda_max_and_path_of_a_cv_estimator_use_the_first_default_candidates(penalty):
    # the first mixing value of DEFAULT_MIXING_GRID and no shared component
    Xs, ys, _, _ = related_tasks()
    name, grid = DEFAULT_MIXING_GRID.get(penalty, (None, (None,)))
    assert DEFAULT_SHARED_GRID.get(penalty, (None,))[0] is None
    first = {name: grid[0]} if name else {}
    expected = _path(MultiTaskRegressor(penalty, edges=EDGES, shared=None, **first), Xs, ys)
    assert _same(_path(MultiTaskRegressorCV(penalty, edges=EDGES), Xs, ys), expected)
    for value in grid[1:]:  # the other candidates give other paths: the test tells them apart
        other = MultiTaskRegressor(penalty, edges=EDGES, **{name: value})
        assert not _same(_path(other, Xs, ys), expected)


@pytest.mark.parametrize(
    ("penalty", "candidates", "first"),
    [
        ("l21", {"l1_ratio": [0.8, 0.2]}, {"l1_ratio": 0.8}),  # as given, not sorted
        ("mean", {"rho": [1.0, 0.01]}, {"rho": 1.0}),
        ("trace", {"shared": [0.5, None]}, {"shared": 0.5}),
        ("l21", {"l1_ratio": [0.8, 0.2], "shared": [0.5, None]}, {"l1_ratio": 0.8, "shared": 0.5}),
    ],
)
def test_lambda_max_and_path_of_a_cv_estimator_use_the_first_of_each_given_list(
    penalty, candidates, first
):
    Xs, ys, _, _ = related_tasks()
    expected = _path(MultiTaskRegressor(penalty, **{"shared": None, **first}), Xs, ys)
    assert _same(_path(MultiTaskRegressorCV(penalty, **candidates), Xs, ys), expected)
    reversed_ = {k: v[::-1] for k, v in candidates.items()}
    assert not _same(_path(MultiTaskRegressorCV(penalty, **reversed_), Xs, ys), expected)


def test_one_task_searches_no_shared_component():
    X, y = related_tasks(T=1, n=40)[:2]
    cv = MultiTaskRegressorCV("trace", alphas=3, cv=3).fit(X[0], y[0])
    assert [m["shared"] for m in cv.mixings_] == [None]


@pytest.mark.parametrize("penalty", ["mean", "l21", "trace"])
def test_cv_refit_from_the_warm_path_equals_a_cold_fit(penalty):
    Xs, ys, _, _ = related_tasks()
    cv = MultiTaskRegressorCV(penalty, alphas=6, cv=3, tol=1e-10, random_state=0).fit(Xs, ys)
    params = {"alpha": cv.alpha_, "l1_ratio": cv.l1_ratio_, "rho": cv.rho_, "shared": cv.shared_}
    cold = MultiTaskRegressor(penalty, tol=1e-12, max_iter=20000, **params).fit(Xs, ys)
    np.testing.assert_allclose(cv.coef_, cold.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cv.intercept_, cold.intercept_, rtol=1e-5, atol=1e-6)


def test_early_stop_follows_its_rule_and_keeps_the_choice():
    Xs, ys, _, _ = related_tasks(n=12)
    kw = {"cv": 3, "random_state": 0, "tol": 1e-7, "alphas": 16, "rho": [0.001, 0.1]}
    fast = MultiTaskRegressorCV("mean", **kw).fit(Xs, ys)
    full = MultiTaskRegressorCV("mean", early_stopping=False, **kw).fit(Xs, ys)
    assert (fast.alpha_, fast.rho_) == (full.alpha_, full.rho_)
    np.testing.assert_allclose(fast.coef_, full.coef_, rtol=1e-4, atol=1e-6)
    assert np.isnan(fast.cv_errors_).any() and not np.isnan(full.cv_errors_).any()
    for m in range(len(fast.mixings_)):
        curve = fast.cv_errors_[m].mean(axis=1)
        solved = int(np.sum(~np.isnan(curve)))
        np.testing.assert_allclose(
            curve[:solved], full.cv_errors_[m, :solved].mean(axis=1), rtol=1e-6
        )
        if solved < curve.size:  # stopped: the last STOP_PATIENCE points rose above the rule
            floor = (1 + STOP_RISE) * np.minimum.accumulate(curve[:solved])
            assert np.all(curve[solved - STOP_PATIENCE : solved] > floor[-STOP_PATIENCE:])


def test_mean_preconditioning_reaches_the_same_optimum_in_fewer_iterations():
    Xs, ys, _, _ = related_tasks(seed=1)
    from mtlkit.linear._data import TaskDesign

    design = TaskDesign(Xs)
    Y = np.concatenate(ys)
    loss = make_loss("squared", design, Y, np.ones_like(Y), fit_intercept=True)
    penalty = make_penalty("mean", len(Xs), rho=0.0)
    L = loss.lipschitz()
    lam = 30 * L  # strong coupling: the task mean is 1/ρ = ∞ times flatter than the deviations
    W0, b0 = np.zeros((len(Xs), Xs[0].shape[1])), loss.initial_intercept()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = fista(Composite(loss, penalty, lam), W0, b0, L=L + lam, tol=1e-9, max_iter=50000)
        pre = Composite(loss, penalty, lam, L_data=L)
        fast = fista(pre, W0, b0, L=L + lam, tol=1e-9, max_iter=50000)
    assert pre.metric is not None and fast.converged and plain.converged
    # Same optimum (the problem is ill-conditioned along the task mean: compare objectives
    # tightly, coefficients to the accuracy a 1e-9 gradient residual gives there).
    objective = pre.objective(fast.W, fast.b)
    assert objective == pytest.approx(pre.objective(plain.W, plain.b), rel=1e-10)
    np.testing.assert_allclose(fast.W, plain.W, atol=1e-5)
    assert fast.n_iter * 5 < plain.n_iter


def test_default_regressor_cv_beats_pooled_and_single_task_ridge_on_related_tasks():
    Xs, ys, Xt, yt = related_tasks(seed=2, spread=0.5)

    def mse(preds):
        return np.mean([np.mean((p - y) ** 2) for p, y in zip(preds, yt, strict=True)])

    mtl = mse(MultiTaskRegressorCV("mean", random_state=0).fit(Xs, ys).predict(Xt))
    single = mse([RidgeCV().fit(X, y).predict(x) for X, y, x in zip(Xs, ys, Xt, strict=True)])
    pooled_model = RidgeCV().fit(np.vstack(Xs), np.concatenate(ys))
    pooled = mse([pooled_model.predict(x) for x in Xt])
    # Reference values of this seed (noise variance 1): 2.26 (mean, ρ = 0.1 chosen), 3.37
    # (pooled RidgeCV), 4.13 (RidgeCV per task).
    assert mtl == pytest.approx(2.26, abs=0.05)
    assert mtl < 0.75 * pooled and mtl < 0.6 * single


@pytest.mark.parametrize(("penalty", "reference"), [("mean", 0.896), ("trace", 0.901)])
def test_default_classifier_cv_beats_per_task_logistic_cv_on_related_tasks(penalty, reference):
    Xs, ys, Xt, yt = related_tasks(seed=3, T=4, d=10, n=16, classification=True)

    def accuracy(preds):
        return np.mean([np.mean(p == y) for p, y in zip(preds, yt, strict=True)])

    mtl = accuracy(MultiTaskClassifierCV(penalty, random_state=0).fit(Xs, ys).predict(Xt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        single = accuracy(
            [
                LogisticRegressionCV().fit(X, y).predict(x)
                for X, y, x in zip(Xs, ys, Xt, strict=True)
            ]
        )
    # Reference values of this seed: 0.896 (mean), 0.901 (trace), 0.795 (per-task LRCV).
    assert mtl == pytest.approx(reference, abs=0.01)
    assert mtl > single + 0.08


def test_cv_computes_each_fold_lipschitz_constant_once(monkeypatch):
    import mtlkit.linear._losses as losses

    calls = []
    original = losses._power_iteration
    monkeypatch.setattr(
        losses, "_power_iteration", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    Xs, ys, _, _ = related_tasks()
    cv = MultiTaskRegressorCV("l21", alphas=4, cv=3, precompute=False, random_state=0)
    cv.fit(Xs, ys)
    assert len(cv.mixings_) == 6
    # One per fold loss and one for the all-rows loss (λ_max, starts, refit path and the refit
    # itself): not once per candidate combination.
    assert len(calls) == 3 + 1


@pytest.mark.parametrize(
    ("penalty", "params"),
    [
        ("mean", {"rho": [0.1, -0.5]}),
        ("l21", {"l1_ratio": [0.5, 2.0]}),
        ("trace", {"shared": [None, -1.0]}),
        ("mean", {"rho": []}),
        ("trace", {"shared": []}),
    ],
)
def test_candidate_lists_get_the_range_of_a_single_value(penalty, params):
    Xs, ys, _, _ = related_tasks()
    with pytest.raises(ValueError, match="rho|l1_ratio|shared"):
        MultiTaskRegressorCV(penalty, alphas=3, cv=3, **params).fit(Xs, ys)
