"""Trace (nuclear) norm: low-rank coefficient matrices."""

from __future__ import annotations

import numpy as np

from ._base import Penalty

# Below this ratio τ / σ_max the eigenvalues of the small Gram matrix are too inexact (they carry
# absolute errors ~1e-16 σ_max²), so the prox falls back to a thin SVD.
_GRAM_SAFE_RATIO = 1e-6


def _small_side_eigh(V: np.ndarray):
    """Singular values and short-side singular vectors of V from the eigh of its small Gram."""
    wide = V.shape[0] <= V.shape[1]
    K = V @ V.T if wide else V.T @ V
    evals, U = np.linalg.eigh(K)
    return np.sqrt(np.maximum(evals, 0.0)), U, wide


def singular_value_threshold(V: np.ndarray, tau: float) -> np.ndarray:
    """``argmin_W ½‖W − V‖²_F + τ‖W‖_*``: shrink every singular value of V by τ.

    Works on the ``min(T, d)``-sized Gram matrix (one product and one small ``eigh``) instead of a
    full SVD of V; falls back to a thin SVD when τ is tiny relative to ``σ_max``.
    """
    sigma, U, wide = _small_side_eigh(V)
    top = sigma.max(initial=0.0)
    if top <= tau:
        return np.zeros_like(V)
    if tau < _GRAM_SAFE_RATIO * top:
        Us, s, Vt = np.linalg.svd(V, full_matrices=False)
        return (Us * np.maximum(s - tau, 0.0)) @ Vt
    keep = sigma > tau
    Uk = U[:, keep]
    factor = (sigma[keep] - tau) / sigma[keep]
    if wide:
        return (Uk * factor) @ (Uk.T @ V)
    return ((V @ Uk) * factor) @ Uk.T


def spectral_norm(V: np.ndarray) -> float:
    return float(_small_side_eigh(V)[0].max(initial=0.0))


class TraceNorm(Penalty):
    r"""``R(W) = ‖W‖_* = Σ_i σ_i(W)``, favouring tasks whose weight vectors span a low-dimensional
    subspace (Ji & Ye 2009; Pong, Tseng, Ji & Ye 2010; MALSAR ``Least_Trace``).

    λ_max is the spectral norm of the data gradient at ``W = 0``.
    """

    def value(self, W):
        return float(np.linalg.svd(W, compute_uv=False).sum())

    def prox(self, V, step):
        return singular_value_threshold(V, step)

    def lambda_max(self, G0, L_data):
        return spectral_norm(G0)

    def conjugate(self, V, lam):
        dual_norm = spectral_norm(V)
        return (min(1.0, lam / dual_norm) if dual_norm > 0 else 1.0), 0.0
