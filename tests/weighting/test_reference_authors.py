"""Every strategy against a reference re-derived from its authors' published code.

Each reference below is written here, from the formulas of the code named in its docstring
(read, not imported: none of it is a dependency), and checked over several steps on the same
hard Jacobians: exactly linearly dependent rows (task 3 = task 1 + task 2) in float32 and
float64, a Gramian with eigenvalue ratio ≥ 1e4, gradient norms that differ by 1e4, and
near-duplicate and opposed tasks. Where the authors' solver is iterative or inexact (MGDA's
Frank–Wolfe, Nash-MTL's sequence of convex programs, CAGrad's default-tolerance SLSQP) the
reference solves the same problem exactly by another route (KKT enumeration, a root finder).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlkit.weighting import make_weighting

T, P = 3, 40


def _rows(kind: str, gen: torch.Generator) -> torch.Tensor:
    """A float64 T × P Jacobian of the named kind."""
    a = torch.randn(T, P, generator=gen, dtype=torch.float64)
    if kind == "dependent":  # task 3 = task 1 + task 2, exactly
        a[2] = a[0] + a[1]
    elif kind == "ill":  # eigenvalues of G in ratio (1 / 0.005)² = 4e4
        q, _ = torch.linalg.qr(a.T)
        u, _ = torch.linalg.qr(torch.randn(T, T, generator=gen, dtype=torch.float64))
        a = (u * torch.tensor([1.0, 0.1, 0.005], dtype=torch.float64)) @ q.T
    elif kind == "scales":  # ‖g₁‖ / ‖g₂‖ ≈ 1e4
        a = a * torch.tensor([[1e2], [1e-2], [1.0]], dtype=torch.float64)
    elif kind == "near_duplicate":
        a[1] = a[0] + 1e-2 * a[1]  # G's eigenvalues in ratio ~1e-4
    elif kind == "opposed":
        a[1] = -a[0] + 0.05 * a[1]
    return a


KINDS = ["dependent", "ill", "scales", "near_duplicate", "opposed"]
DTYPES = [torch.float32, torch.float64]


def steps(kind: str, dtype: torch.dtype, n: int = 4, seed: int = 0) -> list[torch.Tensor]:
    """``n`` Jacobians of one kind in ``dtype`` (a short training run's worth of steps).

    Dependent rows stay exactly dependent after the cast: the sum is formed in ``dtype``.
    """
    gen = torch.Generator().manual_seed(seed + 100 * KINDS.index(kind))
    out = []
    for _ in range(n):
        j = _rows(kind, gen).to(dtype)
        if kind == "dependent":
            j[2] = j[0] + j[1]
        out.append(j)
    return out


CASES = [(k, d) for k in KINDS for d in DTYPES]
CASE_IDS = [f"{k}-{str(d).removeprefix('torch.')}" for k, d in CASES]


def gramian_of(j: torch.Tensor) -> torch.Tensor:
    return j @ j.T


def weights_of(strategy, gramian: torch.Tensor) -> torch.Tensor:
    """A Gramian strategy's maths entry point: ``G ↦ w``."""
    return strategy.weights_from_gramian(gramian)


def assert_direction(got: torch.Tensor, expected: np.ndarray, j: torch.Tensor, rtol: float):
    """``Jᵀw`` (the update) against the reference's, relative to the larger of the two norms
    and the largest task gradient (the scale a float32 Jacobian is exact to)."""
    got = got.double().numpy()
    scale = max(np.linalg.norm(expected), float(j.double().norm(dim=1).max()) * 1e-3)
    assert np.linalg.norm(got - expected) <= rtol * scale, (got, expected)


def rtol_for(dtype: torch.dtype, kind: str = "") -> float:
    """Float32 results are exact to about eps32 times the condition number of the problem."""
    if dtype == torch.float64:
        return 1e-6
    return 3e-2 if kind in ("ill", "near_duplicate") else 2e-3


def exact(j: torch.Tensor, kind: str) -> np.ndarray:
    """The float64 Jacobian ``j`` stands for: for ``dependent``, row 3 = row 1 + row 2 exactly."""
    out = j.double().numpy().copy()
    if kind == "dependent":
        out[2] = out[0] + out[1]
    return out


# ---------------------------------------------------------------------------------------------
# IMTL-G — LibMTL/weighting/IMTL.py (gradient part; the IMTL authors published no code):
#   D = g₁ − g_{2..T},  U = u₁ − u_{2..T} (uₜ = gₜ/‖gₜ‖),  α_{2..T} = g₁Uᵀ (DUᵀ)⁻¹,
#   α₁ = 1 − Σ α_{2..T}.  With dependent rows DUᵀ is singular and equal projections force
#   d = 0; the generalisation (torchjd; Quinton & Rey 2024) takes the least-norm least-squares
#   solution of G v = √diag(G), w = v / Σv, computed here by an SVD least-squares solve.
# ---------------------------------------------------------------------------------------------


def imtl_reference(j: np.ndarray) -> np.ndarray:
    if np.linalg.matrix_rank(j) < j.shape[0]:
        g = j @ j.T
        v = np.linalg.lstsq(g, np.sqrt(np.diag(g)), rcond=1e-10)[0]
        return (v / v.sum()) @ j
    units = j / np.linalg.norm(j, axis=1, keepdims=True)
    d = j[:1] - j[1:]
    u = units[:1] - units[1:]
    rest = j[0] @ u.T @ np.linalg.inv(d @ u.T)
    alpha = np.concatenate([[1.0 - rest.sum()], rest])
    return alpha @ j


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_imtl_g(kind, dtype):
    strategy = make_weighting("imtl_g", T)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j))
        assert w.dtype == dtype
        expected = imtl_reference(exact(j, kind))
        assert_direction(w.double() @ j.double(), expected, j, rtol_for(dtype, kind))


