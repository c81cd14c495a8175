"""Gates sum to one; stitch units and attention masks are well-formed."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from models_testutil import TASKS, build, data

from mtlkit.models.architectures.common import DSelectGate, SoftmaxGate, mix_experts


@settings(max_examples=30, deadline=None)
@given(
    num_experts=st.integers(1, 9),
    k=st.integers(1, 4),
    gamma=st.floats(0.1, 5.0),
    n=st.integers(1, 5),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**16),
)
def test_gates_are_distributions_over_the_experts(num_experts, k, gamma, n, scale, seed):
    torch.manual_seed(seed)
    z = torch.randn(n, 4) * scale
    for gate in (SoftmaxGate(4, num_experts), DSelectGate(4, num_experts, k=k, gamma=gamma)):
        weights = gate(z)
        assert weights.shape == (n, num_experts)
        assert torch.all(weights >= 0)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(n))


def test_saturated_dselect_gate_selects_at_most_k_experts():
    gate = DSelectGate(3, 8, k=2, gamma=0.5)
    with torch.no_grad():
        gate.z.weight.mul_(1000)  # push every switch out of the smooth region
    weights = gate(torch.randn(16, 3))
    assert int((weights > 0).sum(dim=1).max()) <= 2


def test_mix_experts_weights_any_shape():
    outputs = [torch.full((2, 3, 4, 4), float(e)) for e in range(3)]
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    mixed = mix_experts(weights, outputs)
    assert mixed.shape == (2, 3, 4, 4)
    assert torch.all(mixed[0] == 0) and torch.all(mixed[1] == 1.5)


@settings(max_examples=10, deadline=None)
@given(
    arch_options=st.sampled_from(
        [
            ("mmoe", {"num_experts": 1}),
            ("mmoe", {"num_experts": 5, "gate_input": "input"}),
            ("cgc", {"shared_experts": 1, "task_experts": 3}),
            ("ple", {"num_levels": 3, "shared_experts": 2, "task_experts": 1}),
            ("dselect_k", {"num_experts": 5, "k": 3}),
        ]
    ),
    encoder=st.sampled_from(["mlp", "lenet"]),
    seed=st.integers(0, 100),
)
def test_model_gates_sum_to_one(arch_options, encoder, seed):
    arch, options = arch_options
    model = build(arch, options, encoder)
    x, _ = data(encoder, n=3, seed=seed)
    gates = model.gate_weights(x * 10)
    expected = {f"level{lvl}.{t.name}" for lvl in range(model.num_levels) for t in TASKS}
    assert expected <= set(gates)
    for weights in gates.values():
        assert torch.all(weights >= 0)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))


def test_cross_stitch_units_start_as_convex_mixtures():
    model = build("cross_stitch", {"self_weight": 0.7}, "lenet")
    for rows in model.stitch_weights().values():
        for task, alpha in rows.items():
            assert alpha.shape[0] == 10 or alpha.shape[0] == 20  # LeNet channels
            torch.testing.assert_close(alpha.sum(dim=1), torch.ones(alpha.shape[0]))
            assert torch.all(alpha[:, model.sources[task].index(task)] == 0.7)


def test_mtan_masks_lie_in_the_unit_interval_and_match_stage_shapes():
    model = build("mtan", {}, "lenet")
    x, _ = data("lenet", n=2)
    masks = model.attention_masks(x)
    for task in TASKS:
        shapes = [tuple(m.shape[1:]) for m in masks[task.name]]
        assert shapes == model.stage_shapes
        assert all(torch.all((m > 0) & (m < 1)) for m in masks[task.name])
