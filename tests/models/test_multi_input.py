"""Multi-input models: per-task branches (own domains), shared layers, fusion."""

from __future__ import annotations

import pytest
import torch

from mtlkit.models import make_encoder, make_model
from mtlkit.tasks import Task

TASKS = [Task("img", "multiclass", 3), Task("tab", "regression")]
FACTORIES = {
    "img": lambda: make_encoder("lenet", (1, 16, 16), out_features=8),
    "tab": lambda: make_encoder("mlp", (5,), hidden=[6]),
}


def _inputs(n=4, m=None):
    return {"img": torch.randn(n, 1, 16, 16), "tab": torch.randn(m or n, 5)}


def _grads(model, out, task):
    model.zero_grad(set_to_none=True)
    out[task].pow(2).mean().backward(retain_graph=True)
    return {n for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("fusion", ["concat", "sum", "mean", "attention"])
def test_fusion_shapes_and_gradients_reach_every_fused_branch(fusion):
    model = make_model("multi_input", FACTORIES, TASKS, fusion=fusion, project=8)
    out = model(_inputs())
    assert out["img"].shape == (4, 3) and out["tab"].shape == (4, 1)
    for task in ("img", "tab"):
        reached = _grads(model, out, task)
        assert any(n.startswith("branches.img.") for n in reached)
        assert any(n.startswith("branches.tab.") for n in reached)
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in model.branches.parameters()} <= shared
    if fusion == "concat":
        assert model.heads["img"].in_features == 16


def test_own_heads_keep_branches_task_specific_and_accept_unpaired_inputs():
    model = make_model("multi_input", FACTORIES, TASKS, fusion="sum", head_input="own", project=8)
    out = model(_inputs(4, 7))
    assert out["tab"].shape == (7, 1)
    assert not any(n.startswith("branches.img.") for n in _grads(model, out, "tab"))
    assert list(model.shared_parameters()) == []


def test_shared_layers_are_shared_between_domains():
    model = make_model("multi_input", FACTORIES, TASKS, fusion="none", project=8, shared_layers=[4])
    out = model(_inputs(3, 5))
    assert out["img"].shape == (3, 3)
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.shared.parameters()}
    assert _grads(model, out, "tab") >= {n for n, _ in model.named_parameters() if "shared." in n}


def test_fused_heads_need_paired_inputs():
    model = make_model("multi_input", FACTORIES, TASKS, fusion="concat")
    with pytest.raises(ValueError, match="paired"):
        model(_inputs(4, 5))


def test_concat_fills_missing_branches_with_zeros_and_attention_weights_sum_to_one():
    model = make_model("multi_input", FACTORIES, TASKS, fusion="concat")
    out = model({"tab": torch.randn(2, 5)})
    assert set(out) == {"tab"} and out["tab"].shape == (2, 1)
    att = make_model("multi_input", FACTORIES, TASKS, fusion="attention", project=6)
    weights = att.fusion_weights(_inputs(5))
    for w in weights.values():
        assert w.shape == (5, 2)
        torch.testing.assert_close(w.sum(dim=1), torch.ones(5))


def test_unequal_widths_need_projection():
    with pytest.raises(ValueError, match="project"):
        make_model("multi_input", FACTORIES, TASKS, fusion="sum")


def test_a_shared_encoder_reads_every_task_input():
    factory = FACTORIES["tab"]
    tasks = [Task("a", "regression"), Task("b", "binary")]
    model = make_model("multi_input", factory, tasks, shared_encoder=True, fusion="mean")
    out = model({"a": torch.randn(3, 5), "b": torch.randn(3, 5)})
    assert out["b"].shape == (3, 1)
    assert {id(p) for p in model.encoder.parameters()} <= {id(p) for p in model.shared_parameters()}
