"""The engine's exact Jacobian: loop, batched and auto agree with a brute-force reference."""

from __future__ import annotations

import pytest
import torch
from weighting_helpers import make_problem

from mtlkit.weighting import GradientEngine
from mtlkit.weighting.engine import jacobian_batched, jacobian_loop


def _losses(seed=0):
    model, tasks, x, y = make_problem("hps", seed)
    out = model(x)
    losses = torch.stack([t.compute_loss(out[t.name], y[t.name]) for t in tasks])
    return model, losses


def _reference(model, losses):
    rows = []
    for t in range(len(losses)):
        model.zero_grad()
        losses[t].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.encoder.parameters()]))
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["loop", "batched", "auto"])
def test_jacobian_matches_reference(method):
    model, losses = _losses()
    engine = GradientEngine(method=method)
    params = list(model.shared_parameters())
    for _ in range(engine.probes + 1):  # auto: the probes, then the chosen method
        jac = engine.jacobian(losses, params)
        torch.testing.assert_close(jac, _reference(model, losses), rtol=1e-5, atol=1e-6)
    if method == "auto":
        assert set(engine.choice.values()) <= {"loop", "batched"} and engine.choice


def test_loop_and_batched_agree_on_representation():
    model, tasks, x, y = make_problem("hps", 1)
    rep = model.encode(x)
    losses = torch.stack([t.compute_loss(model.heads[t.name](rep), y[t.name]) for t in tasks])
    torch.testing.assert_close(jacobian_loop(losses, [rep]), jacobian_batched(losses, [rep]))


def test_unused_task_gives_zero_row():
    p = torch.nn.Parameter(torch.randn(3))
    losses = torch.stack([(p**2).sum(), torch.tensor(1.0)])
    jac = GradientEngine(method="loop").jacobian(losses, [p])
    torch.testing.assert_close(jac[1], torch.zeros(3))
    torch.testing.assert_close(jac[0], 2 * p.detach())


def test_reduce_hook_is_applied():
    model, losses = _losses()
    engine = GradientEngine(reduce=lambda j: 2 * j, method="loop")
    params = list(model.shared_parameters())
    torch.testing.assert_close(engine.jacobian(losses, params), 2 * _reference(model, losses))


def test_bad_method():
    with pytest.raises(ValueError, match="method"):
        GradientEngine(method="magic")


@pytest.mark.parametrize("method", ["loop", "layerwise", "auto"])
def test_stacked_losses_start_each_pass_at_the_task_loss(method):
    """With ``engine.stack``, task t's reverse pass never runs through another task's head."""
    model, tasks, x, y = make_problem("hps", 2)
    shared = list(model.shared_parameters())
    engine = GradientEngine(method=method)
    engine.watch(model, shared)
    for step in range(engine.probes + 1):
        engine.new_step()
        rep = model.encode(x)
        visits = [0] * len(tasks)
        parts = []
        for i, task in enumerate(tasks):
            out = model.heads[task.name](rep)
            out.register_hook(lambda g, i=i, v=visits: v.__setitem__(i, v[i] + 1))
            parts.append(task.compute_loss(out, y[task.name]))
        losses = engine.stack(parts)
        chosen = engine.choice.get(engine._key(losses, shared), method)  # before this call
        jac = engine.jacobian(losses, shared)
        if chosen in ("loop", "layerwise"):
            # a forced layerwise is checked against the loop once, at its first call
            checked = method == "layerwise" and step == 0
            assert visits == [2 if checked else 1] * len(tasks)
        torch.testing.assert_close(jac, jacobian_loop(list(losses), shared))
    engine.new_step()
    assert engine._parts(losses) is losses  # forgotten at the next step


@pytest.mark.parametrize(
    ("method", "walks_per_step"), [("loop", 0), ("batched", 0), ("layerwise", 1)]
)
def test_a_chosen_method_without_layer_calls_stops_walking_the_graph(
    monkeypatch, method, walks_per_step
):
    """Without a watched model the problem key needs a walk of the graph for its layers; once the
    choice is a method that needs none, later steps skip it (and stay exact)."""
    import mtlkit.weighting.engine as engine_module

    walks = []
    real = engine_module.graph_layer_calls
    monkeypatch.setattr(engine_module, "graph_layer_calls", lambda *a: walks.append(1) or real(*a))
    torch.manual_seed(0)
    trunk, heads = torch.nn.Linear(5, 8), [torch.nn.Linear(8, 1) for _ in range(3)]
    params = list(trunk.parameters())
    engine = GradientEngine(probes=2)

    def step():
        engine.new_step()
        z = trunk(torch.randn(16, 5))
        parts = [(h(z) ** 2).mean() for h in heads]
        jacobian = engine.jacobian(engine.stack(parts), params)
        torch.testing.assert_close(jacobian, jacobian_loop(parts, params), rtol=1e-4, atol=1e-6)

    for _ in range(2):  # the measuring probes
        step()
    (key,) = engine.choice
    engine.choice[key] = method
    step()  # reads the choice (after a walk)
    walks.clear()
    for _ in range(3):
        step()
    assert len(walks) == 3 * walks_per_step
