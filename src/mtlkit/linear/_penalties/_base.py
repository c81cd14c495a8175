"""The interface every penalty implements, and helpers shared by several penalties."""

from __future__ import annotations

import numpy as np

#: For penalties with no finite λ at which the solution stops moving (smooth penalties and
#: ridge), the path starts at ``SMOOTH_LAMBDA_FACTOR · L_data / μ_R``: λ·μ_R then exceeds the
#: curvature of the data term a hundredfold and the solution is within ~1% of its λ → ∞ limit.
SMOOTH_LAMBDA_FACTOR = 1e2


class Penalty:
    """A convex regularizer ``R(W)`` on the ``T × d`` coefficient matrix (one row per task).

    The solver minimizes ``F(W, b) + λ R(W)``. A penalty is either *proximable* (``smooth`` is
    False: the solver calls :meth:`prox`) or *smooth* (``smooth`` is True: :meth:`grad` joins the
    data gradient and :meth:`lipschitz` bounds its Lipschitz constant).
    """

    smooth: bool = False

    def value(self, W: np.ndarray) -> float:
        raise NotImplementedError

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """``argmin_W ½‖W − V‖²_F + step · R(W)`` (identity for smooth penalties)."""
        return V

    def grad(self, W: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def lipschitz(self) -> float:
        return 0.0

    def lambda_max(self, G0: np.ndarray, L_data: float) -> float:
        """Smallest λ for which ``W = 0`` is optimal, given the data gradient ``G0`` at ``W = 0``.

        Smooth penalties have no such λ; they return the conventional start of their path.
        """
        return SMOOTH_LAMBDA_FACTOR * L_data / self.curvature()

    @property
    def sparse_path(self) -> bool:
        """Whether :meth:`lambda_max` is a true threshold (``W = 0`` optimal from it on), as for
        sparsity-inducing norms, rather than the smooth convention: sets the path's depth."""
        return not self.smooth and type(self).lambda_max is not Penalty.lambda_max

    def curvature(self) -> float:
        """Smallest positive curvature of ``R`` (used by the smooth λ_max convention)."""
        return 1.0

    def metric(self, lam: float, L_data: float):
        """A preconditioner for FISTA at this λ (an object with ``solve(G) = M⁻¹G`` and
        ``apply(D) = MD``, ``M`` symmetric positive definite acting on the task axis), or None."""
        return None

    def conjugate(self, V: np.ndarray, lam: float) -> tuple[float, float] | None:
        """Dual scaling ``s`` and ``(λR)*(s V)`` for the duality gap, or None if unavailable.

        ``s ∈ (0, 1]`` makes ``s V`` dual-feasible for norm penalties (``(λR)*`` is then 0).
        """
        return None


def soft_threshold(V: np.ndarray, tau: float) -> np.ndarray:
    return np.sign(V) * np.maximum(np.abs(V) - tau, 0.0)


def column_norms(V: np.ndarray) -> np.ndarray:
    """Euclidean norm of each column (one feature across all tasks)."""
    return np.sqrt(np.einsum("tj,tj->j", V, V))
