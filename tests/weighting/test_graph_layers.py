"""Layer calls found in the autograd graph (no model, no hooks): the ``layerwise`` Jacobian of a
custom loop's ``mtl_backward``."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlkit.models import make_model
from mtlkit.models.encoders import MLP, LeNet
from mtlkit.tasks import Task
from mtlkit.weighting import GradientEngine, mtl_backward
from mtlkit.weighting.backward import engine_for, graph_leaves
from mtlkit.weighting.engine import jacobian_loop
from mtlkit.weighting.layerwise import LayerRecorder, graph_layer_calls, jacobian_layerwise

ENCODERS = {
    "mlp": (lambda: MLP(6, hidden=(16, 8)), (8, 6)),
    "lenet": (LeNet, (4, 1, 28, 28)),
}
SHARED_ARCHS = ["hps", "mmoe", "omoe", "cgc", "ple", "dselect_k", "cross_stitch", "mtan"]


def _losses(model, tasks, x):
    out = model(x)
    return [(out[t.name] ** 2).mean() * (i + 1) for i, t in enumerate(tasks)]


def _assert_layerwise_exact(losses, params, calls):
    expected = jacobian_loop(losses, params)
    for min_patch_length in (0, 64):
        got = jacobian_layerwise(losses, params, calls, min_patch_length=min_patch_length)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("arch", SHARED_ARCHS)
def test_graph_finds_the_layers_the_hooks_record(arch, encoder):
    """On the trainer's models the graph yields the same layer calls as the trainer's forward
    hooks (per weight, as many calls), and the layerwise Jacobian from them is the loop's."""
    torch.manual_seed(0)
    factory, shape = ENCODERS[encoder]
    tasks = [Task(f"t{i}", "regression") for i in range(3)]
    model = make_model(arch, factory, tasks)
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    recorder = LayerRecorder(model, shared)
    losses = _losses(model, tasks, torch.randn(*shape))
    found = graph_layer_calls(losses, shared)
    hooked = recorder.usable_calls()
    assert hooked
    assert Counter(id(c.weight) for c in found) == Counter(id(c.weight) for c in hooked)
    assert Counter(id(c.bias) for c in found) == Counter(id(c.bias) for c in hooked)
    _assert_layerwise_exact(losses, shared, found)


def _two_layers():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def _task_losses(z):
    return [z.sum(), (z**2).sum(), (z[:, :1] ** 3).mean()]


def test_weight_used_outside_a_layer_is_left_to_autograd():
    """A shared weight read by any other operation: its layer is not used (exact anyway)."""
    model, x = _two_layers(), torch.randn(5, 4)
    params = list(model.parameters())
    z = model(x) + (model[0].weight ** 2).sum()  # the first weight is also in a penalty
    losses = _task_losses(z)
    assert [c.weight for c in graph_layer_calls(losses, params)] == [model[2].weight]
    _assert_layerwise_exact(losses, params, graph_layer_calls(losses, params))

    # Wᵀ taken once and read by a layer and by a non-layer operation
    weight, bias = model[0].weight, model[0].bias
    transposed = weight.t()
    z = torch.addmm(bias, x, transposed) + transposed.sum(0)
    losses = _task_losses(z)
    assert graph_layer_calls(losses, params) == []
    # the weight of a square layer also in x @ W (no transpose; defect 9's model)
    encoder = nn.Linear(4, 4)
    z = encoder(x) + x @ encoder.weight
    losses = _task_losses(z)
    assert graph_layer_calls(losses, list(encoder.parameters())) == []
    with pytest.raises(ValueError, match="layerwise.*none were found"):
        GradientEngine(method="layerwise").jacobian(torch.stack(losses), encoder.weight)


def test_weight_read_by_several_layer_calls_is_kept():
    """A layer called twice, tied weights, one Wᵀ read by two products: every call is kept and
    their columns add up to the loop's."""
    model, x = _two_layers(), torch.randn(5, 4)
    tied = nn.Linear(6, 6)
    params = list(model.parameters()) + list(tied.parameters())
    h = model[1](model[0](x))
    transposed = tied.weight.t()
    z = torch.addmm(tied.bias, h, transposed) + torch.mm(torch.tanh(h), transposed)
    z = model[2](tied(torch.tanh(z)))
    losses = _task_losses(z)
    calls = graph_layer_calls(losses, params)
    assert Counter(id(c.weight) for c in calls) == Counter(
        {id(model[0].weight): 1, id(tied.weight): 3, id(model[2].weight): 1}
    )
    _assert_layerwise_exact(losses, params, calls)


def test_scaled_products_and_unusual_bias_are_not_layers():
    """``addmm`` with α or β ≠ 1, or whose added matrix is a full (N, out) parameter, is left to
    autograd."""
    torch.manual_seed(0)
    weight, bias = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(3))
    full = nn.Parameter(torch.randn(5, 3))
    x = torch.randn(5, 4)
    params = [weight, bias, full]
    for z in (
        torch.addmm(bias, x, weight.t(), alpha=2.0),
        torch.addmm(bias, x, weight.t(), beta=0.5),
        torch.addmm(full, x, weight.t()),
    ):
        losses = _task_losses(z + full)
        assert graph_layer_calls(losses, params) == []
        _assert_layerwise_exact(losses, params, [])


def test_graph_calls_are_exact_where_hooks_are_not():
    """An output rescaled by a hook or rewritten in place: the graph reads the gradient at the
    layer's own node, so the forced layerwise (no ``watch``) is exact with the layer used."""
    model, x = _two_layers(), torch.randn(5, 4)
    model[0].register_forward_hook(lambda module, args, out: 3.0 * out)
    params = list(model.parameters())
    engine = GradientEngine(method="layerwise")
    for _ in range(2):
        engine.new_step()
        losses = engine.stack(_task_losses(F.relu_(model(x))))
        assert len(engine.layer_calls(losses, params)) == 2
        torch.testing.assert_close(engine.jacobian(losses, params), jacobian_loop(losses, params))


def test_custom_loop_engine_measures_layerwise():
    """``mtl_backward`` without a model or an engine: its engine (kept per model) times the
    layerwise method from the graph's layers, and the gradients equal a loop engine's."""
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "multiclass", num_outputs=10) for i in range(3)]
    model = make_model("hps", LeNet, tasks)
    reference = copy.deepcopy(model)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    loop = GradientEngine(method="loop")
    engine = None
    for _ in range(5):
        grads = []
        for net, kwargs in ((reference, {"engine": loop}), (model, {})):
            net.zero_grad()
            rep = net.encode(x)
            losses = [t.compute_loss(net.heads[t.name](rep), y) for t in tasks]
            mtl_backward(losses, "upgrad", features=rep, **kwargs)
            grads.append([p.grad for p in net.parameters()])
        for got, expected in zip(*grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
        engine = engine_for(graph_leaves([rep]))  # the shared parameters as mtl_backward finds
    assert engine is not None
    (timings,) = engine._timings.values()
    assert set(timings) == {"loop", "batched", "layerwise"}
    assert all(t < float("inf") for t in timings["layerwise"])
    assert engine._found is None  # no reference to the last step's layer inputs is kept
