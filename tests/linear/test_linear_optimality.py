"""Optimality: subgradient (KKT) conditions at the returned solution, for every penalty and both
losses, and no higher objective than a long reference run from another starting point."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from mtlkit.linear import PENALTIES, MultiTaskClassifier, MultiTaskRegressor

EDGES = [(0, 1), (1, 2), (2, 3)]
LAM = 0.05


def make_data(classification, seed=0, n=50, d=8, T=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((T, d)) * (rng.random(d) < 0.6)
    Y = X @ W.T + 0.3 * rng.standard_normal((n, T))
    return X, ((Y > 0).astype(float) if classification else Y)


def fit(classification, penalty, X, Y, **kw):
    cls = MultiTaskClassifier if classification else MultiTaskRegressor
    params = {"alpha": LAM, "edges": EDGES, "n_clusters": 2, "tol": 1e-11, "max_iter": 50_000}
    params.update(kw)
    return cls(penalty, **params).fit(X, Y)


def data_gradient(model, X, Y, classification):
    """∇_W and ∇_b of Σ_t (1/n_t) Σ_i ℓ at the fitted (W, b)."""
    Z = X @ model.coef_.T + model.intercept_
    n = X.shape[0]
    D = (1.0 / (1.0 + np.exp(-Z)) - Y) / n if classification else (Z - Y) / n
    return D.T @ X, D.sum(axis=0)


def penalty_gradient(model, W):
    """Gradient of the smooth penalties at ``W``, by their definitions."""
    name, rho = model.penalty, model.rho
    if name == "mean":
        rho = 0.1 if rho is None else rho
        wbar = W.mean(axis=0)
        return (W - wbar) + rho * wbar
    if name == "graph":
        rho = 0.1 if rho is None else rho
        G = rho * W
        for s, t in EDGES:
            G[s] += W[s] - W[t]
            G[t] += W[t] - W[s]
        return G
    if name == "clustered":
        eta = 1.0 if rho is None else rho
        from mtlkit.linear._penalties import ClusteredConvex

        return ClusteredConvex(2, eta).grad(W)
    raise AssertionError(name)


def assert_kkt(model, X, Y, classification, atol=1e-6):
    """Subgradient conditions of ``F(W) + λ R(W)``, or with ``shared = ς`` of
    ``F(1w₀ᵀ + V) + λ (R(V) + (ς/2) T ‖w₀‖²)``: then ``Σ_t ∇_t F + λ ς T w₀ = 0`` and ``R``'s
    conditions hold at ``V`` with the same data gradient."""
    G, gb = data_gradient(model, X, Y, classification)
    np.testing.assert_allclose(gb, 0.0, atol=atol)
    W, lam = model.coef_, model.alpha
    if model.shared is not None:
        w0 = model.shared_coef_
        np.testing.assert_allclose(
            G.sum(axis=0) + lam * model.shared * W.shape[0] * w0, 0.0, atol=atol
        )
        W = W - w0[None, :]
    name = model.penalty
    a = {"l1": 1.0, "l2": 0.0}.get(name, model.l1_ratio if model.l1_ratio is not None else None)
    if name in ("mean", "graph", "clustered"):
        np.testing.assert_allclose(G + lam * penalty_gradient(model, W), 0.0, atol=atol)
    elif name in ("l1", "l2", "elasticnet"):
        a = 0.5 if a is None else a
        S = -(G + lam * (1 - a) * W) / lam  # must lie in a·∂‖W‖₁
        nz = W != 0
        np.testing.assert_allclose(S[nz], a * np.sign(W[nz]), atol=atol / lam)
        assert np.all(np.abs(S[~nz]) <= a + atol / lam)
    elif name == "l21":
        a = 1.0 if a is None else a
        S = -(G + lam * (1 - a) * W) / lam
        norms = np.linalg.norm(W, axis=0)
        nz = norms > 0
        np.testing.assert_allclose(S[:, nz], a * W[:, nz] / norms[nz], atol=atol / lam)
        assert np.all(np.linalg.norm(S[:, ~nz], axis=0) <= a + atol / lam)
    elif name == "trace":
        S = -G / lam  # ∂‖W‖_* = {S : ‖S‖₂ ≤ 1, ⟨S, W⟩ = ‖W‖_*}
        assert np.linalg.norm(S, 2) <= 1 + atol / lam
        nuc = np.linalg.svd(W, compute_uv=False).sum()
        np.testing.assert_allclose(np.vdot(S, W), nuc, atol=atol / lam * max(1.0, nuc))
    else:
        raise AssertionError(name)


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("classification", [False, True])
def test_kkt_conditions_hold_at_solution(penalty, classification):
    X, Y = make_data(classification)
    model = fit(classification, penalty, X, Y)
    assert_kkt(model, X, Y, classification)
    measure = model.dual_gap_ if not np.isnan(model.dual_gap_) else model.kkt_residual_
    assert measure <= 1e-11


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("classification", [False, True])
def test_objective_not_above_long_reference_run(penalty, classification):
    X, Y = make_data(classification, seed=1)
    model = fit(classification, penalty, X, Y, tol=1e-9)
    cls = MultiTaskClassifier if classification else MultiTaskRegressor
    reference = cls(**{**model.get_params(), "tol": 1e-13, "max_iter": 3000})
    reference.set_params(warm_start=True)
    reference.coef_ = np.random.default_rng(0).standard_normal(model.coef_.shape)
    reference.intercept_ = np.zeros(Y.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(X, Y)
    assert model.objective_ <= reference.objective_ * (1 + 1e-8) + 1e-14


@pytest.mark.parametrize(
    ("penalty", "shared"),
    [("trace", 0.0), ("trace", 0.5), ("l21", 0.0), ("l1", 0.1), ("clustered", 0.0), ("mean", 1.0)],
)
@pytest.mark.parametrize("classification", [False, True])
def test_kkt_conditions_with_shared_component(penalty, shared, classification):
    X, Y = make_data(classification, seed=2)
    Y = Y if classification else Y + 3.0 * X[:, :1]  # a strong common component
    model = fit(classification, penalty, X, Y, shared=shared)
    assert_kkt(model, X, Y, classification)
    assert np.linalg.norm(model.shared_coef_) > 0
    measure = model.dual_gap_ if not np.isnan(model.dual_gap_) else model.kkt_residual_
    assert measure <= 1e-11
    # The duality gap is used (and valid: ≥ 0 and tight) whenever R has a conjugate and ς > 0.
    uses_gap = not classification and shared > 0 and penalty in ("trace", "l21", "l1")
    assert np.isnan(model.dual_gap_) != uses_gap


@pytest.mark.parametrize("shared", [0.0, 0.3, 2.0])
def test_shared_ridge_is_mean_regularization(shared):
    """min_{w₀} ½‖W − 1w₀ᵀ‖² + (ς/2) T ‖w₀‖² = mean penalty with ρ = ς/(1 + ς), w₀ = w̄/(1 + ς)."""
    X, Y = make_data(False, seed=3)
    a = MultiTaskRegressor("l2", alpha=LAM, shared=shared, tol=1e-12, max_iter=50_000).fit(X, Y)
    rho = shared / (1.0 + shared)
    b = MultiTaskRegressor("mean", alpha=LAM, rho=rho, tol=1e-12, max_iter=50_000).fit(X, Y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.shared_coef_, b.coef_.mean(axis=0) / (1.0 + shared), atol=1e-5)
    np.testing.assert_allclose(a.objective_, b.objective_, rtol=1e-9)


def test_convergence_warning_when_max_iter_too_small():
    X, Y = make_data(False)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        MultiTaskRegressor("l21", alpha=1e-3, tol=1e-14, max_iter=2).fit(X, Y)
