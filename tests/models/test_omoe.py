"""One-gate MoE: one gate shared by every task, otherwise MMoE."""

from __future__ import annotations

import torch
from models_testutil import TASKS, build, data

from mtlkit.models.architectures.common import mix_experts


def test_every_task_reads_the_same_gate_weights():
    model = build("omoe", {"num_experts": 3})
    gates = model.gate_weights(data()[0])
    first = gates["level0.a"]
    assert set(gates) == {f"level0.{t.name}" for t in TASKS}
    for weights in gates.values():
        torch.testing.assert_close(weights, first, rtol=0, atol=0)
    mmoe = build("mmoe", {"num_experts": 3}).gate_weights(data()[0])
    assert not torch.allclose(mmoe["level0.a"], mmoe["level0.b"])


def test_output_is_each_head_on_one_mixture_of_the_experts():
    model = build("omoe", {"num_experts": 3, "gate_input": "input"})
    x = data()[0]
    weights = model.gate_weights(x)["level0.a"]
    mixture = mix_experts(weights, [expert(x) for expert in model.experts])
    outputs = model(x)
    for task in TASKS:
        torch.testing.assert_close(outputs[task.name], model.heads[task.name](mixture))


def test_the_gate_is_shared_and_only_the_heads_are_task_specific():
    model = build("omoe", {"num_experts": 3, "gate_input": "input"})
    mmoe = build("mmoe", {"num_experts": 3, "gate_input": "input"})
    owners = model.parameter_owners()
    everyone = frozenset(t.name for t in TASKS)
    for name, who in owners.items():
        assert who == (frozenset({name.split(".")[1]}) if name.startswith("heads.") else everyone)
    gate_size = sum(p.numel() for p in model.task_gates[0]["a"].parameters())
    assert model.num_parameters() == mmoe.num_parameters() - (len(TASKS) - 1) * gate_size
