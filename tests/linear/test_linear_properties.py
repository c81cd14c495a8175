"""Mathematical properties: missing labels, layouts, symmetries, limits in λ, proxes, λ_max."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from mtlkit.linear import PENALTIES, MultiTaskClassifier, MultiTaskRegressor
from mtlkit.linear._penalties import ClusteredConvex, make_penalty
from mtlkit.linear._penalties._clustered import cluster_weights

TIGHT = {"tol": 1e-12, "max_iter": 100_000}
EDGES = [(0, 1), (1, 2)]


def problem(seed=0, n=40, d=6, T=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((T, d))
    return X, X @ W.T + 0.5 * rng.standard_normal((n, T)) + 1.0


@pytest.mark.parametrize("penalty", PENALTIES)
def test_missing_labels_equal_dropping_those_rows(penalty):
    X, Y = problem()
    rng = np.random.default_rng(1)
    missing = rng.random(Y.shape) < 0.3
    Ynan = np.where(missing, np.nan, Y)
    kw = {"alpha": 0.05, "edges": EDGES, "n_clusters": 2, **TIGHT}
    shared = MultiTaskRegressor(penalty, **kw).fit(X, Ynan)
    Xs = [X[~missing[:, t]] for t in range(3)]
    ys = [Y[~missing[:, t], t] for t in range(3)]
    per_task = MultiTaskRegressor(penalty, **kw).fit(Xs, ys)
    np.testing.assert_allclose(shared.coef_, per_task.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(shared.intercept_, per_task.intercept_, rtol=1e-6, atol=1e-8)


def test_missing_labels_classification_equal_dropping_rows():
    X, Y = problem()
    Yb = (Y > 1.0).astype(float)
    missing = np.random.default_rng(2).random(Y.shape) < 0.3
    kw = {"alpha": 0.02, **TIGHT}
    shared = MultiTaskClassifier("l21", **kw).fit(X, np.where(missing, np.nan, Yb))
    Xs = [X[~missing[:, t]] for t in range(3)]
    ys = [Yb[~missing[:, t], t] for t in range(3)]
    per_task = MultiTaskClassifier("l21", **kw).fit(Xs, ys)
    np.testing.assert_allclose(shared.coef_, per_task.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("penalty", ["l21", "trace", "mean"])
def test_sparse_and_dense_designs_agree(penalty):
    X, Y = problem(seed=3)
    X[np.abs(X) < 0.8] = 0.0
    kw = {"alpha": 0.05, "precompute": False, **TIGHT}
    dense = MultiTaskRegressor(penalty, **kw).fit(X, Y)
    sparse = MultiTaskRegressor(penalty, **kw).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(dense.coef_, sparse.coef_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dense.predict(X), sparse.predict(sp.csc_matrix(X)), rtol=1e-7)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), penalty=st.sampled_from(["l1", "l21", "trace", "mean"]))
def test_duplicated_tasks_get_identical_rows(seed, penalty):
    X, Y = problem(seed=seed, T=2)
    Y = np.column_stack([Y, Y[:, 0]])
    model = MultiTaskRegressor(penalty, alpha=0.05, **TIGHT).fit(X, Y)
    np.testing.assert_allclose(model.coef_[2], model.coef_[0], rtol=1e-6, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), penalty=st.sampled_from(["l21", "trace", "mean", "clustered"]))
def test_task_permutation_equivariance(seed, penalty):
    X, Y = problem(seed=seed, T=3)
    perm = np.random.default_rng(seed).permutation(3)
    kw = {"alpha": 0.05, "n_clusters": 2, **TIGHT}
    base = MultiTaskRegressor(penalty, **kw).fit(X, Y)
    permuted = MultiTaskRegressor(penalty, **kw).fit(X, Y[:, perm])
    np.testing.assert_allclose(permuted.coef_, base.coef_[perm], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("penalty", ["l1", "elasticnet", "l21", "trace"])
@pytest.mark.parametrize("classification", [False, True])
def test_lambda_max_is_the_threshold_of_the_zero_solution(penalty, classification):
    X, Y = problem(seed=4)
    if classification:
        Y = (Y > 1.0).astype(float)
    cls = MultiTaskClassifier if classification else MultiTaskRegressor
    lam_max = cls(penalty).lambda_max(X, Y)
    above = cls(penalty, alpha=lam_max * 1.001, **TIGHT).fit(X, Y)
    below = cls(penalty, alpha=lam_max * 0.95, **TIGHT).fit(X, Y)
    assert np.all(above.coef_ == 0.0)
    assert np.any(below.coef_ != 0.0)


def pooled_least_squares(Xs, ys):
    """One shared w with per-task intercepts, each task weighted by 1/n_t (the λ → ∞ limit)."""
    T, d = len(Xs), Xs[0].shape[1]
    rows, targets = [], []
    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)):
        onehot = np.zeros((X.shape[0], T))
        onehot[:, t] = 1.0
        scale = 1.0 / np.sqrt(X.shape[0])
        rows.append(scale * np.hstack([X, onehot]))
        targets.append(scale * y)
    sol = np.linalg.lstsq(np.vstack(rows), np.concatenate(targets), rcond=None)[0]
    return sol[:d]


@pytest.mark.parametrize("penalty", ["mean", "graph"])
def test_coupling_with_huge_lambda_is_one_pooled_model(penalty):
    rng = np.random.default_rng(5)
    Xs = [rng.standard_normal((n, 4)) for n in (30, 45, 25)]
    ys = [X @ rng.standard_normal(4) + rng.standard_normal(X.shape[0]) for X in Xs]
    kw = {"rho": 0.0, "edges": EDGES, "tol": 1e-10, "max_iter": 100_000}
    model = MultiTaskRegressor(penalty, alpha=1e4, **kw).fit(Xs, ys)
    w = pooled_least_squares(Xs, ys)
    for t in range(3):
        np.testing.assert_allclose(model.coef_[t], w, rtol=1e-2, atol=1e-3)
    far = MultiTaskRegressor(penalty, alpha=1e-2, **kw).fit(Xs, ys)
    assert np.abs(far.coef_ - w).max() > 10 * np.abs(model.coef_ - w).max()


def test_mean_with_tiny_lambda_is_independent_models():
    rng = np.random.default_rng(6)
    Xs = [rng.standard_normal((n, 4)) for n in (30, 45, 25)]
    ys = [X @ rng.standard_normal(4) + rng.standard_normal(X.shape[0]) for X in Xs]
    model = MultiTaskRegressor("mean", alpha=1e-9, rho=0.1, **TIGHT).fit(Xs, ys)
    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)):
        A = np.hstack([X, np.ones((X.shape[0], 1))])
        w = np.linalg.lstsq(A, y, rcond=None)[0][:4]
        np.testing.assert_allclose(model.coef_[t], w, rtol=1e-5, atol=1e-6)


def test_clustered_with_k_equal_T_is_ridge_scaled_by_eta():
    X, Y = problem(seed=7)
    eta = 0.5
    clustered = MultiTaskRegressor("clustered", alpha=0.1, rho=eta, n_clusters=3, **TIGHT)
    ridge = MultiTaskRegressor("l2", alpha=0.1 * eta, **TIGHT)
    np.testing.assert_allclose(clustered.fit(X, Y).coef_, ridge.fit(X, Y).coef_, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    sigma=st.lists(st.floats(0.0, 10.0), min_size=2, max_size=6),
    eta=st.floats(0.05, 5.0),
    data=st.data(),
)
def test_cluster_weights_are_feasible_and_optimal(sigma, eta, data):
    sigma = np.array(sigma)
    k = data.draw(st.integers(1, sigma.size))
    m = cluster_weights(sigma, eta, k)
    assert np.all(m >= -1e-12) and np.all(m <= 1 + 1e-12)
    np.testing.assert_allclose(m.sum(), k, atol=1e-9)
    best = np.sum(sigma**2 / (eta + m))
    rng = np.random.default_rng(0)
    for _ in range(20):  # random feasible points never do better
        other = rng.random(sigma.size)
        for _ in range(50):
            other = np.clip(other + (k - other.sum()) / sigma.size, 0.0, 1.0)
        if abs(other.sum() - k) < 1e-9:
            assert best <= np.sum(sigma**2 / (eta + other)) + 1e-9


def test_clustered_gradient_matches_finite_differences():
    pen = ClusteredConvex(2, 0.7)
    W = np.random.default_rng(8).standard_normal((4, 3))
    G = pen.grad(W)
    E = np.random.default_rng(9).standard_normal(W.shape)
    h = 1e-6
    fd = (pen.value(W + h * E) - pen.value(W - h * E)) / (2 * h)
    np.testing.assert_allclose(np.vdot(G, E), fd, rtol=1e-5)


@pytest.mark.parametrize("name", ["l1", "elasticnet", "l21", "trace", "l2"])
def test_prox_minimizes_its_objective(name):
    pen = make_penalty(name, 3, l1_ratio=0.6)
    V = np.random.default_rng(10).standard_normal((3, 4))
    step = 0.4
    P = pen.prox(V, step)

    def f(w):
        W = w.reshape(V.shape)
        return 0.5 * np.sum((W - V) ** 2) + step * pen.value(W)

    for seed in range(5):  # perturbations never decrease the prox objective
        E = np.random.default_rng(seed).standard_normal(V.shape)
        for h in (1e-3, 1e-1):
            assert f(P.ravel()) <= f((P + h * E).ravel()) + 1e-12
    ref = minimize(f, V.ravel(), method="Powell", options={"xtol": 1e-10, "ftol": 1e-14})
    assert f(P.ravel()) <= ref.fun + 1e-9
