import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlkit.tasks import IGNORE_INDEX, Task


def test_defaults_per_kind():
    assert Task("a", "multiclass", 3).metrics == ("accuracy", "f1", "precision", "recall")
    assert Task("b", "regression").metrics == ("mse", "mae", "r2")
    assert Task("c", "binary", num_outputs=7).num_outputs == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "a", "kind": "ordinal"}, "kind must be one of"),
        ({"name": "a", "kind": "multiclass", "num_outputs": 1}, "num_outputs >= 2"),
        ({"name": "a", "kind": "regression", "metrics": ["acc"]}, "unknown metric 'acc'"),
        ({"name": "a", "kind": "regression", "weight": -1.0}, "weight must be >= 0"),
    ],
)
def test_invalid_task_names_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Task(**kwargs)


def test_multiclass_loss_ignores_missing_labels():
    task = Task("a", "multiclass", 3)
    logits = torch.randn(5, 3)
    target = torch.tensor([0, IGNORE_INDEX, 2, IGNORE_INDEX, 1])
    keep = target != IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], target[keep])
    assert torch.allclose(task.compute_loss(logits, target), expected)


def test_regression_loss_ignores_nan():
    task = Task("r", "regression")
    pred = torch.tensor([[1.0], [2.0], [3.0]])
    target = torch.tensor([2.0, math.nan, 5.0])
    assert torch.allclose(task.compute_loss(pred, target), torch.tensor((1 + 4) / 2))


def test_multilabel_loss_masks_single_entries():
    task = Task("m", "multilabel", 2)
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    target = torch.tensor([[1, IGNORE_INDEX], [0, 1]])
    per = F.binary_cross_entropy_with_logits(logits, target.clamp(min=0).float(), reduction="none")
    expected = (per[0, 0] + per[1, 0] + per[1, 1]) / 3
    assert torch.allclose(task.compute_loss(logits, target), expected)


@pytest.mark.parametrize(
    "task, target",
    [
        (Task("a", "multiclass", 3), torch.full((4,), IGNORE_INDEX)),
        (Task("b", "binary"), torch.full((4,), IGNORE_INDEX)),
        (Task("m", "multilabel", 3), torch.full((4, 3), IGNORE_INDEX)),
        (Task("r", "regression"), torch.full((4,), math.nan)),
    ],
)
def test_batch_without_labels_gives_zero_loss_and_zero_gradient(task, target):
    layer = torch.nn.Linear(2, task.num_outputs)
    loss = task.compute_loss(layer(torch.randn(4, 2)), target)
    loss.backward()
    assert loss.item() == 0.0
    for p in layer.parameters():
        assert p.grad is not None and torch.all(p.grad == 0)
        assert torch.isfinite(p.grad).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12), st.integers(0, 2**16))
def test_masked_loss_equals_loss_on_labelled_rows(missing, seed):
    gen = torch.Generator().manual_seed(seed)
    task = Task("r", "regression")
    pred = torch.randn(len(missing), 1, generator=gen)
    target = torch.randn(len(missing), generator=gen)
    full = target.clone()
    target[torch.tensor(missing)] = math.nan
    keep = ~torch.tensor(missing)
    loss = task.compute_loss(pred, target)
    if keep.any():
        assert torch.allclose(loss, F.mse_loss(pred[keep, 0], full[keep]))
    else:
        assert loss.item() == 0.0


def test_custom_loss_is_used_on_labelled_rows():
    seen = []

    def l1(pred, target):
        seen.append(len(target))
        return (pred.squeeze(-1) - target).abs().mean()

    task = Task("r", "regression", loss=l1)
    loss = task.compute_loss(torch.zeros(3, 1), torch.tensor([1.0, math.nan, -3.0]))
    assert seen == [2] and loss.item() == pytest.approx(2.0)


def test_predictions_and_probabilities():
    out = torch.tensor([[0.1, 2.0, -1.0]])
    task = Task("a", "multiclass", 3)
    assert task.predict(out).tolist() == [1]
    assert np.isclose(task.probabilities(out).sum().item(), 1.0)
    binary = Task("b", "binary")
    assert binary.predict(torch.tensor([[0.3], [-0.2]])).tolist() == [1, 0]


def test_round_trip_dict():
    task = Task("a", "multiclass", 3, weight=0.5, class_names=["x", "y", "z"])
    assert Task.from_dict(task.to_dict()) == task
