"""Freezing, adding tasks to a trained model, loading pretrained encoders."""

from __future__ import annotations

import pytest
import torch
from models_testutil import CASE_IDS, CASES, TASKS, build, data, losses

from mtlkit.models import make_encoder
from mtlkit.models.transfer import (
    StateDictMismatch,
    add_task,
    freeze_heads,
    freeze_shared,
    freeze_trunk,
    load_encoder,
    load_state,
    param_groups,
    trainable_parameters,
    trunk_encoders,
    unfreeze,
)
from mtlkit.tasks import Task

NEW = Task("d", "multiclass", 4)


def _train(model, x, y, tasks=TASKS, steps=5, params=None):
    optimizer = torch.optim.AdamW(params or trainable_parameters(model), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        sum(losses(model, x, y, tasks).values()).backward()
        optimizer.step()


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_freezing_the_trunk_changes_no_frozen_parameter(arch, options):
    model = build(arch, options)
    x, y = data(n=16)
    frozen = set(freeze_trunk(model))
    assert frozen and not any(n.startswith("heads.") for n in frozen)
    before = _snapshot(model)
    _train(model, x, y)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == (name in frozen), name


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_freezing_the_first_stages_changes_no_frozen_parameter(arch, options):
    model = build(arch, options, "lenet")
    x, y = data("lenet", n=8)
    frozen = set(freeze_trunk(model, stages=2))
    encoders = trunk_encoders(model)
    expected = {
        f"{e}.{n}"
        for e, module in encoders.items()
        for n, _ in module.named_parameters()
        if n.startswith(("stages.0.", "stages.1."))
    }
    assert frozen == expected and frozen
    before = _snapshot(model)
    _train(model, x, y)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert not (changed & frozen)
    assert any(n.startswith("heads.") for n in changed)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_adding_a_task_leaves_frozen_old_heads_bit_identical(arch, options):
    model = build(arch, options)
    x, y = data(n=16)
    _train(model, x, y)  # "trained run"
    add_task(model, NEW)
    freeze_heads(model, [t.name for t in TASKS])
    old_heads = {
        n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("heads.")
    }
    new_head = {n for n in old_heads if n.startswith("heads.d.")}
    tasks = [*TASKS, NEW]
    y = {**y, "d": torch.randint(0, 4, (16,))}
    groups = param_groups(model, ["d"], lr=1e-2, trunk_lr_scale=0.1)
    assert groups[0]["params"] and all(p.requires_grad for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, weight_decay=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        sum(losses(model, x, y, tasks).values()).backward()
        optimizer.step()
    for name, value in old_heads.items():
        now = dict(model.named_parameters())[name]
        assert torch.equal(now, value) == (name not in new_head), name


def test_param_groups_put_the_new_task_at_the_full_rate():
    model = build("mmoe", {"num_experts": 2})
    add_task(model, NEW)
    new, rest = param_groups(model, ["d"], lr=1.0, trunk_lr_scale=0.1)
    new_ids = {id(p) for p in new["params"]}
    assert new_ids == {id(p) for p in model.task_parameters("d")}
    assert {id(p) for p in model.heads["d"].parameters()} <= new_ids
    assert rest["lr"] == pytest.approx(0.1)
    assert len(param_groups(model, ["d"], lr=1.0, trunk_lr_scale=0.0)) == 1


def test_freeze_shared_freezes_exactly_the_shared_parameters():
    model = build("cgc", {})
    shared = {id(p) for p in model.shared_parameters()}
    freeze_shared(model)
    assert {id(p) for p in model.parameters() if not p.requires_grad} == shared
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_loading_a_pretrained_encoder_into_the_trunk():
    pretrained = make_encoder("mlp", (6,), hidden=[8, 8])
    model = build("hps", {})
    assert load_encoder(model, pretrained.state_dict()) == ["encoder"]
    for key, value in pretrained.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    mmoe = build("mmoe", {"num_experts": 2})
    loaded = load_encoder(mmoe, pretrained.state_dict(), into="shared_experts.0.1")
    assert loaded == ["shared_experts.0.1"]
    assert torch.equal(
        mmoe.shared_experts[0][1].stages[1][0].weight, pretrained.stages[1][0].weight
    )


def test_loading_a_mismatched_encoder_lists_missing_and_unexpected_keys():
    model = build("hps", {})
    before = _snapshot(model)
    other = make_encoder("mlp", (6,), hidden=[8]).state_dict()  # one stage fewer
    other["extra.weight"] = torch.zeros(1)
    with pytest.raises(StateDictMismatch) as info:
        load_encoder(model, other)
    message = str(info.value)
    assert "missing keys" in message and "stages.1.0.weight" in message
    assert "unexpected keys" in message and "extra.weight" in message
    assert info.value.missing == ["stages.1.0.weight", "stages.1.0.bias"]
    assert info.value.unexpected == ["extra.weight"]
    for name, p in model.named_parameters():  # never a partial load
        assert torch.equal(p, before[name])


def test_shape_mismatches_and_prefix_hint():
    model = build("hps", {})
    wide = make_encoder("mlp", (6,), hidden=[8, 9]).state_dict()
    with pytest.raises(StateDictMismatch, match=r"shape mismatches.*stages\.1\.0\.weight"):
        load_encoder(model, wide)
    full = build("hps", {}).state_dict()
    with pytest.raises(StateDictMismatch, match="prefix='encoder'"):
        load_encoder(model, full)
    load_encoder(model, full, prefix="encoder")
    assert torch.equal(model.encoder.stages[0][1].weight, full["encoder.stages.0.1.weight"])


def test_load_state_is_strict_and_explains_mismatches():
    model = build("mtan", {})
    state = build("mtan", {}, tasks=[*TASKS, NEW]).state_dict()
    with pytest.raises(StateDictMismatch, match=r"unexpected keys \(\d+\): .*heads\.d\.weight"):
        load_state(model, state)
    smaller = build("mtan", {}, tasks=TASKS[:2]).state_dict()
    with pytest.raises(StateDictMismatch, match="missing keys"):
        load_state(model, smaller)
    # The --init-from flow: load the old tasks strictly, then add the new one.
    load_state(model, build("mtan", {}).state_dict())
    add_task(model, NEW)
    assert model.task_names == ["a", "b", "c", "d"]
