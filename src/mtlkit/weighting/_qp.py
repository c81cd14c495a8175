"""Exact solvers for the small T × T problems of the Gramian strategies.

All work on the Gramian ``G = J Jᵀ`` in float64 NumPy and use only SciPy's Lawson–Hanson
non-negative least squares (:func:`scipy.optimize.nnls`, an active-set method with finite
termination), Newton's method, or SciPy's SLSQP for the one non-quadratic problem (CAGrad).

The trick shared by MGDA, UPGrad and DualProj: with the eigendecomposition ``G = V Λ Vᵀ`` let
``A = Λ^{1/2} Vᵀ`` (T × T), so that ``vᵀ G v = ‖A v‖²`` — a quadratic form in ``G`` becomes a
least-squares residual, and a sign constraint makes it an NNLS problem.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize, nnls
from torch import Tensor


def to_numpy(gramian: Tensor) -> np.ndarray:
    """Symmetrised float64 copy of ``gramian``, scaled to unit trace (all solvers here are
    invariant to the scale of ``G``; the scaling only helps conditioning)."""
    g = gramian.detach().to(device="cpu", dtype=torch.float64).numpy()
    g = 0.5 * (g + g.T)
    trace = float(np.trace(g))
    return g / trace if trace > 0 else g


def rank_rtol(dtype: torch.dtype, size: int) -> float:
    """Relative eigenvalue threshold below which a ``size`` × ``size`` Gramian computed in
    ``dtype`` is rank-deficient: ``size · eps(dtype)`` (LAPACK's and NumPy's rank rule, the one
    the Aligned-MTL authors and torchjd use). It follows the dtype the Gramian was computed in,
    also when the solver then works in float64."""
    return size * float(torch.finfo(dtype).eps)


def range_basis(g: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Orthonormal basis ``Q`` (T × r) of the range of ``G``: the directions of weight space
    that move ``Jᵀw``, rounding-level ones left out.

    The rank is decided on the cosine matrix ``C = D⁻¹ G D⁻¹`` (``D = √diag G``), whose
    rounding is ``eps(dtype)`` whatever the gradients' norms, with :func:`rank_rtol`: a float32
    ``G`` of exactly dependent gradients (task 3 = task 1 + task 2) has an eigenvalue of order
    ``eps32 · λ_max`` that float64 tolerances would keep, while gradients whose norms differ by
    1e4 give a genuine eigenvalue 1e-8 · λ_max that a tolerance on ``G`` itself would drop.
    ``C n = 0`` ⇔ ``G D⁻¹n = 0``, so the null space of ``G`` is ``D⁻¹`` times ``C``'s (plus
    the zero gradients' axes). ``G⁺ = Q (QᵀGQ)⁻¹ Qᵀ``.
    """
    t = g.shape[0]
    norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
    live = norms > 0
    null = [np.eye(t)[:, i] for i in np.flatnonzero(~live)]
    if live.any():
        scaled = g[np.ix_(live, live)] / np.outer(norms[live], norms[live])
        lam, vec = np.linalg.eigh(0.5 * (scaled + scaled.T))
        small = lam <= rank_rtol(dtype, t) * max(float(lam.max()), 0.0)
        for n in vec[:, small].T:
            full = np.zeros(t)
            full[live] = n / norms[live]
            null.append(full)
    if not null:
        return np.eye(t)
    u, sv, _ = np.linalg.svd(np.stack(null, axis=1), full_matrices=True)
    return u[:, int((sv > 1e-12 * sv.max()).sum()) :]


def square_root(g: np.ndarray) -> np.ndarray:
    """``A`` (T × T) with ``Aᵀ A = G`` (negative round-off eigenvalues clipped to zero)."""
    lam, vec = np.linalg.eigh(g)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, _ = nnls(a, b, maxiter=50 * a.shape[1] + 50)
    return x


