"""A shared component ``w₀`` common to all tasks beside the penalized task weights.

With ``shared = ς`` the estimators solve

    min_{w₀, V, b}  F(1 w₀ᵀ + V, b) + λ (R(V) + (ς/2) T ‖w₀‖²),      W = 1 w₀ᵀ + V,

so ``R`` (trace norm, ℓ2,1, clustering, …) acts on the deviations from a common model instead of
pulling every task toward zero. The solver works on ``Z = [V; u]`` of shape ``(T + 1) × d`` with
``w₀ = u / √T``: then ``W = V + 1 uᵀ / √T``, the extra penalty is ``(ς/2)‖u‖²`` and the data
curvature along ``u`` is the task average of the per-task curvatures, so one step size suits both
blocks (the map ``Z ↦ W`` has norm √2, hence a Lipschitz bound ``2 L_data``).
"""

from __future__ import annotations

import numpy as np

from ._penalties import Penalty

_EMPTY = np.zeros(0)


def expand(Z: np.ndarray) -> np.ndarray:
    """``W = V + 1 uᵀ / √T`` from ``Z = [V; u]``."""
    V, u = Z[:-1], Z[-1]
    return V + u[None, :] / np.sqrt(V.shape[0])


def split_shared(W: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """``Z = [W − 1 w₀ᵀ; √T w₀]``, the inverse of :func:`expand` for a given ``w₀``."""
    T = W.shape[0]
    return np.vstack([W - w0[None, :], np.sqrt(T) * w0[None, :]])


class SharedComponentLoss:
    """The data term ``F(expand(Z), b)`` of a base loss, with gradients pulled back to ``Z``."""

    def __init__(self, base):
        self.base = base
        self.n_tasks, self.n_features = base.n_tasks + 1, base.n_features
        self.n_intercepts = base.n_intercepts
        self._c = 1.0 / np.sqrt(base.n_tasks)
        if hasattr(base, "dual_terms"):
            self.dual_terms = self._dual_terms
        if hasattr(base, "loop_size"):
            self.loop_size = base.loop_size

    def _pull(self, G):
        return np.vstack([G, self._c * G.sum(axis=0)[None, :]])

    def value(self, Z, b=_EMPTY):
        return self.base.value(expand(Z), b)

    def value_grad(self, Z, b=_EMPTY):
        f, G, gb = self.base.value_grad(expand(Z), b)
        return f, self._pull(G), gb

    def _dual_terms(self, Z):
        q, a, V = self.base.dual_terms(expand(Z))
        return q, a, self._pull(V)

    def intercept(self, Z, b=_EMPTY):
        return self.base.intercept(expand(Z), b)

    def initial_intercept(self):
        return self.base.initial_intercept()

    def lipschitz(self) -> float:
        # ‖Z ↦ expand(Z)‖² = 1 + T · (1/√T)² = 2.
        return 2.0 * self.base.lipschitz()


class SharedComponentPenalty(Penalty):
    """``R(V) + (ς/2)‖u‖²`` on ``Z = [V; u]``; the ridge on ``u`` goes where ``R`` goes (its
    gradient for a smooth ``R``, its prox otherwise)."""

    def __init__(self, base: Penalty, shared: float):
        self.base = base
        self.shared = float(shared)
        self.smooth = base.smooth

    def value(self, Z):
        u = Z[-1]
        return self.base.value(Z[:-1]) + 0.5 * self.shared * float(u @ u)

    def grad(self, Z):
        return np.vstack([self.base.grad(Z[:-1]), self.shared * Z[-1:]])

    def prox(self, V, step):
        return np.vstack([self.base.prox(V[:-1], step), V[-1:] / (1.0 + step * self.shared)])

    def lipschitz(self):
        return max(self.base.lipschitz(), self.shared) if self.smooth else 0.0

    def lambda_max(self, G0, L_data):
        """λ_max of ``R`` on the task block of the gradient at ``Z = 0`` (the path's start; with a
        shared component ``V = 0`` is optimal from a lower λ on, which the path then reaches)."""
        return self.base.lambda_max(G0[:-1], L_data)

    @property
    def sparse_path(self) -> bool:
        return self.base.sparse_path

    def curvature(self):
        return self.base.curvature()

    def conjugate(self, V, lam):
        if self.shared <= 0:
            return None
        res = self.base.conjugate(V[:-1], lam)
        if res is None:
            return None
        s, conj = res
        u = V[-1]
        return s, conj + s * s * float(u @ u) / (2.0 * lam * self.shared)
