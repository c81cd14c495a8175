"""The built-in default losses are masked means of fixed shape (``TaskKind.masked_loss``).

They equal the loss of the labelled rows (or entries) alone, as the torch reference computes it
on those rows, in value and gradient; a batch without labels gives exactly 0 with a zero, finite
gradient; and they read nothing on the host: they run on the ``meta`` device, where any read of a
value raises (a boolean index, ``bool(...)``, ``.item()``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit.tasks import IGNORE_INDEX, Task, TaskKind
from mtlkit.tasks.kinds import Regression

CLASS_WEIGHT = [1.0, 2.5, 0.4]
POS_WEIGHT = [0.5, 1.0, 4.0]

TASKS = {
    "multiclass": Task("m", "multiclass", 3),
    "multiclass class_weight": Task("m", "multiclass", 3, class_weight=CLASS_WEIGHT),
    "binary": Task("b", "binary"),
    "binary pos_weight": Task("b", "binary", pos_weight=3.0),
    "binary class_weight": Task("b", "binary", class_weight=CLASS_WEIGHT[1:]),
    "multilabel": Task("l", "multilabel", 3),
    "multilabel pos_weight": Task("l", "multilabel", 3, pos_weight=POS_WEIGHT),
    "regression": Task("r", "regression"),
    "regression 2 targets": Task("r", "regression", 2),
}


def _target(task: Task, n: int, gen: torch.Generator, missing: float) -> Tensor:
    """Targets of ``n`` rows, each row (multilabel and multi-target regression: each entry)
    missing with probability ``missing``; row 1 has no label at all, row 0 has all."""
    per_entry = task.kind == "multilabel" or (task.kind == "regression" and task.num_outputs > 1)
    shape = (n, task.num_outputs) if per_entry else (n,)
    if task.kind == "regression":
        values, marker = torch.randn(shape, generator=gen), math.nan
    else:
        classes = 2 if task.kind in ("binary", "multilabel") else task.num_outputs
        values, marker = torch.randint(0, classes, shape, generator=gen), IGNORE_INDEX
    drop = torch.rand(shape, generator=gen) < missing
    drop[0], drop[1] = False, True
    return torch.where(drop, torch.full_like(values, marker), values)


def _reference(task: Task, output: Tensor, target: Tensor) -> Tensor:
    """The loss of the labelled entries only, by torch's own reductions."""
    if task.kind == "regression":
        keep = ~target.isnan()
        return F.mse_loss(output.reshape(target.shape)[keep], target[keep])
    keep = target != IGNORE_INDEX
    if task.kind == "multiclass":
        weight = None if task.class_weight is None else torch.tensor(task.class_weight)
        return F.cross_entropy(output[keep], target[keep], weight=weight)
    pos_weight = None if task.pos_weight is None else torch.tensor(task.pos_weight)
    if task.kind == "multilabel":
        label = target.clamp(min=0).float()
        per_entry = F.binary_cross_entropy_with_logits(
            output, label, pos_weight=pos_weight, reduction="none"
        )
        return per_entry[keep].mean()
    logit, label = output[:, 0][keep], target[keep]
    if task.class_weight is None:
        return F.binary_cross_entropy_with_logits(logit, label.float(), pos_weight=pos_weight)
    row_weight = torch.tensor(task.class_weight)[label]
    per_row = F.binary_cross_entropy_with_logits(logit, label.float(), reduction="none")
    return (row_weight * per_row).sum() / row_weight.sum()


def _loss_and_gradient(
    task: Task, output: Tensor, target: Tensor, loss_fn
) -> tuple[Tensor, Tensor]:
    output = output.clone().requires_grad_(True)
    loss = loss_fn(task, output, target)
    (gradient,) = torch.autograd.grad(loss, output)
    return loss.detach(), gradient


@pytest.mark.parametrize("missing", [0.0, 0.4, 0.9])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", list(TASKS))
def test_masked_loss_and_gradient_equal_the_loss_of_the_labelled_rows(case, seed, missing):
    task, gen = TASKS[case], torch.Generator().manual_seed(seed)
    target = _target(task, 12, gen, missing)
    output = 3 * torch.randn(12, task.num_outputs, generator=gen)
    loss, gradient = _loss_and_gradient(task, output, target, Task.compute_loss)
    expected, expected_gradient = _loss_and_gradient(task, output, target, _reference)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(gradient, expected_gradient)
    unlabelled = ~task.row_mask(target)
    assert unlabelled[1] and torch.all(gradient[unlabelled] == 0)


