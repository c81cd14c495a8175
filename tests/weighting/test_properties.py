"""Defining properties of the gradient strategies, on random Jacobians (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from weighting_helpers import AGGREGATORS, PERMUTATION_INVARIANT, STRATEGIES

from mtlkit.weighting import aggregate, make_weighting
from mtlkit.weighting.nash_mtl import nash_mtl_weights

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def jacobians(draw, min_tasks=2, max_tasks=6, nonneg=False):
    """T × P float64 matrices of random rank (≥ 1) and scale, possibly conflicting."""
    t = draw(st.integers(min_tasks, max_tasks))
    p = draw(st.integers(1, 9))
    rank = draw(st.integers(1, min(t, p)))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(t, rank, generator=gen, dtype=torch.float64)
    b = torch.randn(rank, p, generator=gen, dtype=torch.float64)
    jac = scale * (a @ b)
    if nonneg:
        jac = jac.abs()
    return jac


def _full_rank(jac):
    eye = torch.eye(jac.shape[0], dtype=jac.dtype) * float(jac.abs().max())
    return torch.cat([jac, eye], dim=1)


def _tol(jac):
    return 1e-7 * float(jac.norm(dim=1).max()) ** 2 + 1e-30


@SETTINGS
@given(jacobians(), st.integers(0, 2**31 - 1))
def test_mgda_is_min_norm_in_hull_and_nonconflicting(jac, seed):
    d = aggregate("mgda", jac)
    tol = _tol(jac)
    # ⟨gₜ, d⟩ ≥ ‖d‖² ≥ 0 for every task (optimality on the simplex)
    assert torch.all(jac @ d >= d @ d - 10 * tol)
    w = torch.distributions.Dirichlet(torch.ones(jac.shape[0], dtype=torch.float64))
    torch.manual_seed(seed)
    others = torch.cat([w.sample((64,)), torch.eye(jac.shape[0], dtype=torch.float64)])
    assert torch.all((others @ jac).pow(2).sum(1) >= d @ d - 10 * tol)


@SETTINGS
@given(jacobians())
@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_dual_cone_results_never_conflict(name, jac):
    d = aggregate(name, jac)
    assert torch.all(jac @ d >= -10 * _tol(jac))


@SETTINGS
@given(jacobians())
def test_upgrad_is_mean_when_nothing_conflicts(jac):
    jac = jac.abs()  # all inner products ≥ 0: every gₜ is already in the dual cone
    torch.testing.assert_close(aggregate("upgrad", jac), jac.mean(0), rtol=1e-6, atol=1e-9)


@SETTINGS
@given(jacobians(nonneg=True), st.integers(0, 100))
def test_pcgrad_is_sum_without_conflicts(jac, seed):
    torch.testing.assert_close(aggregate("pcgrad", jac, seed=seed), jac.sum(0))


@SETTINGS
@given(jacobians(), st.data())
@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
def test_permutation_invariance(name, jac, data):
    perm = torch.tensor(data.draw(st.permutations(range(jac.shape[0]))))
    scale = float(jac.norm(dim=1).max())
    # CAGrad: SLSQP's tolerance; Nash-MTL: with T > rank a positive combination of the rows can
    # vanish, then no bargaining solution exists and the ridge-regularised one is ill-conditioned
    atol = (1e-4 if name in ("cagrad", "nash_mtl") else 1e-6) * scale
    torch.testing.assert_close(aggregate(name, jac[perm]), aggregate(name, jac), rtol=0, atol=atol)


@SETTINGS
@given(jacobians(max_tasks=5))
@pytest.mark.parametrize("name", ["mgda", "imtl_g", "nash_mtl", "aligned_mtl", "dualproj"])
def test_weights_permute_with_tasks(name, jac):
    """Full-rank case (unique weights): w(G[π, π]) = w(G)[π]."""
    jac = _full_rank(jac)
    gram = jac @ jac.T
    perm = torch.randperm(jac.shape[0])
    strategy = make_weighting(name, jac.shape[0], **({"max_norm": 0.0} if "nash" in name else {}))
    w = strategy(gram)
    wp = strategy(gram[perm][:, perm])
    torch.testing.assert_close(wp, w[perm], rtol=1e-5, atol=1e-8 * float(w.abs().max()))


@SETTINGS
@given(jacobians())
@pytest.mark.parametrize("name", ["mean", "sum", "mgda", "upgrad", "dualproj", "imtl_g"])
def test_linear_under_scaling(name, jac):
    torch.testing.assert_close(
        aggregate(name, 3.0 * jac),
        3.0 * aggregate(name, jac),
        rtol=1e-5,
        atol=1e-6 * float(jac.abs().max()),
    )


@SETTINGS
@given(jacobians(max_tasks=5))
def test_nash_solution_satisfies_bargaining_equation(jac):
    jac = _full_rank(jac)
    gram = jac @ jac.T
    w = nash_mtl_weights(gram, max_norm=0.0, ridge=0.0)
    g = gram.double()  # the unnormalised equation G w = 1/w, as the authors' code
    torch.testing.assert_close(w * (g @ w), torch.ones_like(w), rtol=1e-6, atol=1e-6)
    assert torch.all(w > 0)


@SETTINGS
@given(jacobians(max_tasks=5), st.integers(0, 2**31 - 1))
def test_cagrad_maximises_worst_improvement_in_ball(jac, seed):
    c = 0.5
    d = aggregate("cagrad", jac, c=c, rescale=0)  # Algorithm 1, before the authors' 1/(1+c²)
    g0 = jac.mean(0)
    radius = c * g0.norm()
    if g0.norm() < 1e-9 * jac.abs().max() or (d == 0).all():
        return
    assert (d - g0).norm() <= radius * (1 + 1e-4)
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(256, jac.shape[1], generator=gen, dtype=jac.dtype)
    u = (
        u
        / u.norm(dim=1, keepdim=True)
        * radius
        * torch.rand(256, 1, generator=gen, dtype=jac.dtype)
    )
    candidates = g0 + u
    best_random = (candidates @ jac.T).min(dim=1).values.max()
    value = (jac @ d).min()
    assert value >= best_random - 1e-4 * float(jac.norm(dim=1).max()) ** 2


@pytest.mark.parametrize("name", AGGREGATORS)
def test_aggregate_shape_and_dtype(name):
    jac = torch.randn(4, 7)
    out = aggregate(name, jac)
    assert out.shape == (7,) and out.dtype == jac.dtype


@pytest.mark.parametrize("name", ["ew", "uw", "famo", "db_mtl", "gradnorm"])
def test_aggregate_refuses_loss_based_strategies(name):
    with pytest.raises(ValueError, match="not a gradient aggregation"):
        aggregate(name, torch.randn(3, 4))


def test_seeded_random_aggregators_are_reproducible():
    jac = torch.randn(5, 6, dtype=torch.float64)
    for name in ["pcgrad", "gradvac", "graddrop"]:
        torch.testing.assert_close(aggregate(name, jac, seed=3), aggregate(name, jac, seed=3))


def test_mgda_simple_cases():
    jac = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(
        aggregate("mgda", jac), torch.tensor([0.5, 0.5], dtype=torch.float64)
    )
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(aggregate("mgda", opposite), torch.zeros(2, dtype=torch.float64))
    assert np.isfinite(aggregate("upgrad", opposite).numpy()).all()


def test_aggregations_are_exactly_what_aggregate_accepts():
    jac = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    for name, options in STRATEGIES:
        if name in AGGREGATORS:
            assert aggregate(name, jac, **options).shape == (5,)
        else:
            with pytest.raises(ValueError, match="not a gradient aggregation"):
                aggregate(name, jac, **options)
