"""Entry-wise elastic net: covers ``l1`` (Lasso per task), ``l2`` (ridge) and ``elasticnet``."""

from __future__ import annotations

import numpy as np

from ._base import Penalty, soft_threshold


class ElasticNet(Penalty):
    r"""``R(W) = a ‖W‖₁ + (1 − a)/2 ‖W‖²_F`` with ``a = l1_ratio`` (entry-wise, tasks independent).

    With the squared loss and ``λ = alpha`` this is scikit-learn's ``Lasso`` (``a = 1``) and
    ``ElasticNet(alpha, l1_ratio=a)`` fitted task by task; with ``a = 0`` it is ridge,
    ``Ridge(alpha = n_t λ)``.
    """

    def __init__(self, l1_ratio: float):
        self.l1_ratio = float(l1_ratio)

    def value(self, W):
        a = self.l1_ratio
        return a * np.abs(W).sum() + 0.5 * (1.0 - a) * np.vdot(W, W)

    def prox(self, V, step):
        a = self.l1_ratio
        return soft_threshold(V, step * a) / (1.0 + step * (1.0 - a))

    @property
    def sparse_path(self) -> bool:
        return self.l1_ratio > 0.0  # ridge (a = 0) uses the smooth convention

    def lambda_max(self, G0, L_data):
        if self.l1_ratio == 0.0:
            return super().lambda_max(G0, L_data)
        return float(np.abs(G0).max()) / self.l1_ratio

    def conjugate(self, V, lam):
        a = self.l1_ratio
        if a == 1.0:
            dual_norm = float(np.abs(V).max())
            return (min(1.0, lam / dual_norm) if dual_norm > 0 else 1.0), 0.0
        excess = np.maximum(np.abs(V) - lam * a, 0.0)
        return 1.0, float(np.vdot(excess, excess)) / (2.0 * lam * (1.0 - a))
