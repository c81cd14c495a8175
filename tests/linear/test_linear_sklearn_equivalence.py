"""Reference values: where a formulation coincides with scikit-learn's, coefficients agree to 1e-6.

Scaling (shared design, n rows, no missing label): λ = alpha for MultiTaskLasso,
MultiTaskElasticNet, Lasso and ElasticNet; Ridge(alpha = n λ); LogisticRegression(C = 1/(n λ)).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LogisticRegression,
    MultiTaskElasticNet,
    MultiTaskLasso,
    Ridge,
)

from mtlkit.linear import MultiTaskClassifier, MultiTaskRegressor

TIGHT = {"tol": 1e-13, "max_iter": 200_000}
SK_TIGHT = {"tol": 1e-14, "max_iter": 200_000}


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d, T = 60, 12, 4
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((T, d)) * (rng.random(d) < 0.5)
    Y = X @ W.T + 0.5 * rng.standard_normal((n, T)) + 3.0
    return X, Y


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_l21_is_multitask_lasso(data, precompute, sparse, fit_intercept):
    X, Y = data
    ref = MultiTaskLasso(alpha=0.1, fit_intercept=fit_intercept, **SK_TIGHT).fit(X, Y)
    Xin = sp.csr_matrix(X) if sparse else X
    ours = MultiTaskRegressor(
        "l21", alpha=0.1, fit_intercept=fit_intercept, precompute=precompute, **TIGHT
    ).fit(Xin, Y)
    assert rel_err(ours.coef_, ref.coef_) < 1e-6
    assert rel_err(ours.intercept_ + 1.0, ref.intercept_ + 1.0) < 1e-6
    assert ours.dual_gap_ <= TIGHT["tol"]


@pytest.mark.parametrize("l1_ratio", [0.2, 0.7])
@pytest.mark.parametrize("precompute", [True, False])
def test_l21_with_ridge_is_multitask_elastic_net(data, l1_ratio, precompute):
    X, Y = data
    ref = MultiTaskElasticNet(alpha=0.05, l1_ratio=l1_ratio, **SK_TIGHT).fit(X, Y)
    ours = MultiTaskRegressor(
        "l21", alpha=0.05, l1_ratio=l1_ratio, precompute=precompute, **TIGHT
    ).fit(X, Y)
    assert rel_err(ours.coef_, ref.coef_) < 1e-6
    assert rel_err(ours.intercept_, ref.intercept_) < 1e-6


@pytest.mark.parametrize("precompute", [True, False])
def test_l1_is_lasso_per_task(data, precompute):
    X, Y = data
    ours = MultiTaskRegressor("l1", alpha=0.05, precompute=precompute, **TIGHT).fit(X, Y)
    for t in range(Y.shape[1]):
        ref = Lasso(alpha=0.05, **SK_TIGHT).fit(X, Y[:, t])
        assert rel_err(ours.coef_[t], ref.coef_) < 1e-6
        assert rel_err(ours.intercept_[t], ref.intercept_) < 1e-6


def test_elasticnet_is_elastic_net_per_task(data):
    X, Y = data
    ours = MultiTaskRegressor("elasticnet", alpha=0.05, l1_ratio=0.4, **TIGHT).fit(X, Y)
    for t in range(Y.shape[1]):
        ref = ElasticNet(alpha=0.05, l1_ratio=0.4, **SK_TIGHT).fit(X, Y[:, t])
        assert rel_err(ours.coef_[t], ref.coef_) < 1e-6


@pytest.mark.parametrize("precompute", [True, False])
def test_l2_is_ridge(data, precompute):
    X, Y = data
    lam = 0.05
    ours = MultiTaskRegressor("l2", alpha=lam, precompute=precompute, **TIGHT).fit(X, Y)
    ref = Ridge(alpha=X.shape[0] * lam, solver="cholesky").fit(X, Y)
    assert rel_err(ours.coef_, ref.coef_) < 1e-6
    assert rel_err(ours.intercept_, ref.intercept_) < 1e-6


def test_l2_logistic_is_logistic_regression(data):
    X, Y = data
    Yb = (Y > 3.0).astype(float)
    lam = 0.02
    ours = MultiTaskClassifier("l2", alpha=lam, tol=1e-12, max_iter=100_000).fit(X, Yb)
    for t in range(Y.shape[1]):
        ref = LogisticRegression(C=1.0 / (X.shape[0] * lam), tol=1e-12, max_iter=10_000)
        ref.fit(X, Yb[:, t])
        assert rel_err(ours.coef_[t], ref.coef_[0]) < 1e-6
        assert rel_err(ours.intercept_[t], ref.intercept_[0]) < 1e-6


@pytest.mark.parametrize("precompute", [True, False])
def test_sum_task_weighting_is_ridge_with_total_row_count(precompute):
    rng = np.random.default_rng(3)
    Xs = [rng.standard_normal((n, 5)) for n in (15, 40, 25)]
    ys = [X @ rng.standard_normal(5) + rng.standard_normal(X.shape[0]) for X in Xs]
    lam, N = 0.05, 80
    ours = MultiTaskRegressor(
        "l2", alpha=lam, task_weighting="sum", precompute=precompute, **TIGHT
    ).fit(Xs, ys)
    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)):
        ref = Ridge(alpha=N * lam, solver="cholesky").fit(X, y)
        assert rel_err(ours.coef_[t], ref.coef_) < 1e-6
        assert rel_err(ours.intercept_[t], ref.intercept_) < 1e-6
