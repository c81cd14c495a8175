"""Joint feature selection: the ℓ2,1 norm over features, optionally mixed with ridge."""

from __future__ import annotations

import numpy as np

from ._base import Penalty, column_norms


class GroupElasticNet(Penalty):
    r"""``R(W) = a Σ_j ‖W_{:, j}‖₂ + (1 − a)/2 ‖W‖²_F`` with ``a = l1_ratio``.

    Column ``W_{:, j}`` holds feature ``j`` in every task, so a feature is used by all tasks or by
    none (Argyriou, Evgeniou & Pontil 2008; Obozinski, Taskar & Jordan 2010). With one shared
    design, the squared loss and ``λ = alpha`` this is scikit-learn's ``MultiTaskLasso(alpha)``
    (``a = 1``) and ``MultiTaskElasticNet(alpha, l1_ratio=a)``.
    """

    def __init__(self, l1_ratio: float):
        self.l1_ratio = float(l1_ratio)

    def value(self, W):
        a = self.l1_ratio
        return a * column_norms(W).sum() + 0.5 * (1.0 - a) * np.vdot(W, W)

    def prox(self, V, step):
        a = self.l1_ratio
        norms = column_norms(V)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(norms > 0, np.maximum(1.0 - step * a / norms, 0.0), 0.0)
        return V * (shrink / (1.0 + step * (1.0 - a)))[None, :]

    def lambda_max(self, G0, L_data):
        if self.l1_ratio == 0.0:
            return super().lambda_max(G0, L_data)
        return float(column_norms(G0).max()) / self.l1_ratio

    def conjugate(self, V, lam):
        a = self.l1_ratio
        norms = column_norms(V)
        if a == 1.0:
            dual_norm = float(norms.max())
            return (min(1.0, lam / dual_norm) if dual_norm > 0 else 1.0), 0.0
        excess = np.maximum(norms - lam * a, 0.0)
        return 1.0, float(np.vdot(excess, excess)) / (2.0 * lam * (1.0 - a))
