"""Data-fit terms ``F(W, b) = Σ_t (1/n_t) Σ_{i ∈ task t} ℓ(x_iᵀ w_t + b_t, y_i)``.

Every task is averaged over its own labelled rows. Targets and weights live in the design's
container (see ``_data``): missing labels carry weight 0. The squared loss eliminates the
intercepts in closed form (``b_t`` = mean residual of task t), so the solver works on ``W`` only;
the logistic loss keeps ``b`` as an unpenalized variable.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from ._data import SharedDesign

_EMPTY = np.zeros(0)


def _computed_once(method):
    """Cache a loss's argument-free ``method`` on the instance: a loss is fixed once built, and
    ``lipschitz`` (30 power-iteration products) is asked for by λ_max, every path and every
    candidate combination of a CV fit on the same fold loss."""
    key = f"_cached_{method.__name__}"

    @functools.wraps(method)
    def wrapper(self):
        if key not in self.__dict__:
            self.__dict__[key] = method(self)
        return self.__dict__[key]

    return wrapper


def _power_iteration(apply, shape, n_iter: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of the PSD operator ``apply`` acting on arrays of ``shape``."""
    v = np.random.default_rng(seed).standard_normal(shape)
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(n_iter):
        w = apply(v)
        value = float(np.linalg.norm(w))
        if value == 0.0:
            return 0.0
        v = w / value
    return value


def _row_weights(design, ind, task_weighting: str):
    """Per-row weights: ``1/n_t`` (mean, for intercepts), and the loss's (``1/n_t`` or ``1/N``)."""
    counts = design.task_sum(ind)
    if np.any(counts == 0):
        raise ValueError(f"Task {int(np.flatnonzero(counts == 0)[0])} has no labelled rows.")
    mean_weights = ind * design.broadcast(1.0 / counts)
    if task_weighting == "mean":
        return mean_weights, mean_weights, counts.astype(np.float64)
    total = float(counts.sum())
    return mean_weights, ind / total, np.full(counts.shape, total)


class SquaredLoss:
    r"""``F(W) = Σ_t (1/(2 n_t)) ‖y_t − X_t w_t − b_t‖²`` with ``b_t`` minimizing it (if fitted).

    Works on the design directly: one forward and one adjoint product per gradient.
    """

    n_intercepts = 0

    def __init__(self, design, Y, ind, fit_intercept: bool, task_weighting: str = "mean"):
        self.design = design
        self.n_tasks, self.n_features = design.n_tasks, design.n_features
        self.ind = ind
        self.mean_weights, self.weights, self.div = _row_weights(design, ind, task_weighting)
        self.Y = Y * ind
        self.fit_intercept = fit_intercept

    def _residual(self, W):
        R = (self.Y - self.design.forward(W)) * self.ind
        if not self.fit_intercept:
            return R, np.zeros(self.n_tasks)
        b = self.design.task_sum(self.mean_weights * R)
        return (R - self.design.broadcast(b)) * self.ind, b

    def value(self, W, b=_EMPTY):
        R, _ = self._residual(W)
        return 0.5 * float(np.vdot(self.weights * R, R))

    def value_grad(self, W, b=_EMPTY):
        R, _ = self._residual(W)
        wR = self.weights * R
        return 0.5 * float(np.vdot(wR, R)), -self.design.backward(wR), _EMPTY

    def intercept(self, W, b=_EMPTY):
        return self._residual(W)[1]

    def dual_terms(self, W):
        """``q = Σ_t ‖r_t‖²/n_t``, ``a = Σ_t ⟨r_t, y_t⟩/n_t``, ``V = −∇F(W)`` (see ``_solver``)."""
        R, _ = self._residual(W)
        wR = self.weights * R
        return float(np.vdot(wR, R)), float(np.vdot(wR, self.Y)), self.design.backward(wR)

    @_computed_once
    def lipschitz(self) -> float:
        def apply(V):
            return self.design.backward(self.weights * self.design.forward(V))

        return 1.02 * _power_iteration(apply, (self.n_tasks, self.n_features))

    def initial_intercept(self):
        return _EMPTY


