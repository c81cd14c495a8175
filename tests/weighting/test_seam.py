"""``mtl_backward``: what every parameter receives, absent tasks, clipping, every-k, the engine.

Strategy lists come from the registry (``weighting_helpers.STRATEGIES``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from weighting_helpers import NUM_TASKS, STRATEGIES, make_problem

from mtlkit.data import BatchLoader, MultiTaskDataset
from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions
from mtlkit.weighting import (
    WEIGHTINGS,
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
    aggregate,
    make_weighting,
    mtl_backward,
)
from mtlkit.weighting.approx import EveryK, RepresentationGradients
from mtlkit.weighting.backward import engine_for
from mtlkit.weighting.engine import jacobian_loop

IDS = [name for name, _ in STRATEGIES]


def _core(strategy):
    while isinstance(strategy, RepresentationGradients | EveryK):
        strategy = strategy.inner
    return strategy


def _losses(model, tasks, x, y, absent=()):
    rep = model.encode(x)
    out = {n: h(rep) for n, h in model.heads.items()}
    losses = [t.compute_loss(out[t.name], y[t.name]) for t in tasks]
    return [None if i in absent else loss for i, loss in enumerate(losses)], rep


def _grads(model):
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def _own_head_grads(model, tasks, x, y):
    """``∇Lₜ`` of each head's parameters, from a fresh graph."""
    losses, _ = _losses(model, tasks, x, y)
    own = {}
    for t, (name, head) in enumerate(model.heads.items()):
        grads = torch.autograd.grad(losses[t], list(head.parameters()))
        for (pname, _), g in zip(head.named_parameters(), grads, strict=True):
            own[f"heads.{name}.{pname}"] = (t, g)
    return own


def _shared_vector(model, grads):
    return torch.cat(
        [grads[f"encoder.{n}"].reshape(-1) for n, _ in model.encoder.named_parameters()]
    )


@pytest.mark.parametrize(("name", "options"), STRATEGIES, ids=IDS)
def test_heads_get_their_own_weighted_gradient(name, options):
    """Weight strategies: head t gets wₜ∇Lₜ; direction strategies: ∇φ(Lₜ) (DB-MTL's φ = log)."""
    model, tasks, x, y = make_problem("hps", seed=3)
    strategy = make_weighting(name, NUM_TASKS, **options)
    losses, rep = _losses(model, tasks, x, y)
    values = torch.stack(losses).detach()
    weights = mtl_backward(
        losses, strategy, features=rep, last_shared_params=model.last_shared_parameters()
    )
    grads = _grads(model)
    core = _core(strategy)
    for key, (t, own) in _own_head_grads(model, tasks, x, y).items():
        if isinstance(core, JacobianAggregator):
            phi_prime = torch.func.grad(core.transform_losses)(values[t])
            expected = phi_prime * own
        else:
            expected = weights[t] * own
        torch.testing.assert_close(grads[key], expected, rtol=1e-4, atol=1e-7)


def test_parameters_found_from_the_graph_match_explicit_ones():
    model, tasks, x, y = make_problem("hps", seed=4)
    found = {}
    for explicit in (False, True):
        model.zero_grad(set_to_none=True)
        losses, rep = _losses(model, tasks, x, y)
        kwargs = {}
        if explicit:
            kwargs = {
                "shared_params": list(model.shared_parameters()),
                "task_params": list(model.task_specific_parameters()),
            }
        mtl_backward(losses, "upgrad", features=rep if not explicit else None, **kwargs)
        found[explicit] = _grads(model)
    for key, grad in found[True].items():
        torch.testing.assert_close(found[False][key], grad)


def test_forgetting_task_params_leaves_no_head_without_gradient():
    model, tasks, x, y = make_problem("hps", seed=5)
    losses, rep = _losses(model, tasks, x, y)
    mtl_backward(losses, "mgda", features=rep, shared_params=list(model.shared_parameters()))
    assert all(p.grad is not None for p in model.heads.parameters())


def test_a_stateful_strategy_by_name_is_refused():
    model, tasks, x, y = make_problem("hps")
    losses, rep = _losses(model, tasks, x, y)
    with pytest.raises(ValueError, match="make_weighting\\('famo'"):
        mtl_backward(losses, "famo", features=rep)


def test_one_engine_per_model_is_kept():
    model, tasks, x, y = make_problem("hps")
    shared = list(model.shared_parameters())
    engines = set()
    for _ in range(4):
        losses, rep = _losses(model, tasks, x, y)
        mtl_backward(losses, "mgda", shared_params=shared)
        engines.add(id(engine_for(shared)))
    assert len(engines) == 1
    assert engine_for(shared).choice  # measured once, then chosen


