"""An undefined (NaN) monitored validation value never counts as an improvement."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from mtlkit.data import MultiTaskDataset
from mtlkit.models import SharedTrunk
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions

TASKS = [Task("cls", "binary")]


def _data(n: int, positives: bool, seed: int = 0) -> MultiTaskDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] > 0).long() if positives else torch.zeros(n, dtype=torch.long)
    return MultiTaskDataset(x, {"cls": y})


def _trainer() -> Trainer:
    torch.manual_seed(0)
    model = SharedTrunk(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), heads={"cls": nn.Linear(6, 1)})
    return Trainer(
        model,
        TASKS,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        options=TrainingOptions(progress=False, batch_size=16, monitor="cls:recall"),
    )


def test_a_monitor_that_is_always_undefined_keeps_no_best_epoch_and_runs_out_of_patience(caplog):
    trainer = _trainer()
    with caplog.at_level(logging.WARNING, logger="mtlkit.tasks.metrics"):
        history = trainer.fit(_data(64, True), _data(32, False, 1), epochs=6, patience=2)
    assert "task 'cls': recall undefined (no labelled row is positive)" in caplog.text
    assert all(math.isnan(record["score"]) for record in history.epochs)
    assert history.best_epoch == -1 and math.isnan(history.best_score)
    assert trainer.best_state is None  # restore_best keeps the final weights
    assert history.stopped_early and len(history.epochs) == 2


def test_an_undefined_epoch_after_a_defined_one_does_not_replace_the_best():
    trainer = _trainer()
    trainer.fit(_data(64, True), _data(32, True, 1), epochs=2)
    best_epoch, best_score = trainer.history.best_epoch, trainer.history.best_score
    trainer.fit(_data(64, True), _data(32, False, 1), epochs=4)
    assert (trainer.history.best_epoch, trainer.history.best_score) == (best_epoch, best_score)


def test_the_epoch_line_prints_an_undefined_value_and_no_best_as_missing():
    from mtlkit.training.console import epoch_line

    record = {"epoch": 1, "train_loss": {"cls": 0.5}, "val": {}, "score": math.nan, "seconds": 1}
    line = epoch_line(record, 3, "cls:recall", 1.0, (math.nan, -1), 2.0)
    assert "val cls:recall - (best -)" in line
    line = epoch_line(record, 3, "cls:recall", 1.0, (0.75, 1), 2.0)
    assert "val cls:recall - (best 0.75 @1)" in line