class GramSquaredLoss(SquaredLoss):
    """The same squared loss computed from per-task Gram matrices of the centred data.

    ``F(W) = Σ_t (w_tᵀ G_t w_t − 2 c_tᵀ w_t + s_t) / (2 n_t)`` with ``G_t = X̃_tᵀ X̃_t``,
    ``c_t = X̃_tᵀ ỹ_t``, ``s_t = ‖ỹ_t‖²`` (tilde: centred over task t's labelled rows when the
    intercept is fitted). One Gram is shared when every task has the same labelled rows.
    """

    def __init__(self, design, Y, ind, fit_intercept: bool, task_weighting: str = "mean"):
        super().__init__(design, Y, ind, fit_intercept, task_weighting)
        T, d = self.n_tasks, self.n_features
        if isinstance(design, SharedDesign) and bool(np.all(ind > 0)):
            X, n = design.X, design.X.shape[0]
            Yf = np.asarray(Y)
            xbar = np.asarray(X.mean(axis=0)).ravel() if fit_intercept else np.zeros(d)
            ybar = Yf.mean(axis=0) if fit_intercept else np.zeros(T)
            G = X.T @ X
            G = (G.toarray() if sp.issparse(G) else np.asarray(G)) - n * np.outer(xbar, xbar)
            C = np.asarray(X.T @ Yf).T - n * np.outer(ybar, xbar)
            s = np.einsum("it,it->t", Yf, Yf) - n * ybar**2
            self.G, self.C, self.s = G, C, s
            self.n = np.full(T, float(n))
            self.xbar, self.ybar = np.tile(xbar, (T, 1)), ybar
        else:
            self.G, self.C = np.empty((T, d, d)), np.empty((T, d))
            self.s, self.n = np.empty(T), np.empty(T)
            self.xbar, self.ybar = np.zeros((T, d)), np.zeros(T)
            for t, (Xt, yt) in enumerate(self._task_data(design, Y, ind)):
                n = Xt.shape[0]
                if fit_intercept:
                    self.xbar[t] = np.asarray(Xt.mean(axis=0)).ravel()
                    self.ybar[t] = yt.mean()
                G = Xt.T @ Xt
                G = G.toarray() if sp.issparse(G) else np.asarray(G)
                self.G[t] = G - n * np.outer(self.xbar[t], self.xbar[t])
                self.C[t] = np.asarray(Xt.T @ yt).ravel() - n * self.ybar[t] * self.xbar[t]
                self.s[t] = yt @ yt - n * self.ybar[t] ** 2
                self.n[t] = n

    @staticmethod
    def _task_data(design, Y, ind):
        if isinstance(design, SharedDesign):
            for t in range(design.n_tasks):
                rows = ind[:, t] > 0
                yield design.X[rows], Y[rows, t]
        else:
            for Xt, sl in zip(design.Xs, design.slices, strict=True):
                rows = ind[sl] > 0
                yield (Xt if rows.all() else Xt[rows]), Y[sl][rows]

    @property
    def loop_size(self) -> int:
        """Multiply-adds of one gradient (``T d²``): sizes the BLAS thread rule."""
        return self.n_tasks * self.n_features * self.n_features

    def _WG(self, W):
        return W @ self.G if self.G.ndim == 2 else np.matmul(self.G, W[:, :, None])[:, :, 0]

    def _task_losses(self, W, WG):
        return (np.einsum("ti,ti->t", WG - 2.0 * self.C, W) + self.s) / (2.0 * self.div)

    def value(self, W, b=_EMPTY):
        return float(self._task_losses(W, self._WG(W)).sum())

    def value_grad(self, W, b=_EMPTY):
        WG = self._WG(W)
        return float(self._task_losses(W, WG).sum()), (WG - self.C) / self.div[:, None], _EMPTY

    def intercept(self, W, b=_EMPTY):
        if not self.fit_intercept:
            return np.zeros(self.n_tasks)
        return self.ybar - np.einsum("ti,ti->t", self.xbar, W)

    def dual_terms(self, W):
        WG = self._WG(W)
        q = 2.0 * float(self._task_losses(W, WG).sum())
        a = float(np.sum((self.s - np.einsum("ti,ti->t", self.C, W)) / self.div))
        return q, a, (self.C - WG) / self.div[:, None]

    @_computed_once
    def lipschitz(self) -> float:
        if self.G.ndim == 2:
            return 1.02 * _power_iteration(lambda v: self.G @ v, (self.n_features,)) / self.div[0]
        V = np.random.default_rng(0).standard_normal((self.n_tasks, self.n_features))
        top = np.zeros(self.n_tasks)
        for _ in range(30):
            V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
            V = np.einsum("tij,tj->ti", self.G, V)
            top = np.linalg.norm(V, axis=1)
        return 1.02 * float(np.max(top / self.div))


