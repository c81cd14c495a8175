"""Convex relaxation of clustered multi-task learning (Jacob et al. 2008; Zhou et al. 2011)."""

from __future__ import annotations

import numpy as np

from ._base import Penalty


def cluster_weights(sigma: np.ndarray, eta: float, k: int) -> np.ndarray:
    """Minimizer ``m`` of ``Σ_i σ_i² / (η + m_i)`` over ``0 ≤ m_i ≤ 1, Σ_i m_i = k``.

    Stationarity gives ``m_i = clip(γ σ_i − η, 0, 1)`` with γ set by ``Σ_i m_i = k``. That sum is
    piecewise linear and non-decreasing in γ with breakpoints ``η/σ_i`` and ``(1 + η)/σ_i``, so γ
    is found exactly between two consecutive breakpoints. Directions with ``σ_i = 0`` do not
    change the value and take whatever mass is left; below ``1e-12 σ_max`` (the accuracy of the
    eigendecomposition that produced σ) a direction counts as such.
    """
    positive = sigma > 1e-12 * sigma.max(initial=0.0)
    if positive.sum() <= k:
        m = positive.astype(float)
        m[np.flatnonzero(~positive)[: k - int(positive.sum())]] = 1.0
        return m
    s = sigma[positive]
    knots = np.sort(np.concatenate([eta / s, (1.0 + eta) / s]))
    totals = np.clip(knots[:, None] * s[None, :] - eta, 0.0, 1.0).sum(axis=1)
    j = int(np.searchsorted(totals, k))  # totals[j - 1] < k <= totals[j]
    if j == 0 or totals[j] == totals[j - 1]:
        gamma = knots[j]
    else:
        frac = (k - totals[j - 1]) / (totals[j] - totals[j - 1])
        gamma = knots[j - 1] + frac * (knots[j] - knots[j - 1])
    return np.clip(gamma * sigma - eta, 0.0, 1.0)


class ClusteredConvex(Penalty):
    r"""``R(W) = (η(1 + η)/2) min_{M ∈ 𝓜_k} tr(Wᵀ (η I + M)⁻¹ W)``,
    ``𝓜_k = {M ∈ S^T : 0 ⪯ M ⪯ I, tr M = k}``, with ``η = rho`` and ``k = n_clusters``.

    This is MALSAR's ``Least_CMTL`` objective (Zhou, Chen & Ye 2011, "Clustered multi-task learning
    via alternating structure optimization"), itself the convex relaxation of k-means clustering
    of the tasks (Jacob, Bach & Vert 2008), up to the factor ½. The inner minimum over ``M`` has a
    closed form in the eigenbasis of ``W Wᵀ`` (:func:`cluster_weights`), so ``R`` is a smooth
    spectral function of ``W`` with gradient ``η(1 + η)(η I + M*)⁻¹ W`` (Danskin's theorem).
    Bounds: ``(η/2)‖W‖² ≤ R(W) ≤ ((1 + η)/2)‖W‖²``.
    """

    smooth = True

    def __init__(self, n_clusters: int, eta: float):
        self.k = int(n_clusters)
        self.eta = float(eta)

    def _spectral(self, W):
        """σ (padded with zeros to length T), the short-side eigenvectors and the weights m.

        When ``d < T`` the eigendecomposition is of ``WᵀW = V Σ² Vᵀ`` (d × d): since
        ``W v_i = σ_i u_i``, ``(ηI + M)⁻¹ W = W V diag(1/(η + m)) Vᵀ`` needs no ``T × T`` matrix.
        """
        T, d = W.shape
        wide = d < T
        evals, U = np.linalg.eigh(W.T @ W if wide else W @ W.T)
        sigma = np.sqrt(np.maximum(evals, 0.0))
        padded = np.concatenate([sigma, np.zeros(T - sigma.size)]) if wide else sigma
        m = cluster_weights(padded, self.eta, self.k)[: sigma.size]
        return sigma, U, m, wide

    def value(self, W):
        sigma, _, m, _ = self._spectral(W)
        return 0.5 * self.eta * (1.0 + self.eta) * float(np.sum(sigma**2 / (self.eta + m)))

    def grad(self, W):
        _, U, m, wide = self._spectral(W)
        scale = self.eta * (1.0 + self.eta)
        if wide:
            return scale * ((W @ U) / (self.eta + m)) @ U.T
        return scale * ((U / (self.eta + m)) @ (U.T @ W))

    def lipschitz(self):
        return 1.0 + self.eta

    def curvature(self):
        return self.eta
