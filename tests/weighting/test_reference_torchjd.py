"""Reference values: ``mtlkit.weighting.aggregate`` against torchjd's aggregators.

torchjd is a dev dependency and only the oracle here. Conventions that differ are documented
at each test and the relation is checked instead:

- MGDA: torchjd runs Frank–Wolfe (inexact); ours is the exact min-norm point, so ours must be
  at most as long and close to theirs.
- UPGrad/DualProj: torchjd's default QP backend (quadprog) adds a 1e-4 ridge; we pass torchjd
  an independent SciPy-SLSQP dual-cone projector (test-only) instead, so that everything but the
  QP backend is torchjd's and no ridge separates the two.
- PCGrad/GradVac/GradDrop draw random orders/uniforms; we replay torchjd's draws from the
  global generator into our pure functions (the strategies themselves use a seeded generator).
- CAGrad and Nash-MTL in torchjd need cvxpy (the dev extra's ``torchjd[cagrad,nash-mtl]``).
  torchjd's CAGrad has no 1/(1+c²) rescale (ours has the authors' default), so it is compared
  with ``rescale=0``; torchjd's Nash-MTL iterates convex programs, so directions are compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

ta = pytest.importorskip("torchjd.aggregation", reason="torchjd (dev extra) is the oracle")

from mtlkit.weighting import aggregate, make_weighting  # noqa: E402
from mtlkit.weighting.graddrop import graddrop_direction  # noqa: E402
from mtlkit.weighting.gradvac import gradvac_weights  # noqa: E402
from mtlkit.weighting.pcgrad import pcgrad_weights  # noqa: E402


def jacobians():
    """(id, J) pairs: many shapes, rank-deficient, strongly conflicting and scaled ones."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for t, p in [(2, 5), (3, 10), (5, 7), (4, 50), (8, 20), (6, 3)]:
        out.append((f"rand{t}x{p}", torch.randn(t, p, generator=gen, dtype=torch.float64)))
    for t, p, r in [(4, 10, 2), (6, 12, 3), (5, 5, 1)]:
        a = torch.randn(t, r, generator=gen, dtype=torch.float64)
        b = torch.randn(r, p, generator=gen, dtype=torch.float64)
        out.append((f"rank{r}_{t}x{p}", a @ b))
    g = torch.randn(1, 8, generator=gen, dtype=torch.float64)
    noise = 0.1 * torch.randn(3, 8, generator=gen, dtype=torch.float64)
    out.append(("conflict", torch.cat([g, -g, 0.5 * g]) + noise))
    out.append(("scaled_big", 1e3 * torch.randn(3, 6, generator=gen, dtype=torch.float64)))
    out.append(("scaled_small", 1e-3 * torch.randn(4, 6, generator=gen, dtype=torch.float64)))
    return out


CASES = jacobians()
IDS = [name for name, _ in CASES]
MATS = [j for _, j in CASES]


def close(a, b, rtol=1e-6, atol=1e-9, scale=None):
    scale = float(b.abs().max()) if scale is None else scale
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol * max(scale, 1e-12))


@pytest.mark.parametrize("jac", MATS, ids=IDS)
@pytest.mark.parametrize(("ours", "theirs"), [("mean", ta.Mean), ("sum", ta.Sum)])
def test_mean_sum(jac, ours, theirs):
    close(aggregate(ours, jac), theirs()(jac))