class LogisticLoss:
    r"""``F(W, b) = Σ_t (1/n_t) Σ_i log(1 + exp(−ỹ_i (x_iᵀ w_t + b_t)))``, ``ỹ_i ∈ {−1, +1}``."""

    def __init__(self, design, Y, ind, fit_intercept: bool, task_weighting: str = "mean"):
        self.design = design
        self.n_tasks, self.n_features = design.n_tasks, design.n_features
        mean_weights, self.weights, _ = _row_weights(design, ind, task_weighting)
        self.signs = np.where(Y > 0, 1.0, -1.0) * ind
        self.fit_intercept = fit_intercept
        self.n_intercepts = self.n_tasks if fit_intercept else 0
        self._positive_rate = design.task_sum(mean_weights * (self.signs > 0))

    def _margins(self, W, b):
        Z = self.design.forward(W)
        if self.n_intercepts:
            Z = Z + self.design.broadcast(b)
        return -self.signs * Z

    def value(self, W, b=_EMPTY):
        return float(np.sum(self.weights * np.logaddexp(0.0, self._margins(W, b))))

    def value_grad(self, W, b=_EMPTY):
        M = self._margins(W, b)
        S = -self.signs * expit(M) * self.weights
        gb = self.design.task_sum(S) if self.n_intercepts else _EMPTY
        return float(np.sum(self.weights * np.logaddexp(0.0, M))), self.design.backward(S), gb

    def intercept(self, W, b=_EMPTY):
        return np.asarray(b) if self.n_intercepts else np.zeros(self.n_tasks)

    def initial_intercept(self):
        if not self.n_intercepts:
            return _EMPTY
        p = np.clip(self._positive_rate, 1e-12, 1 - 1e-12)
        return np.log(p / (1.0 - p))

    @_computed_once
    def lipschitz(self) -> float:
        def apply(V):
            return self.design.backward(self.weights * self.design.forward(V))

        Lx = 1.02 * _power_iteration(apply, (self.n_tasks, self.n_features))
        return 0.25 * (np.sqrt(Lx) + 1.0) ** 2 if self.n_intercepts else 0.25 * Lx


def make_loss(
    kind: str, design, Y, ind, *, fit_intercept: bool, precompute="auto", task_weighting="mean"
):
    """Build the data-fit term; ``precompute`` picks the Gram form of the squared loss."""
    if kind == "logistic":
        return LogisticLoss(design, Y, ind, fit_intercept, task_weighting)
    if precompute == "auto":
        precompute = _gram_pays_off(design, ind)
    cls = GramSquaredLoss if precompute else SquaredLoss
    return cls(design, Y, ind, fit_intercept, task_weighting)


def _gram_pays_off(design, ind) -> bool:
    d, T = design.n_features, design.n_tasks
    if isinstance(design, SharedDesign) and bool(np.all(ind > 0)):
        return d <= design.X.shape[0] and d <= 4000
    if d > 500 or T * d * d > 2e7:
        return False
    rows = float(np.sum(ind > 0))
    # Per-task designs pay one small Python-level product per task and direction (≈ the cost of
    # 2·10⁴ multiply-adds each); the batched Gram product pays ≈ T d² once.
    overhead = 0.0 if isinstance(design, SharedDesign) else 2e4 * T
    return T * d * d <= 2 * rows * d + overhead