# ----------------------------------------------------------------------- defect 3: Nash clipping
def test_nash_mtl_clips_the_shared_update_only():
    """The authors clip the shared parameters' gradient; the heads keep wₜ∇Lₜ unclipped."""
    model, tasks, x, y = make_problem("hps", seed=1)
    max_norm = 1e-3
    strategy = make_weighting("nash_mtl", NUM_TASKS, max_norm=max_norm)
    losses, rep = _losses(model, tasks, x, y)
    jac = jacobian_loop(losses, list(model.shared_parameters()))
    weights = mtl_backward(losses, strategy, features=rep)
    grads = _grads(model)
    assert float(_shared_vector(model, grads).norm()) == pytest.approx(max_norm, rel=1e-4)
    assert float((weights @ jac).norm()) > 10 * max_norm  # the weights are the unclipped ones
    for key, (t, own) in _own_head_grads(model, tasks, x, y).items():
        torch.testing.assert_close(grads[key], weights[t] * own, rtol=1e-4, atol=1e-8)


def test_nash_mtl_every_k_clips_on_reuse_steps_too():
    model, tasks, x, y = make_problem("hps", seed=1)
    max_norm = 1e-3
    strategy = make_weighting("nash_mtl", NUM_TASKS, max_norm=max_norm, every=3)
    for _ in range(3):  # one compute step, two reuse steps
        model.zero_grad(set_to_none=True)
        losses, rep = _losses(model, tasks, x, y)
        mtl_backward(losses, strategy, features=rep)
        norm = float(_shared_vector(model, _grads(model)).norm())
        assert norm == pytest.approx(max_norm, rel=1e-4)


# --------------------------------------------------------- defect 4: every=k, direction strategy
DIRECTIONAL = [
    name
    for name, factory in WEIGHTINGS.items()
    if isinstance(factory, type) and issubclass(factory, JacobianAggregator)
]


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_every_k_reuse_never_puts_least_squares_weights_on_heads(name):
    model, tasks, x, y = make_problem("hps", seed=2)
    strategy = make_weighting(name, NUM_TASKS, every=2)
    strategy.cached.fill_(-1e6)  # whatever the reused weights, heads must not see them
    strategy.steps.fill_(1)  # the next step is a reuse step
    losses, rep = _losses(model, tasks, x, y)
    values = torch.stack(losses).detach()
    mtl_backward(losses, strategy, features=rep)
    grads = _grads(model)
    core = _core(strategy)
    for key, (t, own) in _own_head_grads(model, tasks, x, y).items():
        phi_prime = torch.func.grad(core.transform_losses)(values[t])
        torch.testing.assert_close(grads[key], phi_prime * own, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- defect 6: absent tasks
@pytest.mark.parametrize("name", ["mgda", "cagrad", "upgrad", "nash_mtl", "imtl_g"])
def test_absent_task_is_left_out_of_the_strategy(name):
    """The shared update is the strategy's on the present tasks (not stalled by a zero row)."""
    model, tasks, x, y = make_problem("hps", seed=6)
    losses, rep = _losses(model, tasks, x, y, absent=(1,))
    present = [losses[0], losses[2]]
    jac = jacobian_loop(present, list(model.shared_parameters())).detach()
    weights = mtl_backward(losses, make_weighting(name, NUM_TASKS), features=rep)
    assert float(weights[1]) == 0.0
    expected = aggregate(name, jac)
    got = _shared_vector(model, _grads(model))
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-6)
    assert all(p.grad is None for p in model.heads["t1"].parameters())


@pytest.mark.parametrize(("name", "options"), STRATEGIES, ids=IDS)
def test_absent_task_state_is_kept(name, options):
    """Per-task state (buffers and parameters) of an absent task does not change."""
    model, tasks, x, y = make_problem("hps", seed=7)
    strategy = make_weighting(name, NUM_TASKS, **options)
    for absent in ((), (1,), (1,)):
        before = {
            k: v.detach().clone()
            for k, v in strategy.state_dict().items()
            if k.split(".")[-1] != "_extra_state"
        }
        model.zero_grad(set_to_none=True)
        strategy.zero_grad(set_to_none=True)
        losses, rep = _losses(model, tasks, x, y, absent=absent)
        mtl_backward(
            losses, strategy, features=rep, last_shared_params=model.last_shared_parameters()
        )
        nan = torch.tensor(float("nan"))
        values = torch.stack([nan if loss is None else loss.detach() for loss in losses])
        strategy.after_step(values, values * 0.9)
        for module_name, module in strategy.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for state, dims in module.per_task_state.items():
                old, new = before[prefix + state], strategy.state_dict()[prefix + state]
                if not absent or old.shape != new.shape:
                    continue
                index = [slice(None)] * new.dim()
                index[dims[0]] = 1
                torch.testing.assert_close(new[tuple(index)], old[tuple(index)])
        for p in strategy.parameters():  # UW: no gradient reaches an absent task's entry
            if absent and p.grad is not None:
                assert float(p.grad[1]) == 0.0


