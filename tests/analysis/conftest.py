"""Fixtures of the relatedness tests: a tiny HPS trainer factory."""

from __future__ import annotations

import pytest
import torch

from mtlkit.data import MultiTaskDataset, make_loader
from mtlkit.models import make_encoder, make_model
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions
from mtlkit.weighting import GradientEngine


def tiny_trainer(num_tasks=3, n=64, features=6, hidden=8, dropout=0.0, seed=0, lr=0.05, **kw):
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", "regression") for i in range(num_tasks)]
    x = torch.randn(n, features)
    targets = {t.name: x @ torch.randn(features) for t in tasks}
    model = make_model(
        "hps",
        lambda: make_encoder("mlp", (features,), hidden=[hidden], dropout=dropout),
        tasks,
    )
    kw.setdefault("engine", GradientEngine(method="loop"))  # no vmap warm-up in tiny tests
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    trainer = Trainer(
        model, tasks, optimizer=optimizer, options=TrainingOptions(progress=False), **kw
    )
    data = MultiTaskDataset(x, targets)
    return trainer, data, make_loader(data, 16, seed=seed)


@pytest.fixture
def tiny():
    """``tiny(num_tasks=3, ...) -> (trainer, dataset, loader)``."""
    return tiny_trainer
