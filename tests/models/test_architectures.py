"""Every architecture: shapes, gradient ownership, training, multi-input, adding tasks."""

from __future__ import annotations

import pytest
import torch
from models_testutil import (
    CASE_IDS,
    CASES,
    TASKS,
    build,
    data,
    declared_owners,
    empirical_owners,
    factory,
    losses,
)

from mtlkit.models import make_model
from mtlkit.models.architectures import ARCHITECTURES, describe
from mtlkit.models.transfer import add_task
from mtlkit.tasks import Task


def test_every_registered_architecture_is_tested():
    assert {arch for arch, _ in CASES} == set(ARCHITECTURES)


@pytest.mark.parametrize("encoder", ["mlp", "lenet"])
@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_output_shapes_and_gradient_ownership(arch, options, encoder):
    model = build(arch, options, encoder)
    x, y = data(encoder, n=6)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (6, 3), "b": (6, 1), "c": (6, 1)}

    owners, magnitude = empirical_owners(model, x, y)
    # Every parameter receives a (non-zero) gradient from at least one task.
    assert all(owners[n] for n in owners), [n for n in owners if not owners[n]]
    assert all(magnitude[n] > 0 for n in magnitude), [n for n in magnitude if magnitude[n] == 0]
    # shared_parameters() are exactly those reached by several tasks' losses.
    shared = {id(p) for p in model.shared_parameters()}
    for name, p in model.named_parameters():
        assert (id(p) in shared) == (len(owners[name]) > 1), name
    # The declared owners of every parameter are exact.
    declared = declared_owners(model)
    if declared is not None:
        assert {n: set(o) for n, o in declared.items()} == owners


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_task_specific_parameters_get_no_gradient_from_other_tasks(arch, options):
    model = build(arch, options)
    x, y = data(n=8)
    specific = dict.fromkeys(id(p) for p in model.task_specific_parameters())
    for task in TASKS:
        model.zero_grad(set_to_none=True)
        losses(model, x, y)[task.name].backward()
        got = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        for t in TASKS:
            if t.name == task.name:
                continue
            model.zero_grad(set_to_none=True)
            losses(model, x, y)[t.name].backward()
            other = {id(p) for p in model.parameters() if p.grad is not None}
            # A task-specific parameter reached by ``task`` is never reached by another task.
            assert not (set(specific) & got & other)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_a_tiny_training_run_lowers_every_task_loss(arch, options):
    torch.manual_seed(1)
    model = build(arch, options)
    x, y = data(n=64, seed=3)
    before = {k: v.item() for k, v in losses(model, x, y).items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        sum(losses(model, x, y).values()).backward()
        optimizer.step()
    after = {k: v.item() for k, v in losses(model, x, y).items()}
    for name in before:
        assert after[name] < 0.9 * before[name], (name, before[name], after[name])


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_multi_input_forward_computes_the_given_tasks_on_their_own_inputs(arch, options):
    model = build(arch, options).eval()
    x, _ = data(n=10)
    split = 5 if arch == "multi_input" else 4  # fusion needs paired (equal-size) inputs
    xa, xc = x[:split], x[split:]
    out = model({"a": xa, "c": xc})
    assert set(out) == {"a", "c"}
    assert out["a"].shape == (split, 3) and out["c"].shape == (10 - split, 1)
    if arch != "multi_input":  # fusion mixes in the other branches present in the batch
        torch.testing.assert_close(out["a"], model(xa)["a"])
        torch.testing.assert_close(out["c"], model(xc)["c"])


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_adding_a_task_keeps_old_outputs_and_ownership_exact(arch, options):
    model = build(arch, options).eval()
    x, y = data(n=6)
    before = model(x)
    new = Task("d", "multiclass", 4)
    add_task(model, new)
    after = model(x)
    assert after["d"].shape == (6, 4)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    tasks = [*TASKS, new]
    y = {**y, "d": torch.randint(0, 4, (6,))}
    owners, _ = empirical_owners(model, x, y, tasks)
    assert all(owners.values())
    assert any(o == {"d"} for o in owners.values())  # the new head at least
    declared = declared_owners(model)
    if declared is not None:
        assert {n: set(o) for n, o in declared.items()} == owners
    with pytest.raises(ValueError, match="already"):
        add_task(model, new)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_describe_reports_the_parameter_count(arch, options):
    model = build(arch, options)
    text = describe(model)
    assert f"{model.num_parameters():,} parameters" in text
    assert "heads" in text


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("mmoe", {"num_experts": 0}, "num_experts"),
        ("mmoe", {"gate_input": "raw"}, "gate_input"),
        ("ple", {"num_levels": 0}, "num_levels"),
        ("cross_stitch", {"stitch_after": [5]}, "stitch_after"),
        ("cross_stitch", {"granularity": "pixel"}, "granularity"),
        ("multi_input", {"fusion": "product"}, "fusion"),
        ("mtan", {"heads": 2}, "model 'mtan': model.arch_options: unknown option 'heads'"),
    ],
)
def test_bad_options_are_reported(arch, options, message):
    with pytest.raises(ValueError, match=message):
        make_model(arch, factory(), TASKS, **options)
