"""Every strategy trains a tiny model through the trainer's call contract; state restores."""

from __future__ import annotations

import copy

import pytest
import torch
from weighting_helpers import NUM_TASKS, STRATEGIES, forward, make_problem, model_backward, train

from mtlkit.weighting import GradientEngine, make_weighting

IDS = [name for name, _ in STRATEGIES]


@pytest.mark.parametrize("arch", ["hps", "stl"])
@pytest.mark.parametrize(("name", "options"), STRATEGIES, ids=IDS)
def test_loss_falls(name, options, arch):
    strategy = make_weighting(name, NUM_TASKS, **options)
    history = train(strategy, arch, steps=30)
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < 0.9 * history[0], history


@pytest.mark.parametrize("mode", [{"mode": "representation"}, {"every": 3}])
@pytest.mark.parametrize(
    "name", ["mgda", "pcgrad", "graddrop", "upgrad", "nash_mtl", "cagrad", "gradnorm", "db_mtl"]
)
def test_approximate_modes_train(name, mode):
    options = dict(STRATEGIES)[name]
    if "every" in mode and name == "gradnorm":
        with pytest.raises(ValueError, match="every"):
            make_weighting(name, NUM_TASKS, **options, **mode)
        return
    strategy = make_weighting(name, NUM_TASKS, **options, **mode)
    # reused Nash-MTL weights need the per-step clipping its authors (and our trainer) apply
    history = train(strategy, "hps", steps=30, clip=1.0)
    assert history[-1] < 0.9 * history[0], history


@pytest.mark.parametrize("name", ["ew", "uw", "famo"])
def test_approximate_modes_refuse_loss_weightings(name):
    with pytest.raises(ValueError, match="gradient"):
        make_weighting(name, NUM_TASKS, mode="representation")


def test_representation_mode_needs_representation():
    strategy = make_weighting("mgda", NUM_TASKS, mode="representation")
    with pytest.raises(ValueError, match="representation"):
        train(strategy, "hps", steps=1, representation=False)


def _one_step_grads(strategy, arch="hps", seed=3, engine=None):
    model, tasks, x, y = make_problem(arch, seed)
    rep, out = forward(model, x, arch)
    losses = torch.stack([t.compute_loss(out[t.name], y[t.name]) for t in tasks])
    weights = model_backward(model, losses, strategy, rep, engine or GradientEngine())
    out = model(x)  # a fresh graph for the checks (parameters are unchanged)
    fresh = torch.stack([t.compute_loss(out[t.name], y[t.name]) for t in tasks])
    return weights, {n: p.grad.clone() for n, p in model.named_parameters()}, (model, fresh)


@pytest.mark.parametrize(("name", "options"), STRATEGIES, ids=IDS)
def test_checkpoint_restores_future_behaviour(name, options):
    strategy = make_weighting(name, NUM_TASKS, **options)
    train(strategy, "hps", steps=12)  # build up state (incl. one on_epoch_end)
    restored = make_weighting(name, NUM_TASKS, **options)
    restored.load_state_dict(copy.deepcopy(strategy.state_dict()))
    for seed in (5, 6):
        w1, g1, _ = _one_step_grads(strategy, seed=seed)
        w2, g2, _ = _one_step_grads(restored, seed=seed)
        torch.testing.assert_close(w1, w2, rtol=1e-6, atol=1e-8, equal_nan=True)
        for key in g1:
            torch.testing.assert_close(g1[key], g2[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["mgda", "upgrad", "pcgrad", "graddrop", "imtl_g"])
def test_task_params_get_only_their_own_task_gradient(name):
    strategy = make_weighting(name, NUM_TASKS, **dict(STRATEGIES)[name])
    weights, grads, (model, losses) = _one_step_grads(strategy)
    for t, (task_name, head) in enumerate(model.heads.items()):
        own = torch.autograd.grad(losses[t], list(head.parameters()), retain_graph=True)
        scale = 1.0 if name == "graddrop" else float(weights[t])  # Gramian: wₜ∇Lₜ
        for (pname, _), g in zip(head.named_parameters(), own, strict=True):
            torch.testing.assert_close(grads[f"heads.{task_name}.{pname}"], scale * g)


@pytest.mark.parametrize("name", ["mgda", "upgrad", "nash_mtl", "dualproj"])
def test_shared_update_is_jacobian_times_weights(name):
    """Training and ``aggregate`` share code: the shared grads equal Jᵀw from ``aggregate``."""
    from mtlkit.weighting.functional import apply_to_jacobian

    strategy = make_weighting(name, NUM_TASKS)
    _, grads, (model, losses) = _one_step_grads(strategy)
    shared = list(model.shared_parameters())
    jac = GradientEngine(method="loop").jacobian(losses, shared)
    expected = apply_to_jacobian(make_weighting(name, NUM_TASKS), jac)
    got = torch.cat(
        [grads[f"encoder.{n}"].reshape(-1) for n, _ in model.encoder.named_parameters()]
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_every_k_reuses_weights():
    strategy = make_weighting("mgda", NUM_TASKS, every=4)
    seen = []
    for seed in range(8):
        w, _, _ = _one_step_grads(strategy, seed=seed)
        seen.append(w)
    for k in range(8):
        torch.testing.assert_close(seen[k], seen[4 * (k // 4)])
    assert not torch.allclose(seen[0], seen[4])
