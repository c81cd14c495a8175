"""Task kinds as objects: every registered kind keeps its contract; a new kind plugs in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit.tasks import IGNORE_INDEX, KINDS, Task, TaskKind, compute_metrics, register_kind


def _task(kind: str) -> Task:
    return Task("t", kind, num_outputs=3)


def _targets(kind: str, n: int, gen: torch.Generator) -> Tensor:
    task = _task(kind)
    if task.spec.target_dtype.is_floating_point:
        return torch.randn(n, task.num_outputs, generator=gen)
    if task.num_outputs == 1:
        return torch.randint(0, 2, (n,), generator=gen)
    if kind == "multilabel":
        return torch.randint(0, 2, (n, task.num_outputs), generator=gen)
    return torch.randint(0, task.num_outputs, (n,), generator=gen)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_batch_without_labels_has_zero_loss_and_zero_gradient(kind):
    task = _task(kind)
    target = _targets(kind, 6, torch.Generator().manual_seed(0))
    missing = float("nan") if target.is_floating_point() else IGNORE_INDEX
    target = torch.full_like(target, missing)
    output = torch.randn(6, task.num_outputs, requires_grad=True)
    loss = task.compute_loss(output, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(output.grad, torch.zeros_like(output))
    assert not task.label_mask(target).any()


@pytest.mark.parametrize("kind", list(KINDS))
def test_unlabelled_rows_do_not_change_the_loss(kind):
    task = _task(kind)
    gen = torch.Generator().manual_seed(1)
    target = _targets(kind, 8, gen)
    output = torch.randn(8, task.num_outputs, generator=gen)
    padded = torch.cat([target, target[:3]])
    padded[8:] = float("nan") if target.is_floating_point() else IGNORE_INDEX
    extra = torch.cat([output, 100 * torch.randn(3, task.num_outputs, generator=gen)])
    assert task.compute_loss(extra, padded).item() == pytest.approx(
        task.compute_loss(output, target).item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "kind", [k for k, spec in KINDS.items() if spec.probabilities(torch.zeros(1, 3)) is not None]
)
def test_predictions_are_the_most_probable_labels(kind):
    task = _task(kind)
    output = torch.randn(50, task.num_outputs, generator=torch.Generator().manual_seed(2))
    prob, pred = task.probabilities(output), task.predict(output)
    assert ((prob >= 0) & (prob <= 1)).all()
    if kind == "multiclass":
        assert torch.allclose(prob.sum(-1), torch.ones(50))
        assert torch.equal(pred, prob.argmax(-1))
    else:
        assert torch.equal(pred, (prob > 0.5).long())


def test_default_losses_equal_torch_references():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(10, 3, generator=gen)
    y = torch.randint(0, 3, (10,), generator=gen)
    assert Task("m", "multiclass", 3).compute_loss(z, y) == pytest.approx(
        F.cross_entropy(z, y).item()
    )
    b = torch.randint(0, 2, (10,), generator=gen)
    assert Task("b", "binary").compute_loss(z[:, :1], b).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(z[:, 0], b.float()).item()
    )
    r = torch.randn(10, generator=gen)
    assert Task("r", "regression").compute_loss(z[:, :1], r).item() == pytest.approx(
        F.mse_loss(z[:, 0], r).item()
    )


class Count(TaskKind):
    """Counts, Poisson log-likelihood on a log-rate output (a kind defined outside mtlkit)."""

    name = "count"
    default_metrics = ("mae",)
    target_dtype = torch.float32

    def label_mask(self, target: Tensor, ignore_index: int) -> Tensor:
        return ~torch.isnan(target)

    def loss(self, task, prediction, target):
        return F.poisson_nll_loss(prediction.reshape(target.shape), target)

    def predict(self, output):
        return output.exp().squeeze(-1)

    def labelled(self, task, y_true):
        return ~np.isnan(y_true)

    def metrics(self):
        return ["mae", "mse"]


@pytest.fixture
def count_kind():
    kind = register_kind(Count())
    yield kind
    del KINDS["count"]


def test_a_registered_kind_trains_and_is_scored(count_kind):
    from mtlkit.data import MultiTaskDataset
    from mtlkit.models import SharedTrunk
    from mtlkit.training import Trainer, TrainingOptions

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(128, 2, generator=gen)
    rate = (0.8 * x[:, 0]).exp()
    y = torch.poisson(rate, generator=gen)
    task = Task("n", "count")
    assert task.spec is count_kind and task.metrics == ("mae",)
    with pytest.raises(ValueError, match="metric 'accuracy' does not apply to a count task"):
        Task("n", "count", metrics=["accuracy"])
    model = SharedTrunk(torch.nn.Identity(), heads={"n": torch.nn.Linear(2, 1)})
    trainer = Trainer(
        model,
        [task],
        optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
        options=TrainingOptions(progress=False),
    )
    data = MultiTaskDataset(x, {"n": y})
    before = trainer.evaluate(data)["n"]
    trainer.fit(data, epochs=30)
    after = trainer.evaluate(data)["n"]
    assert after["loss"] < before["loss"] and after["mae"] < before["mae"]
    assert after["mae"] == pytest.approx(
        compute_metrics(task, y.numpy(), model(x)["n"].exp().squeeze(-1).detach().numpy())["mae"],
        rel=1e-5,
    )


def test_unknown_kind_lists_the_registered_kinds(count_kind):
    with pytest.raises(
        ValueError, match="kind must be one of multiclass, binary, multilabel, regression, count"
    ):
        Task("t", "ordinal")
    with pytest.raises(ValueError, match="exists already"):
        register_kind(Count())


@pytest.mark.parametrize("kind", list(KINDS))
def test_prediction_columns_agree_with_predictions_and_probabilities(kind):
    task = Task("t", kind, num_outputs=3, class_names=None)
    output = torch.randn(20, task.num_outputs, generator=torch.Generator().manual_seed(5))
    columns = task.spec.columns(task, output, scaling=(10.0, 2.0), all_probabilities=True)
    prob = task.probabilities(output)
    if prob is None:  # a value in the original units
        assert np.allclose(columns["t"], task.predict(output).numpy() * 2.0 + 10.0)
        return
    if kind == "multilabel":
        for j in range(task.num_outputs):
            assert np.array_equal(columns[f"t={j}"], task.predict(output)[:, j].numpy())
            assert np.allclose(columns[f"t={j}_probability"], prob[:, j].numpy())
        return
    full = np.stack([columns[k] for k in columns if k.startswith("t_probability=")], axis=1)
    assert np.allclose(full.sum(1), 1.0, atol=1e-6)
    assert columns["t"] == task.predict(output).tolist() == full.argmax(1).tolist()
    assert np.allclose(columns["t_probability"], full.max(1))


def test_label_summaries_per_kind():
    regression = Task("r", "regression")
    target = torch.tensor([-1.0, float("nan"), 2.0])
    assert regression.spec.summary(regression, target, (10.0, 2.0)) == "range [8, 14]"
    binary = Task("b", "binary", class_names=["no", "yes"])
    assert binary.spec.summary(binary, torch.tensor([1, 0, 1, IGNORE_INDEX]), None) == (
        "classes no=1, yes=2"
    )
    tags = Task("t", "multilabel", 2, class_names=["x", "y"])
    target = torch.tensor([[1, 0], [1, IGNORE_INDEX]])
    assert tags.spec.summary(tags, target, None) == "positives x=2, y=0"