def test_imtl_g_float32_dependent_rows_agree_with_float64():
    """Defect 1: float32 rounding eigenvalues of an exactly rank-2 G counted as real."""
    ta = pytest.importorskip("torchjd.aggregation")
    strategy = make_weighting("imtl_g", T)
    for j in steps("dependent", torch.float32):
        w32 = weights_of(strategy, gramian_of(j))
        w64 = weights_of(strategy, gramian_of(j.double()))
        torch.testing.assert_close(w32.double(), w64, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(w32 @ j, ta.IMTLG()(j), rtol=1e-4, atol=1e-4)
        assert bool((w32 > 0).all())


# ---------------------------------------------------------------------------------------------
# Aligned-MTL — SamsungLabs/MTL code/optim/aligned/solver.py (ProcrustesSolver.apply):
#   G = V Λ Vᵀ; rank r = #{λ > λ_max · T · eps}; B = √σ V_r Λ_r^{-1/2} V_rᵀ (σ = λ_r for
#   "min", median / mean of Λ_r for "median" / "rmse"); the update is Σₜ (JᵀB)ₜ = Jᵀ(B 1).
#   mtlkit uses the preference vector 1/T (torchjd's), so its weights are B1 / T.
# ---------------------------------------------------------------------------------------------


def aligned_mtl_reference(j: np.ndarray, scale_mode: str) -> np.ndarray:
    g = j @ j.T
    lam, vec = np.linalg.eigh(g)
    rank = int((lam > lam.max() * len(g) * np.finfo(np.float64).eps).sum())
    order = np.argsort(lam)[::-1][:rank]
    lam, vec = lam[order], vec[:, order]
    median = np.sort(lam)[(rank - 1) // 2]  # torch.median: the lower middle value
    sigma = {"min": lam[-1], "median": median, "rmse": lam.mean()}[scale_mode]
    balance = np.sqrt(sigma) * (vec / np.sqrt(lam)) @ vec.T
    return balance.sum(axis=1) @ j / len(g)


@pytest.mark.parametrize("scale_mode", ["min", "median", "rmse"])
@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_aligned_mtl(kind, dtype, scale_mode):
    strategy = make_weighting("aligned_mtl", T, scale_mode=scale_mode)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j))
        assert w.dtype == dtype
        expected = aligned_mtl_reference(exact(j, kind), scale_mode)
        assert_direction(w.double() @ j.double(), expected, j, rtol_for(dtype, kind))
