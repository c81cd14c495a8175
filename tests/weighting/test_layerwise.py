"""The layerwise Jacobian (output gradients × layer inputs) equals the per-task autograd loop,
with the layer calls recorded by forward hooks or found in the autograd graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mtlkit.models.architectures import make_model
from mtlkit.models.encoders import LeNet
from mtlkit.tasks import Task
from mtlkit.weighting import GradientEngine
from mtlkit.weighting.engine import jacobian_loop
from mtlkit.weighting.layerwise import (
    MIN_PATCH_LENGTH,
    LayerRecorder,
    graph_layer_calls,
    jacobian_layerwise,
    patch_length,
    unfold_patches,
)


def _check(model: nn.Module, x, heads: int = 3, watched: int | None = None, seed: int = 0):
    """Run ``model`` with T linear heads on top; compare layerwise and loop Jacobians."""
    torch.manual_seed(seed)
    shared = [p for p in model.parameters() if p.requires_grad]
    recorder = LayerRecorder(model, shared)
    if watched is not None:
        assert len(recorder.layers) == watched
    rep = model(x).flatten(1)
    head_layers = [nn.Linear(rep.shape[1], 2) for _ in range(heads)]
    losses = torch.stack([(h(rep) ** 2).mean() * (t + 1) for t, h in enumerate(head_layers)])
    expected = jacobian_loop(losses, shared)
    # the hooks' calls and the graph's; every layer by products (0), then the default rule
    for calls in (recorder, graph_layer_calls(list(losses), shared)):
        for min_patch_length in (0, MIN_PATCH_LENGTH):
            got = jacobian_layerwise(losses, shared, calls, min_patch_length=min_patch_length)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    return recorder


@settings(max_examples=15, deadline=None)
@given(
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    kernel=st.sampled_from([1, 3, (3, 2)]),
    bias=st.booleans(),
    in_channels=st.integers(1, 3),
)
def test_conv2d_any_geometry(stride, padding, dilation, kernel, bias, in_channels):
    model = nn.Sequential(
        nn.Conv2d(in_channels, 4, kernel, stride, padding, dilation, bias=bias),
        nn.Tanh(),
        nn.Conv2d(4, 3, 3, padding=1, bias=not bias),
    )
    x = torch.randn(5, in_channels, 9, 8)
    _check(model, x, watched=2)
    conv = model[0]
    unfold_args = (conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    for image in (x, x.transpose(2, 3)):  # contiguous and strided
        expected = F.unfold(image, *unfold_args)  # (B, K, L)
        got = unfold_patches(image, conv).reshape(expected.shape[1], 5, -1).transpose(0, 1)
        assert torch.equal(got, expected)


def test_lenet_and_linear_on_sequences():
    _check(LeNet(), torch.randn(16, 1, 28, 28), watched=3)
    # a Linear applied to (N, L, features): the batch has extra leading dimensions
    _check(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)), torch.randn(5, 7, 4))


def test_unwatched_parameters_come_from_autograd():
    """Normalization layers and a parameter shared by two layers are left to autograd."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
    _check(model, torch.randn(6, 2, 8, 8), watched=2)
    tied = nn.Sequential(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5))
    tied[2].weight = tied[0].weight
    _check(tied, torch.randn(7, 5), watched=0)


def test_layer_called_several_times_and_in_place_ops():
    layer = nn.Linear(4, 4)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(torch.tanh(self.layer(x)))

    recorder = _check(Twice(), torch.randn(6, 4))
    assert len(recorder.calls[layer]) == 2
    # an in-place ReLU rewrites the recorded output: that layer falls back to autograd
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))
    recorder = _check(model, torch.randn(6, 4))
    assert [c.module for c in recorder.usable_calls()] == [model[2]]


def test_stale_forward_and_overflow():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    shared = list(model.parameters())
    recorder = LayerRecorder(model, shared, max_calls=3)
    model(torch.randn(5, 3))  # an earlier forward whose graph is not the losses'
    x = torch.randn(5, 3)
    losses = torch.stack([model(x).sum(), (model(x) ** 2).sum()])
    torch.testing.assert_close(
        jacobian_layerwise(losses, shared, recorder), jacobian_loop(losses, shared)
    )
    model(x)  # a fourth call: over max_calls, records dropped until clear()
    assert recorder.usable_calls() == [] and recorder.overflowed
    torch.testing.assert_close(
        jacobian_layerwise(losses, shared, recorder), jacobian_loop(losses, shared)
    )
    recorder.clear()
    with torch.no_grad():
        model(x)
    assert recorder.usable_calls() == []
    recorder.remove()
    model(x)
    assert recorder.calls == {}


def test_engine_auto_measures_layerwise_and_rejects_inexact():
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "multiclass", num_outputs=10) for i in range(3)]
    model = make_model("hps", LeNet, tasks)
    shared = list(model.shared_parameters())
    engine = GradientEngine()
    engine.watch(model, shared)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(engine.probes + 1):
        engine.new_step()
        out = model(x)
        losses = torch.stack([t.compute_loss(out[t.name], y) for t in tasks])
        torch.testing.assert_close(engine.jacobian(losses, shared), jacobian_loop(losses, shared))
    (timings,) = engine._timings.values()
    assert set(timings) == {"loop", "batched", "layerwise"}
    assert all(t < float("inf") for t in timings["layerwise"])

    # a watched layer's weight also used outside its forward: layerwise is inexact, never chosen
    encoder = nn.Linear(4, 4)
    engine = GradientEngine()
    engine.watch(encoder, list(encoder.parameters()))
    x = torch.randn(5, 4)
    for _ in range(engine.probes):
        engine.new_step()
        z = encoder(x) + x @ encoder.weight
        losses = torch.stack([z.sum(), (z**2).sum()])
        torch.testing.assert_close(
            engine.jacobian(losses, list(encoder.parameters())),
            jacobian_loop(losses, list(encoder.parameters())),
        )
    (timings,) = engine._timings.values()
    assert timings["layerwise"][0] == float("inf")
    assert next(iter(engine.choice.values())) != "layerwise"


