"""Quadratic task-coupling penalties ``R(W) = ½ tr(Wᵀ Q W)`` with a PSD ``T × T`` matrix ``Q``."""

from __future__ import annotations

import numpy as np

from ._base import Penalty


class QuadraticCoupling(Penalty):
    """Smooth penalty ``½ tr(Wᵀ Q W)``; its gradient ``Q W`` joins the data gradient."""

    smooth = True

    def __init__(self, Q: np.ndarray):
        self.Q = Q
        evals = np.linalg.eigvalsh(Q)
        self._max_eig = float(evals.max())
        positive = evals[evals > 1e-10 * max(self._max_eig, 1.0)]
        self._min_pos_eig = float(positive.min()) if positive.size else 1.0

    def value(self, W):
        return 0.5 * float(np.vdot(W, self.Q @ W))

    def grad(self, W):
        return self.Q @ W

    def lipschitz(self):
        return self._max_eig

    def curvature(self):
        return self._min_pos_eig


class MeanRegularization(QuadraticCoupling):
    r"""``R(W) = ½ Σ_t ‖w_t − w̄‖² + (ρ/2) T ‖w̄‖²`` with ``w̄ = (1/T) Σ_t w_t``.

    Evgeniou & Pontil (2004), "Regularized multi-task learning": writing ``w_t = w₀ + v_t``, their
    ``(λ₁/T) Σ_t ‖v_t‖² + λ₂ ‖w₀‖²`` is, after minimizing over ``w₀``, this penalty up to the map
    between ``(λ₁, λ₂)`` and ``(λ, ρ)``. With ``ρ = 0`` and λ → ∞ all tasks share one weight
    vector (a pooled model with per-task intercepts); λ → 0 gives independent models; ``ρ = 1`` is
    ridge ``½‖W‖²_F``.
    """

    def __init__(self, n_tasks: int, rho: float):
        J = np.full((n_tasks, n_tasks), 1.0 / n_tasks)
        super().__init__(np.eye(n_tasks) - J + rho * J)
        self.rho = float(rho)

    def value(self, W):
        # Σ_t ‖w_t − w̄‖² = ‖W‖² − T‖w̄‖²; sums, not ``mean`` (this runs every FISTA iteration).
        total = W.sum(axis=0)
        return 0.5 * float(np.vdot(W, W) - (1.0 - self.rho) * np.vdot(total, total) / W.shape[0])

    def grad(self, W):
        return W - ((1.0 - self.rho) / W.shape[0]) * W.sum(axis=0)

    def metric(self, lam, L_data):
        """``M ∝ L_data I + λQ`` (eigenvalue ``L_data + λ`` on the task deviations, ``L_data + λρ``
        on the mean): with small ρ and large λ the mean direction is ``1/ρ`` times flatter than
        the deviations and plain FISTA crawls along it (ρ = 0 hit 1000 iterations per λ on
        School); in this metric both directions get the step their curvature allows."""
        return _MeanMetric(L_data + lam, L_data + lam * self.rho)

    def curvature(self):
        """1, the curvature on the task deviations ``w_t − w̄``, whatever ``ρ``: the λ scale at
        which tasks merge does not depend on ``ρ``, so every ``ρ`` gets the same default λ grid
        (``ρ``'s own eigenvalue would push the path's start up by ``1/ρ``)."""
        return 1.0


class _MeanMetric:
    """``M = (a (I − J) + m J) / max(a, m)``, ``J = 11ᵀ/T``: scale ``a`` on the task deviations and
    ``m`` on the task mean (normalized so that ``M ⪯ I``)."""

    def __init__(self, a: float, m: float):
        top = max(a, m)
        self.a, self.m = a / top, m / top

    def apply(self, D):
        return self.a * D + ((self.m - self.a) / D.shape[0]) * D.sum(axis=0)

    def solve(self, G):
        return G / self.a + ((1.0 / self.m - 1.0 / self.a) / G.shape[0]) * G.sum(axis=0)


def laplacian(edges, n_tasks: int) -> np.ndarray:
    """Graph Laplacian ``D − A``.

    ``edges`` is either a ``T × T`` symmetric weight matrix given as a numpy array, or a list of
    ``(s, t)`` / ``(s, t, weight)`` task pairs (each undirected edge listed once).
    """
    is_matrix = isinstance(edges, np.ndarray) and edges.shape == (n_tasks, n_tasks)
    arr = np.asarray(edges, dtype=np.float64) if len(edges) else np.zeros((0, 2))
    if is_matrix:
        A = arr.copy()
    elif arr.ndim == 2 and arr.shape[1] in (2, 3):
        A = np.zeros((n_tasks, n_tasks))
        for row in arr:
            s, t = int(row[0]), int(row[1])
            if row[0] != s or row[1] != t or not (0 <= s < n_tasks and 0 <= t < n_tasks):
                raise ValueError(f"Edge {tuple(row)} does not join two of the {n_tasks} tasks.")
            if s == t:
                raise ValueError(f"Edge ({s}, {t}) is a self-loop.")
            weight = row[2] if arr.shape[1] == 3 else 1.0
            A[s, t] += weight
            A[t, s] += weight
    else:
        raise ValueError(
            "edges must be a list of (s, t) or (s, t, weight) pairs of task indices, or a "
            f"T × T symmetric weight matrix; got an array of shape {arr.shape}."
        )
    if not np.all(np.isfinite(A)) or np.any(A < 0) or not np.allclose(A, A.T):
        raise ValueError("Edge weights must be finite, non-negative and symmetric.")
    np.fill_diagonal(A, 0.0)
    return np.diag(A.sum(axis=1)) - A


class GraphRegularization(QuadraticCoupling):
    r"""``R(W) = ½ Σ_{(s,t) ∈ E} a_{st} ‖w_s − w_t‖² + (ρ/2) ‖W‖²_F = ½ tr(Wᵀ (L_G + ρ I) W)``.

    ``L_G`` is the Laplacian of the user's task graph (MALSAR ``Least_SRMTL``; Evgeniou, Micchelli
    & Pontil 2005). The mean penalty is the complete graph with weights ``1/T`` (plus its ρ term).
    """

    def __init__(self, edges, n_tasks: int, rho: float):
        super().__init__(laplacian(edges, n_tasks) + rho * np.eye(n_tasks))
