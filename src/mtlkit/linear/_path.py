"""Regularization paths: λ from λ_max down, each solution warm-starting the next."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ._solver import alpha_grid, blas_threads, lambda_max, solve_path

#: Default ratio λ_min / λ_max: sparse penalties stop at 1e-3 λ_max (as scikit-learn does);
#: smooth penalties, whose λ_max is 100 L_data / μ_R, go down to 1e-3 L_data / μ_R.
SPARSE_EPS, SMOOTH_EPS = 1e-3, 1e-5


def default_eps(penalty) -> float:
    return SPARSE_EPS if penalty.sparse_path else SMOOTH_EPS


def path_alphas(
    loss, penalty, alphas, eps, *, n_default: int = 20, depth: float = 1.0
) -> np.ndarray:
    """``alphas`` as given (sorted decreasing), or ``alphas`` values (``n_default`` if None)
    geometric from λ_max to ``eps · λ_max`` (``eps`` None: ``depth · default_eps(penalty)``)."""
    if alphas is None or np.isscalar(alphas):
        n = n_default if alphas is None else int(alphas)
        if n < 1:
            raise ValueError(f"alphas: expected at least 1 value, got {alphas!r}.")
        if eps is not None and not 0.0 < eps < 1.0:
            raise ValueError(f"eps: expected a number in (0, 1), got {eps!r}.")
        eps = depth * default_eps(penalty) if eps is None else eps
        return alpha_grid(lambda_max(loss, penalty), n, eps)
    given = np.asarray(alphas, dtype=np.float64)
    if given.ndim != 1 or given.size == 0 or not np.all(np.isfinite(given) & (given > 0)):
        raise ValueError(
            f"alphas: expected a non-empty list of finite numbers > 0, got {given.tolist()!r}."
        )
    return np.sort(given)[::-1]


def regularization_path(estimator, X, y, *, alphas=None, eps: float | None = None):
    """Solutions of ``estimator``'s problem along a decreasing λ path, with warm starts.

    Parameters
    ----------
    estimator : MultiTaskRegressor or MultiTaskClassifier
        Gives the penalty and its settings (``alpha`` is ignored); it is not modified.
    X, y
        Shared design or per-task lists, as for ``fit``.
    alphas : int, array-like or None
        λ values, or their number (default 20) on a geometric grid from λ_max to ``eps · λ_max``.
    eps : float or None
        ``λ_min / λ_max``; default 1e-3 for sparse penalties (l1, elasticnet, l21, trace), else
        1e-5 (their λ_max is 100 · L_data / μ_R, L_data the curvature of the data term).

    Returns
    -------
    alphas : ndarray of shape (n_alphas,)
    coefs : ndarray of shape (n_alphas, n_tasks, n_features)
    intercepts : ndarray of shape (n_alphas, n_tasks)
    n_iters : ndarray of shape (n_alphas,)
    """
    est = clone(estimator)
    est._validate_params()
    data = est._prepare(X, y)
    settings = est._settings()
    loss = est._solver_loss(est._make_loss(data), settings["shared"])
    penalty = est._penalty(est.n_tasks_, **settings)
    grid = path_alphas(loss, penalty, alphas, eps)
    with blas_threads(data.design, loss):
        results = solve_path(loss, penalty, grid, tol=est.tol, max_iter=est.max_iter)
    coefs = np.stack([est._coef_from(r.W, settings["shared"]) for r in results])
    intercepts = np.stack([loss.intercept(r.W, r.b) for r in results])
    return grid, coefs, intercepts, np.array([r.n_iter for r in results])
