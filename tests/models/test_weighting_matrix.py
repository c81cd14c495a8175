"""Every architecture × every weighting strategy runs a few steps on tiny data."""

from __future__ import annotations

import inspect

import pytest
import torch
from models_testutil import CASES, TASKS, build, data

from mtlkit.weighting import WEIGHTINGS, make_weighting, mtl_backward
from mtlkit.weighting.approx import RepresentationGradients

ARCHS = {arch: options for arch, options in CASES}  # one variant per architecture
ARCHS["mmoe_input_gates"] = {"num_experts": 2, "gate_input": "input"}


def _options(name):
    params = inspect.signature(WEIGHTINGS[name]).parameters
    return {"weights": [1.0] * len(TASKS)} if "weights" in params else {}


def _forward(model, x):
    if hasattr(model, "forward_with_representation"):
        return model.forward_with_representation(x)
    return model(x), None


@torch.no_grad()
def _total_loss(model, x, y) -> float:
    out = model(x)
    return float(sum(t.compute_loss(out[t.name], y[t.name]) for t in TASKS))


def _step(model, strategy, optimizer, x, y, step):
    optimizer.zero_grad()
    out, representation = _forward(model, x)
    mtl_backward(
        [t.compute_loss(out[t.name], y[t.name]) for t in TASKS],
        strategy,
        features=representation,
        shared_params=list(model.shared_parameters()),
        task_params=list(model.task_specific_parameters()),
        last_shared_params=model.last_shared_parameters(),
    )
    optimizer.step()


@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_architecture_trains_with_weighting(arch, weighting):
    torch.manual_seed(0)
    model = build(arch.removesuffix("_input_gates"), ARCHS[arch])
    strategy = make_weighting(weighting, num_tasks=len(TASKS), **_options(weighting))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.parameters()], lr=1e-2)
    x, y = data(n=16)
    needs_representation = isinstance(strategy, RepresentationGradients)
    if needs_representation and list(model.shared_parameters()) and _forward(model, x)[1] is None:
        with pytest.raises(ValueError, match="representation"):
            _step(model, strategy, optimizer, x, y, 0)
        return
    shared = list(model.shared_parameters())
    before = [p.detach().clone() for p in shared]
    loss_before = _total_loss(model, x, y)
    for step in range(5):
        _step(model, strategy, optimizer, x, y, step)
    # the strategy's update reached the shared parameters, and the tasks' summed loss went down
    assert not shared or any(not torch.equal(b, p) for b, p in zip(before, shared, strict=True))
    assert _total_loss(model, x, y) < loss_before


@pytest.mark.parametrize("arch", ["mmoe", "cgc", "dselect_k"])
def test_expert_representation_carries_every_shared_gradient(arch):
    model = build(arch, {"gate_input": "input"})
    x, y = data(n=8)
    out, r = model.forward_with_representation(x)
    shared = list(model.shared_parameters())
    for t in TASKS:
        loss = t.compute_loss(out[t.name], y[t.name])
        direct = torch.autograd.grad(loss, shared, retain_graph=True)
        (grad_r,) = torch.autograd.grad(loss, r, retain_graph=True)
        through_r = torch.autograd.grad(r, shared, grad_outputs=grad_r, retain_graph=True)
        for a, b in zip(direct, through_r, strict=True):
            torch.testing.assert_close(a, b)
    assert build(arch, {"gate_input": "shared"}).forward_with_representation(x)[1] is None