def min_norm_simplex(g: np.ndarray) -> np.ndarray:
    """``argmin_{w ∈ Δ} wᵀ G w`` (the minimum-norm point of the convex hull of the rows of J).

    Least-distance programming (Lawson & Hanson, 1974, ch. 23): with ``E = [A; 1ᵀ]`` solve
    ``min_{u ≥ 0} ‖E u − e_{T+1}‖² = uᵀGu + (1ᵀu − 1)²``. Writing ``u = s w`` with ``w ∈ Δ``,
    the optimal ``s = 1/(1 + wᵀGw)`` leaves ``wᵀGw / (1 + wᵀGw)``, increasing in ``wᵀGw``;
    so ``w* = u*/1ᵀu*`` exactly (``u* ≠ 0`` since ``u = 0`` has the worst value 1).
    """
    t = g.shape[0]
    e = np.vstack([square_root(g), np.ones((1, t))])
    f = np.zeros(t + 1)
    f[-1] = 1.0
    u = _nnls(e, f)
    return u / u.sum()


def project_dual_cone(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Weights of the projection of ``Jᵀu`` onto the dual cone ``{x : J x ≥ 0}``, row by row.

    By Proposition 1 of Quinton & Rey (2024), ``π(Jᵀu) = Jᵀv`` with
    ``v = argmin_{v ≥ u} vᵀ G v``. With ``v = u + x``: ``min_{x ≥ 0} ‖A x + A u‖²`` (NNLS).
    ``u`` is (T,) or (K, T); the result has the same shape.
    """
    a = square_root(g)
    rows = np.atleast_2d(u)
    out = np.stack([row + _nnls(a, -a @ row) for row in rows])
    return out.reshape(np.shape(u))


def nash_bargaining(
    g: np.ndarray, init: np.ndarray | None = None, tol: float = 1e-10
) -> np.ndarray:
    """The ``w > 0`` with ``G w = 1 / w`` (Nash-MTL's bargaining solution).

    It is the unique minimiser of the strictly convex ``f(w) = ½ wᵀGw − Σₜ log wₜ``; solved by
    damped Newton steps (Hessian ``G + diag(1/w²)``) that keep ``w > 0``. ``G`` must be positive
    definite on the positive orthant's directions (callers add a small ridge).
    """
    t = g.shape[0]
    w = np.ones(t) / np.sqrt(np.clip(np.diag(g), 1e-12, None)) if init is None else init.copy()
    w = np.where(np.isfinite(w) & (w > 0), w, 1.0)

    def f(x: np.ndarray) -> float:
        return 0.5 * x @ g @ x - np.log(x).sum()

    for _ in range(200):
        grad = g @ w - 1.0 / w
        if np.max(np.abs(grad * w)) < tol:
            break
        hess = g + np.diag(1.0 / w**2)
        step = np.linalg.solve(hess, grad)
        alpha = 1.0
        neg = step > 0
        if neg.any():  # keep w − α step > 0
            alpha = min(1.0, 0.99 * float(np.min(w[neg] / step[neg])))
        fw, slope = f(w), grad @ step
        while alpha > 1e-12 and f(w - alpha * step) > fw - 1e-4 * alpha * slope:
            alpha *= 0.5
        w = w - alpha * step
    return w


def cagrad_subproblem(g: np.ndarray, c: float) -> np.ndarray:
    """``argmin_{w ∈ Δ} wᵀ G 1/T + c ‖g₀‖ √(wᵀ G w)`` with ``‖g₀‖² = 1ᵀG1/T²`` (SLSQP).

    Convex in ``w``; solved from the uniform point with an analytic gradient, as in the
    authors' code, but to a tight tolerance.
    """
    t = g.shape[0]
    b = g.mean(axis=1)
    radius = c * np.sqrt(max(float(g.mean()), 0.0))

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        gw = g @ w
        norm = np.sqrt(max(float(w @ gw), 0.0) + 1e-20)
        return float(b @ w + radius * norm), b + radius * gw / norm

    result = minimize(
        fun,
        np.full(t, 1.0 / t),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * t,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(t)}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum()