@pytest.mark.parametrize("jac", MATS, ids=IDS)
def test_imtlg(jac):
    close(aggregate("imtl_g", jac), ta.IMTLG()(jac), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jac", MATS, ids=IDS)
@pytest.mark.parametrize("scale_mode", ["min", "median", "rmse"])
def test_aligned_mtl(jac, scale_mode):
    expected = ta.AlignedMTL(scale_mode=scale_mode)(jac)
    close(aggregate("aligned_mtl", jac, scale_mode=scale_mode), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jac", MATS, ids=IDS)
def test_mgda(jac):
    ours = aggregate("mgda", jac)
    theirs = ta.MGDA(epsilon=1e-12, max_iters=20000)(jac)
    scale = float(jac.norm(dim=1).max())
    assert ours.norm() <= theirs.norm() + 1e-9 * scale  # exact min norm ≤ Frank–Wolfe's
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-3 * scale)


class ScipyProjector:
    """Test-only dual-cone projector for torchjd: ``argmin_{v ≥ u} vᵀGv`` by SciPy SLSQP."""

    def __call__(self, U, G):
        g = G.detach().double().numpy()
        g = g / max(np.trace(g), 1e-300)
        rows = np.atleast_2d(U.detach().double().numpy())
        out = []
        for u in rows:
            res = minimize(
                lambda v: v @ g @ v,
                u.copy() + 1.0,
                jac=lambda v: 2 * g @ v,
                bounds=[(x, None) for x in u],
                method="SLSQP",
                options={"ftol": 1e-16, "maxiter": 1000},
            )
            out.append(res.x)
        return torch.as_tensor(np.array(out).reshape(U.shape), dtype=G.dtype)


@pytest.mark.parametrize("jac", MATS, ids=IDS)
@pytest.mark.parametrize(("ours", "theirs"), [("upgrad", "UPGrad"), ("dualproj", "DualProj")])
def test_dual_cone_methods(jac, ours, theirs):
    oracle = getattr(ta, theirs)(projector=ScipyProjector())
    scale = float(jac.norm(dim=1).max())
    torch.testing.assert_close(aggregate(ours, jac), oracle(jac), rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("jac", MATS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pcgrad_same_draws(jac, seed):
    t = jac.shape[0]
    torch.manual_seed(seed)
    orders = [torch.randperm(t).tolist() for _ in range(t)]
    ours = pcgrad_weights(jac @ jac.T, orders) @ jac
    torch.manual_seed(seed)
    close(ours, ta.PCGrad()(jac), rtol=1e-6, atol=1e-8)


def test_pcgrad_two_tasks_needs_no_draws():
    jac = torch.tensor([[1.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    close(aggregate("pcgrad", jac, seed=123), ta.PCGrad()(jac))


@pytest.mark.parametrize("seed", [0, 1])
def test_gradvac_same_draws_over_steps(seed):
    gen = torch.Generator().manual_seed(seed)
    theirs = ta.GradVac(beta=0.5)
    targets = torch.zeros(4, 4, dtype=torch.float64)
    for _ in range(4):  # the EMA state evolves identically
        jac = torch.randn(4, 9, generator=gen, dtype=torch.float64)
        torch.manual_seed(seed)
        orders = []
        for i in range(4):
            others = [j for j in range(4) if j != i]
            orders.append([others[k] for k in torch.randperm(3).tolist()])
        weights, targets = gradvac_weights(jac @ jac.T, targets, orders, beta=0.5)
        torch.manual_seed(seed)
        close(weights @ jac, theirs(jac), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("jac", MATS, ids=IDS)
@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_graddrop_same_draws(jac, leak):
    """Same uniforms → the same masks; hence the same distribution of GradDrop's output."""
    torch.manual_seed(7)
    uniform = torch.rand(jac.shape[1], dtype=jac.dtype)
    ours = graddrop_direction(jac, uniform, leak)
    torch.manual_seed(7)
    oracle = ta.GradDrop(leak=torch.full((jac.shape[0],), leak, dtype=jac.dtype))
    close(ours, oracle(jac))


def test_graddrop_distribution_matches_expectation():
    """Seeded strategy: the empirical mean converges to E[d] = P·Σg⁺ + (1−P)·Σg⁻."""
    jac = torch.tensor([[1.0, -2.0, 0.5], [-3.0, 1.0, 0.5]], dtype=torch.float64)
    strategy = make_weighting("graddrop", 2, seed=0)
    mean = torch.stack([strategy(jac) for _ in range(4000)]).mean(0)
    purity = 0.5 * (1 + jac.sum(0) / jac.abs().sum(0))
    expected = purity * jac.clamp(min=0).sum(0) + (1 - purity) * jac.clamp(max=0).sum(0)
    torch.testing.assert_close(mean, expected, rtol=0, atol=0.1)


def _try(factory):
    try:
        return factory()
    except ImportError as err:
        pytest.skip(f"torchjd oracle needs an optional package: {err}")


@pytest.mark.parametrize("jac", MATS[:6], ids=IDS[:6])
def test_cagrad(jac):
    oracle = _try(lambda: ta.CAGrad(c=0.5))
    scale = float(jac.norm(dim=1).max())
    # torchjd follows the paper's d = g₀ + c‖g₀‖ g_w/‖g_w‖ without the authors' 1/(1+c²) rescale
    ours = aggregate("cagrad", jac, c=0.5, rescale=0)
    torch.testing.assert_close(ours, oracle(jac), rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("jac", MATS[:6], ids=IDS[:6])
def test_nash_mtl_direction(jac):
    """torchjd's Nash-MTL iterates convex programs; compare directions only."""
    oracle = _try(lambda: ta.NashMTL(n_tasks=jac.shape[0], max_norm=0.0, optim_niter=200))
    ours = aggregate("nash_mtl", jac, max_norm=0.0)
    theirs = oracle(jac)
    cos = ours @ theirs / (ours.norm() * theirs.norm())
    assert cos > 0.999