@pytest.mark.parametrize("name", ["mgda", "famo", "gls", "cagrad"])
def test_trainer_leaves_out_a_task_without_labels(name):
    """A batch where task b has no labelled row: b's weight is 0 and a trains normally."""
    tasks = [Task("a", "regression"), Task("b", "regression")]
    torch.manual_seed(0)
    model = make_model("hps", lambda: MLP(3, hidden=(8,)), tasks)
    trainer = Trainer(
        model,
        tasks,
        make_weighting(name, 2),
        torch.optim.Adam(model.parameters(), lr=0.05),
        options=TrainingOptions(progress=False),
    )
    x = torch.randn(32, 3)
    data = MultiTaskDataset(x, {"a": x[:, :1] * 3, "b": torch.full((32, 1), float("nan"))})
    first = None
    for _ in range(15):
        for inputs, targets in BatchLoader(data, 32, seed=0):
            losses = trainer.train_step(inputs, targets)
            first = float(losses[0]) if first is None else first
    assert float(losses[0]) < 0.5 * first


# ------------------------------------------------------------- defect 8: the last shared layer
@pytest.mark.parametrize("arch", ["mmoe", "cgc", "ple", "dselect_k"])
def test_last_shared_layer_of_expert_models_is_every_expert_last_layer(arch):
    tasks = [Task(f"t{i}", "regression") for i in range(3)]
    model = make_model(arch, lambda: MLP(6, hidden=(8, 4)), tasks)
    last = {id(p) for p in model.last_shared_parameters()}
    experts = model.shared_experts[-1]
    assert len(experts) >= 2
    for expert in experts:
        final = [m for m in expert.modules() if isinstance(m, nn.Linear)][-1]
        assert {id(final.weight), id(final.bias)} <= last
    gate_ids = {id(p) for gates in model.task_gates for g in gates.values() for p in g.parameters()}
    assert not last & gate_ids
    assert len(last) == 2 * len(experts)


def test_last_shared_layer_of_hps_is_the_encoder_output_layer():
    tasks = [Task(f"t{i}", "regression") for i in range(2)]
    model = make_model("hps", lambda: MLP(6, hidden=(8, 4)), tasks)
    final = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)][-1]
    assert [id(p) for p in model.last_shared_parameters()] == [id(final.weight), id(final.bias)]


def test_gradnorm_measures_norms_on_the_named_layer():
    model, tasks, x, y = make_problem("hps", seed=8)
    layer = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][0]
    params = model.last_shared_parameters(layer)
    strategy = make_weighting("gradnorm", NUM_TASKS, alpha=1.0, lr=0.1, layer=layer)
    losses, rep = _losses(model, tasks, x, y)
    norms = jacobian_loop(losses, params).double().norm(dim=1)
    mtl_backward(losses, strategy, features=rep, last_shared_params=params)
    reference = make_weighting("gradnorm", NUM_TASKS, alpha=1.0, lr=0.1)
    reference(torch.stack(losses).detach(), norms)
    torch.testing.assert_close(strategy.task_weights, reference.task_weights)
    with pytest.raises(ValueError, match="no module 'encoder.nope'"):
        model.last_shared_parameters("encoder.nope")


def test_strategy_kinds_cover_the_registry():
    kinds = (LossWeighting, GramianWeighting, JacobianAggregator)
    for name, options in STRATEGIES:
        assert isinstance(_core(make_weighting(name, NUM_TASKS, **options)), kinds), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["upgrad", "famo", "graddrop"])
def test_cuda_matches_cpu(name):
    """On the device of the losses (strategy moved with the model), the same gradients."""
    grads = {}
    for device in ("cpu", "cuda"):
        model, tasks, x, y = make_problem("hps", seed=9)
        model.to(device)
        strategy = make_weighting(name, NUM_TASKS, **dict(STRATEGIES)[name]).to(device)
        losses, rep = _losses(model, tasks, x.to(device), {k: v.to(device) for k, v in y.items()})
        mtl_backward(losses, strategy, features=rep)
        grads[device] = {k: v.cpu() for k, v in _grads(model).items()}
    for key, grad in grads["cpu"].items():
        torch.testing.assert_close(grads["cuda"][key], grad, rtol=1e-4, atol=1e-6)
