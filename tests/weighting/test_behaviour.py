"""Behaviour of the loss-weighting strategies on toy problems with known answers."""

from __future__ import annotations

import math

import torch

from mtlkit.weighting import make_weighting, mtl_backward


def test_uw_converges_to_closed_form_optimum():
    """For fixed losses, ½e^{−s}L + ½s is minimised at s* = log L."""
    fixed = torch.tensor([0.5, 2.0, 8.0])
    strategy = make_weighting("uw", 3)
    optimizer = torch.optim.SGD(strategy.parameters(), lr=0.5)
    for _ in range(600):
        optimizer.zero_grad()
        mtl_backward(list(fixed.clone().requires_grad_()), strategy)
        optimizer.step()
    torch.testing.assert_close(strategy.log_vars.detach(), fixed.log(), rtol=0, atol=1e-4)
    torch.testing.assert_close(strategy(fixed).detach(), 0.5 / fixed, rtol=1e-3, atol=0)


def test_gradnorm_equalizes_gradient_norms():
    """With α = 0 the target is the mean weighted norm: wₜ‖∇Lₜ‖ become equal."""
    theta = torch.nn.Parameter(torch.zeros(4, 3))
    directions = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(0))
    directions = directions / directions.flatten(1).norm(dim=1)[:, None, None]
    scales = torch.tensor([1.0, 5.0, 20.0])
    strategy = make_weighting("gradnorm", 3, alpha=0.0, lr=0.002, layer="all")
    history = []
    for _ in range(1500):
        losses = scales * (directions * theta).sum(dim=(1, 2)) + 10.0
        theta.grad = None
        mtl_backward(list(losses), strategy, shared_params=[theta])
        history.append(strategy.task_weights.clone())
    # the fixed-size steps oscillate around the balance point: look at the recent average
    weighted = torch.stack(history[-300:]).mean(0) * scales.double()
    assert weighted.max() / weighted.min() < 1.1, weighted
    assert abs(float(strategy.task_weights.sum()) - 3.0) < 1e-9


def test_famo_decreases_every_loss():
    """Two quadratics of very different scale sharing θ: both losses go down under FAMO."""
    theta = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    a, b = torch.tensor([1.0, 1.0]), torch.tensor([-1.0, 0.5])

    def losses_at():
        return torch.stack([((theta - a) ** 2).sum() * 0.01, ((theta - b) ** 2).sum() * 100.0])

    strategy = make_weighting("famo", 2)
    optimizer = torch.optim.SGD([theta], lr=0.05)
    start = losses_at().detach()
    trace = [start]
    for _ in range(300):
        optimizer.zero_grad()
        losses = losses_at()
        mtl_backward(list(losses), strategy, shared_params=[theta])
        optimizer.step()
        trace.append(losses_at().detach())
        strategy.after_step(losses.detach(), trace[-1])
    end = trace[-1]
    assert torch.all(end < 0.9 * start), (start, end)
    assert torch.all(torch.stack(trace[100:]).max(0).values < start)
    assert not torch.allclose(strategy.logits, torch.zeros(2, dtype=torch.float64))


def test_famo_weights_sum_to_one_and_favour_slow_tasks():
    strategy = make_weighting("famo", 2, lr=0.1)
    p = torch.nn.Parameter(torch.ones(2))
    for step in range(20):  # task 0 halves every step, task 1 stays
        losses = [p[0] * 0.5**step, p[1]]
        p.grad = None
        w = mtl_backward(losses, strategy, shared_params=[p])
        assert abs(float(w.sum()) - 1.0) < 1e-6
        after = torch.tensor([0.5 ** (step + 1), 1.0])
        strategy.after_step(torch.stack(losses).detach(), after)
    assert strategy.logits[1] > strategy.logits[0]


def test_dwa_weights_follow_loss_ratios():
    strategy = make_weighting("dwa", 2, temperature=2.0)
    losses = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(strategy(losses), torch.ones(2))
    strategy.on_epoch_end(torch.tensor([1.0, 1.0]))
    strategy.on_epoch_end(torch.tensor([0.5, 1.0]))  # task 0 improved, task 1 did not
    r = torch.tensor([0.5, 1.0]) / 2.0
    expected = 2 * torch.softmax(r, 0)
    torch.testing.assert_close(strategy(losses), expected)


def test_gls_gradient_is_geometric_mean_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    strategy = make_weighting("gls", 3)
    losses = p**2
    w = mtl_backward(list(losses), strategy)
    geo = float((p.detach() ** 2).prod() ** (1 / 3))
    torch.testing.assert_close(p.grad, geo / 3 * 2 / p.detach())
    torch.testing.assert_close(w, geo / (3 * p.detach() ** 2))


def test_rlw_weights_are_seeded_softmax():
    a, b = make_weighting("rlw", 4, seed=5), make_weighting("rlw", 4, seed=5)
    wa = [a(torch.ones(4)) for _ in range(3)]
    wb = [b(torch.ones(4)) for _ in range(3)]
    for x, y in zip(wa, wb, strict=True):
        torch.testing.assert_close(x, y)
        assert math.isclose(float(x.sum()), 1.0, rel_tol=1e-6)
    assert not torch.allclose(wa[0], wa[1])


def test_db_mtl_balances_log_gradient_norms():
    theta = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    strategy = make_weighting("db_mtl", 2, beta=0.0)  # no averaging: plain gradients
    losses = torch.stack([(theta[0] ** 2) * 100, theta[1] ** 2 + 1])
    alpha = mtl_backward(list(losses), strategy, shared_params=[theta])
    g = torch.tensor([2.0 / 1.0, 2.0 / 2.0])  # ∇log L at θ = 1: (2/θ₀, 2θ₁/(θ₁²+1))
    torch.testing.assert_close(
        alpha.double(), torch.tensor([1.0, 2.0], dtype=torch.float64), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(theta.grad, torch.tensor([g[0], 2.0 * g[1]]), rtol=1e-5, atol=0)
