"""The training step reads no device value on the host (no CUDA sync per step).

Run on the ``meta`` device, where every read of a tensor's value on the host (``.item()``,
``bool()``, ``.cpu()``, ``.tolist()``) raises: a step that completes there reads nothing back,
so on CUDA it waits for nothing. The values a step needs on the host (which tasks have labels,
the embedding codes' range) are read from the CPU batch before it is moved.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlkit.data import EmbeddingSpec, MultiTaskDataset, make_loader
from mtlkit.models import make_encoder, make_model
from mtlkit.models.inputs import TabularInput, WithInputLayer
from mtlkit.tasks import IGNORE_INDEX, Task
from mtlkit.training import NonFiniteLossError, Trainer, TrainingOptions
from mtlkit.weighting import make_weighting, mtl_backward

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class UnmaskedTask(Task):
    """A regression task whose loss does not mask missing targets: a NaN target gives a NaN
    loss (for the non-finite checks below)."""

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction.reshape(target.shape), target)


TASKS = [UnmaskedTask("a", "regression"), UnmaskedTask("b", "regression")]
SPECS = [EmbeddingSpec("city", 5, 2)]


def _model(embedded: bool):
    if not embedded:
        return make_model("hps", lambda: make_encoder("mlp", (4,), hidden=[8]), TASKS)
    layer = TabularInput(4, SPECS)
    model = make_model("hps", lambda: make_encoder("mlp", (layer.out_features,), hidden=[8]), TASKS)
    return WithInputLayer(model, layer)


def _batch(n: int = 16, seed: int = 0, embedded: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    if embedded:
        x = torch.cat([x, torch.randint(0, 5, (n, 1), generator=g).float()], dim=1)
    return x, {t.name: torch.randn(n, generator=g) for t in TASKS}


def _meta_trainer(embedded: bool = False, **options) -> Trainer:
    trainer = Trainer(
        _model(embedded), TASKS, options=TrainingOptions(progress=False, **options), device="meta"
    )
    trainer._lagged_finite_check = True  # as on CUDA
    return trainer


@pytest.mark.parametrize("embedded", [False, True], ids=["dense", "embedded codes"])
@pytest.mark.parametrize("mode", ["joint", "alternating"])
def test_train_step_reads_no_device_value(embedded, mode):
    trainer = _meta_trainer(embedded, mode=mode)
    for step in range(3):
        trainer.train_step(*_batch(embedded=embedded))
        # the one read a step leaves behind: its losses' finiteness, at the next step's check
        assert trainer._pending_check is not None and trainer._pending_check.step == step
        trainer._pending_check = None
    assert trainer._weight_sum.device.type == "meta"


MASKED_TASKS = [
    Task("r", "regression", 2),
    Task("b", "binary", class_weight=[1.0, 3.0]),
    Task("m", "multiclass", 3),
    Task("l", "multilabel", 2, pos_weight=2.0),
]


def _masked_batch(n: int = 16, seed: int = 0, absent: str | None = None):
    """A batch whose targets miss labels: NaN regression entries, ``IGNORE_INDEX`` classes and
    multilabel entries, on about a third of the rows; task ``absent`` has no label at all."""
    g = torch.Generator().manual_seed(seed)
    targets = {
        "r": torch.randn(n, 2, generator=g),
        "b": torch.randint(0, 2, (n,), generator=g),
        "m": torch.randint(0, 3, (n,), generator=g),
        "l": torch.randint(0, 2, (n, 2), generator=g),
    }
    for task in MASKED_TASKS:
        y = targets[task.name]
        drop = torch.rand(y.shape, generator=g) < (1.0 if task.name == absent else 0.3)
        marker = math.nan if task.kind == "regression" else IGNORE_INDEX
        targets[task.name] = torch.where(drop, torch.full_like(y, marker), y)
    return torch.randn(n, 4, generator=g), targets


@pytest.mark.parametrize("absent", [None, "m"], ids=["all tasks", "one task without labels"])
def test_a_step_on_a_batch_with_missing_labels_reads_no_device_value(absent):
    model = make_model("hps", lambda: make_encoder("mlp", (4,), hidden=[8]), MASKED_TASKS)
    trainer = Trainer(model, MASKED_TASKS, options=TrainingOptions(progress=False), device="meta")
    trainer._lagged_finite_check = True  # as on CUDA
    for step in range(2):
        losses = trainer.train_step(*_masked_batch(seed=step, absent=absent))
        assert losses is not None and losses.device.type == "meta"
        trainer._pending_check = None
    assert all(p.grad is not None for p in model.heads["r"].parameters())
    absent_grads = [p.grad for p in model.heads["m"].parameters()]
    assert (
        all(g is None for g in absent_grads) if absent else all(g is not None for g in absent_grads)
    )


def test_an_epoch_reads_device_values_only_at_its_end(monkeypatch):
    trainer = _meta_trainer()
    monkeypatch.setattr(trainer, "check_pending_losses", lambda: None)  # tested below
    x, y = _batch(64)
    steps = []
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        trainer.train_epoch(
            make_loader(MultiTaskDataset(x, y), 16), on_step_end=lambda t: steps.append(t.step)
        )
    assert steps == [1, 2, 3, 4]  # every step ran; the epoch's mean losses are the first read


@pytest.mark.parametrize("device", DEVICES)
def test_weight_sum_stays_on_the_device_and_is_saved_on_the_cpu(device):
    torch.manual_seed(0)
    trainer = Trainer(_model(False), TASKS, options=TrainingOptions(progress=False), device=device)
    x, y = _batch(64)
    states = []
    trainer.fit(
        make_loader(MultiTaskDataset(x, y), 16),
        epochs=1,
        on_step_end=lambda t: states.append(t.state_dict()) if t.step == 2 else None,
    )
    assert trainer._weight_sum.device == trainer.device
    assert trainer.epoch_task_weights() == {"a": 1.0, "b": 1.0}  # EW over the 4 steps
    weight_sum, count = states[0]["weight_sum"]
    assert weight_sum.device.type == "cpu" and count == 2
    torch.testing.assert_close(weight_sum, torch.full((2,), 2.0), rtol=0, atol=0)
    partial = states[0]["epoch_partial"]
    assert partial["totals"].device.type == "cpu" and partial["counts"].tolist() == [2.0, 2.0]

    resumed = Trainer(_model(False), TASKS, options=TrainingOptions(progress=False), device=device)
    resumed.load_state_dict(states[0])
    assert resumed._weight_sum.device == resumed.device
    assert resumed._partial is not None and resumed._partial.totals.device == resumed.device
    again = resumed.state_dict()
    assert torch.equal(again["weight_sum"][0], weight_sum) and again["weight_sum"][1] == 2
    assert torch.equal(again["epoch_partial"]["totals"], partial["totals"])
    assert again["epoch_partial"]["totals"] is not resumed._partial.totals  # a copy


def test_saved_weight_sum_is_a_copy_that_later_steps_leave_alone():
    trainer = Trainer(_model(False), TASKS, options=TrainingOptions(progress=False))
    trainer.train_step(*_batch())
    saved = trainer.state_dict()["weight_sum"][0]
    trainer.train_step(*_batch(seed=1))
    assert saved.tolist() == [1.0, 1.0]


def _nan_at(step: int, n: int = 4):
    """``n`` batches; task b's target is NaN in batch ``step``."""
    batches = [_batch(seed=s) for s in range(n)]
    batches[step][1]["b"][3] = float("nan")
    return batches