def test_layerwise_method_needs_watch():
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(ValueError, match="watch"):
        GradientEngine(method="layerwise").jacobian(torch.stack([p.sum(), p.prod()]), [p])


def _forced_layerwise_steps(encoder: nn.Module, forward, steps: int = 2):
    engine = GradientEngine(method="layerwise")
    params = list(encoder.parameters())
    engine.watch(encoder, params)
    x = torch.randn(5, 4)
    for _ in range(steps):
        engine.new_step()
        z = forward(x)
        engine.jacobian(torch.stack([z.sum(), (z**2).sum()]), params)


def test_forced_layerwise_refuses_weight_used_outside_forward():
    """Defect 9: auto rejected this model; a forced "layerwise" gave a wrong Jacobian."""
    torch.manual_seed(0)
    encoder = nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"layerwise.*Linear\(in_features=4.*weight"):
        _forced_layerwise_steps(encoder, lambda x: encoder(x) + x @ encoder.weight)


def test_forced_layerwise_refuses_output_rescaled_by_a_hook():
    torch.manual_seed(0)
    encoder = nn.Linear(4, 4)
    encoder.register_forward_hook(lambda module, args, out: 3.0 * out)  # before engine.watch
    with pytest.raises(ValueError, match="layerwise"):
        _forced_layerwise_steps(encoder, encoder)


def test_forced_layerwise_accepts_an_exact_model():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    _forced_layerwise_steps(encoder, encoder, steps=3)


@pytest.mark.parametrize("method", ["auto", "loop", "layerwise"])
def test_sparse_embedding_in_the_trunk(method):
    """Defect 9: a sparse nn.Embedding ended in a bare AssertionError (auto) or a reshape error."""
    torch.manual_seed(0)
    sparse = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 3))
    dense = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    dense.load_state_dict(sparse.state_dict())
    tokens = torch.tensor([1, 2, 3, 2])
    jacobians = []
    for model, engine_method in ((sparse, method), (dense, "loop")):
        params = list(model.parameters())
        engine = GradientEngine(method=engine_method)
        engine.watch(model, params)
        for _ in range(3):
            engine.new_step()
            z = model(tokens)
            jacobian = engine.jacobian(torch.stack([z.sum(), (z**2).sum()]), params)
        jacobians.append(jacobian)
    torch.testing.assert_close(jacobians[0], jacobians[1])


def test_short_rows_are_left_to_autograd(monkeypatch):
    """LeNet's first convolution (patches of 1·5·5) is left to the per-task passes; its second
    (10·5·5) and its Linear layer get their columns by one product for all tasks."""
    from mtlkit.weighting import layerwise

    model = LeNet()
    shared = list(model.parameters())
    recorder = LayerRecorder(model, shared)
    conv1, conv2, fc = recorder.layers
    assert [patch_length(m) for m in (conv1, conv2)] == [25, 250]
    built = []
    for kind, factory in list(layerwise.LAYER_JACOBIANS.items()):
        monkeypatch.setitem(
            layerwise.LAYER_JACOBIANS,
            kind,
            lambda call, num_tasks, factory=factory: (
                built.append(call.module) or factory(call, num_tasks)
            ),
        )
    x = torch.randn(6, 1, 28, 28)
    rep = model(x)
    losses = [rep.sum(), (rep**2).sum()]
    torch.testing.assert_close(
        jacobian_layerwise(losses, shared, recorder), jacobian_loop(losses, shared)
    )
    assert built == [conv2, fc]


@pytest.mark.parametrize("arch", ["hps", "mmoe"])
def test_forced_layerwise_is_exact_on_architectures(arch):
    """The layerwise Jacobian (default row-length rule) equals the loop's on HPS and MMoE."""
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "multiclass", num_outputs=10) for i in range(3)]
    model = make_model(arch, LeNet, tasks)
    shared = list(model.shared_parameters())
    engine = GradientEngine(method="layerwise")
    engine.watch(model, shared)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(2):
        engine.new_step()
        out = model(x)
        losses = torch.stack([t.compute_loss(out[t.name], y) for t in tasks])
        torch.testing.assert_close(engine.jacobian(losses, shared), jacobian_loop(losses, shared))


def test_auto_probes_take_turns_first(monkeypatch):
    """Each probe starts with a different method, so none is always timed on cold caches."""
    p = nn.Parameter(torch.randn(3))
    engine = GradientEngine(probes=3)
    compute = engine._compute
    calls: list[str] = []
    monkeypatch.setattr(
        engine, "_compute", lambda method, *args: calls.append(method) or compute(method, *args)
    )
    for _ in range(2):
        engine.jacobian(torch.stack([p.sum(), p.prod()]), [p])
    assert calls[0] != calls[2] and sorted(calls[:2]) == sorted(calls[2:]) == ["batched", "loop"]