@pytest.mark.parametrize("case", list(TASKS))
def test_a_batch_without_labels_has_exactly_zero_loss_and_a_zero_gradient(case):
    task = TASKS[case]
    target = _target(task, 5, torch.Generator().manual_seed(0), missing=1.0)[1:]
    assert not task.row_mask(target).any()
    loss, gradient = _loss_and_gradient(
        task, torch.randn(4, task.num_outputs), target, Task.compute_loss
    )
    assert loss.item() == 0.0 and not loss.isnan()
    assert torch.all(gradient == 0) and gradient.isfinite().all()


@pytest.mark.parametrize("case", list(TASKS))
def test_a_masked_loss_reads_nothing_on_the_host(case):
    task = TASKS[case]
    target = _target(task, 8, torch.Generator().manual_seed(0), missing=0.5).to("meta")
    output = torch.empty(8, task.num_outputs, device="meta", requires_grad=True)
    loss = task.compute_loss(output, target)
    loss.backward()
    assert loss.shape == () and output.grad is not None and output.grad.device.type == "meta"


def test_a_custom_loss_receives_the_labelled_rows_only():
    seen = []

    def l1(prediction: Tensor, target: Tensor) -> Tensor:
        seen.append(target.clone())
        return (prediction - target).abs().mean()

    task = Task("l", "multilabel", 2, loss=l1)
    target = torch.tensor([[1, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX], [0, 1]])
    loss = task.compute_loss(torch.zeros(3, 2), target)
    assert torch.equal(seen[0], target[[0, 2]])  # rows with a label; entries as given
    assert loss.item() == pytest.approx((1 + 100 + 0 + 1) / 4)
    assert task.compute_loss(torch.zeros(1, 2), target[1:2]).item() == 0.0 and len(seen) == 1


class _RowLoss(TaskKind):
    """A kind defined elsewhere that gives only :meth:`TaskKind.loss` (on labelled rows)."""

    name = "row_loss"
    default_metrics = ()
    target_dtype = torch.float32

    def __init__(self) -> None:
        self.rows: list[int] = []

    def label_mask(self, target: Tensor, ignore_index: int) -> Tensor:
        return ~target.isnan()

    def loss(self, task, prediction, target):
        self.rows.append(len(target))
        return (prediction.reshape(target.shape) - target).abs().mean()


def test_a_kind_with_only_a_loss_on_labelled_rows_gets_them_by_default():
    kind, task = _RowLoss(), Task("r", "regression")
    target = torch.tensor([1.0, math.nan, -3.0])
    loss = kind.masked_loss(task, torch.zeros(3, 1), target)
    assert kind.rows == [2] and loss.item() == pytest.approx(2.0)
    assert kind.masked_loss(task, torch.zeros(1, 1), target[1:2]).item() == 0.0
    assert kind.rows == [2]


def test_a_kind_with_no_loss_is_an_error_naming_it():
    class NoLoss(TaskKind):
        name = "no_loss"

    with pytest.raises(NotImplementedError, match="NoLoss must define loss or masked_loss"):
        NoLoss().loss(Task("r", "regression"), torch.zeros(2, 1), torch.zeros(2))


@pytest.mark.parametrize("class_weight", [None, [1.0, 3.0]])
def test_a_binary_float_target_is_used_as_given_by_the_cross_entropy(class_weight):
    """A float target (a soft label from the Python API) enters the cross-entropy as it is, as
    before the masked loss; only the class weight's lookup rounds it down to a class id."""
    task = Task("b", "binary", class_weight=class_weight)
    logit = torch.tensor([2.0, -1.0, 0.5])
    target = torch.tensor([0.25, 1.0, IGNORE_INDEX])
    per_row = F.binary_cross_entropy_with_logits(logit[:2], target[:2], reduction="none")
    weight = torch.ones(2) if class_weight is None else torch.tensor([1.0, 3.0])
    expected = (weight * per_row).sum() / weight.sum()
    torch.testing.assert_close(task.compute_loss(logit[:, None], target), expected)


class _Huber(Regression):
    """A kind subclassing a built-in one that gives its own loss on labelled rows only."""

    name = "huber"

    def loss(self, task, prediction, target):
        return F.huber_loss(prediction.reshape(target.shape), target, delta=0.5)


class _DoubledMse(Regression):
    name = "doubled_mse"

    def loss(self, task, prediction, target):
        return 2 * super().loss(task, prediction, target)  # the built-in loss, on those rows


def test_a_subclass_of_a_built_in_kind_that_defines_loss_gets_its_own_loss():
    task, target = Task("r", "regression"), torch.tensor([1.0, math.nan, -3.0])
    prediction = torch.tensor([[0.0], [5.0], [0.0]])
    keep = [0, 2]
    huber = F.huber_loss(prediction[keep, 0], target[keep], delta=0.5)
    torch.testing.assert_close(_Huber().masked_loss(task, prediction, target), huber)
    mse = F.mse_loss(prediction[keep, 0], target[keep])
    torch.testing.assert_close(_DoubledMse().masked_loss(task, prediction, target), 2 * mse)
