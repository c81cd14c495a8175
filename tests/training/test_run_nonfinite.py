"""``training.on_nonfinite: skip`` never trains an epoch on nothing, and logs are strict JSON."""

from __future__ import annotations

import json

import pytest
import torch

from mtlkit.data import BatchLoader, MultiTaskDataset
from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.training import NonFiniteLossError, Trainer, TrainingOptions
from mtlkit.training.checkpoint import strict_json


def _nan_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).pow(2).mean() * float("nan")


def _trainer(tasks: list[Task]) -> Trainer:
    model = make_model("hps", lambda: MLP(3, hidden=(4,)), tasks)
    return Trainer(
        model,
        tasks,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        options=TrainingOptions(progress=False, on_nonfinite="skip"),
    )


def _data(n: int = 24) -> MultiTaskDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return MultiTaskDataset(x, {"a": x[:, :1], "b": x[:, 1:2]})


def test_skip_stops_when_every_batch_of_an_epoch_was_skipped():
    tasks = [Task("a", "regression", loss=_nan_loss), Task("b", "regression")]
    trainer = _trainer(tasks)
    with pytest.raises(NonFiniteLossError, match=r"every batch of epoch 1 .*\(3 skipped\)"):
        trainer.fit(BatchLoader(_data(), 8, seed=0), epochs=2)
    assert trainer.epoch == 0 and trainer.skipped_batches == 3


def test_skip_keeps_training_when_some_batches_are_finite():
    calls = {"n": 0}

    def sometimes_nan(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = (prediction - target).pow(2).mean()
        return loss * float("nan") if calls["n"] % 3 == 1 else loss

    tasks = [Task("a", "regression", loss=sometimes_nan), Task("b", "regression")]
    trainer = _trainer(tasks)
    trainer.fit(BatchLoader(_data(), 8, seed=0), epochs=2)
    assert trainer.epoch == 2 and trainer.skipped_batches == 2


def test_strict_json_writes_null_for_nan_and_inf():
    text = strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": None}}
    assert "NaN" not in text and "Infinity" not in text