def _lagged_trainer(device: str) -> Trainer:
    trainer = Trainer(_model(False), TASKS, options=TrainingOptions(progress=False), device=device)
    assert trainer._lagged_finite_check == (device == "cuda")
    trainer._lagged_finite_check = True  # on the CPU as on CUDA, where reading at once syncs
    return trainer


@pytest.mark.parametrize("device", DEVICES)
def test_a_lagged_non_finite_loss_is_raised_at_the_next_step_naming_its_step(device):
    trainer = _lagged_trainer(device)
    batches = _nan_at(1)
    trainer.train_step(*batches[0])
    trainer.train_step(*batches[1])  # its losses are read at the next check
    with pytest.raises(NonFiniteLossError, match=r"task 'b': non-finite loss at epoch 1, step 1"):
        trainer.train_step(*batches[2])


@pytest.mark.parametrize("device", DEVICES)
def test_no_state_is_taken_after_a_lagged_non_finite_loss(device):
    trainer = _lagged_trainer(device)
    trainer.train_step(*_nan_at(0)[0])
    with pytest.raises(NonFiniteLossError, match="task 'b'.*step 0"):
        trainer.state_dict()


@pytest.mark.parametrize("device", DEVICES)
def test_a_non_finite_loss_in_an_epochs_last_batch_stops_the_epoch(device):
    trainer = _lagged_trainer(device)
    with pytest.raises(NonFiniteLossError, match="task 'b'.*epoch 1, step 3"):
        trainer.train_epoch(_nan_at(3))
    assert trainer.history.epochs == []


def test_skipping_non_finite_batches_reads_each_step_at_once():
    trainer = Trainer(
        _model(False), TASKS, options=TrainingOptions(progress=False, on_nonfinite="skip")
    )
    assert not trainer._lagged_finite_check
    trainer.train_epoch(_nan_at(1))
    assert trainer.skipped_batches == 1 and trainer.step == 3


def test_an_out_of_range_code_in_a_cpu_batch_names_the_column_before_the_move():
    trainer = _meta_trainer(embedded=True)
    x, y = _batch(embedded=True)
    x[7, 4] = 5.0
    with pytest.raises(ValueError, match=r"input column 'city': code 5 \(batch row 7\)"):
        trainer.train_step(x, y)


def _losses_with_absent_tasks(device: str) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """Four task losses on one shared representation; tasks 1 and 3 absent (``None``)."""
    torch.manual_seed(0)
    trunk = torch.nn.Linear(3, 4).to(device)
    heads = [torch.nn.Linear(4, 1).to(device) for _ in range(4)]
    z = trunk(torch.randn(8, 3, device=device))
    losses = [head(z).pow(2).mean() for head in heads]
    losses[1] = losses[3] = None
    return losses, z


def test_mtl_backward_returns_the_present_tasks_weights_in_task_order():
    losses, z = _losses_with_absent_tasks("cpu")
    strategy = make_weighting("fixed", 4, weights=[1.0, 2.0, 3.0, 4.0])
    weights = mtl_backward(losses, strategy, features=z)
    assert weights.tolist() == [1.0, 0.0, 3.0, 0.0] and not weights.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mtl_backward_with_absent_tasks_does_not_sync_on_cuda():
    losses, z = _losses_with_absent_tasks("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        weights = mtl_backward(losses, "ew", features=z)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("device", DEVICES)
def test_a_lagged_non_finite_loss_stops_accumulation_before_its_update(device):
    trainer = Trainer(
        _model(False),
        TASKS,
        options=TrainingOptions(progress=False, accumulate=2),
        device=device,
    )
    trainer._lagged_finite_check = True
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(NonFiniteLossError, match="task 'b'.*epoch 1, step 0"):
        trainer.train_epoch(_nan_at(0))  # the first micro-batch of the first step
    assert trainer.step == 0  # checked at the second micro-batch: no update took the NaN
    for p, p0 in zip(trainer.model.parameters(), before):
        assert torch.equal(p.detach(), p0)
