"""Shared fixtures of the weighting tests: the list of every strategy and a tiny trainer.

Every list comes from the registry: a new strategy joins every common test by its registry
line (plus, if it needs options or a seed, one entry in ``OPTIONS``).
"""

from __future__ import annotations

import torch

from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.weighting import GradientEngine, Weighting, mtl_backward
from mtlkit.weighting.registry import AGGREGATIONS, WEIGHTINGS

# options a strategy needs (or that make it deterministic); every other one runs with defaults
OPTIONS: dict[str, dict] = {
    "fixed": {"weights": [1.0, 0.5, 2.0]},
    "gradnorm": {"alpha": 1.5, "lr": 0.01},
    "rlw": {"seed": 1},
    "pcgrad": {"seed": 1},
    "gradvac": {"seed": 1},
    "graddrop": {"seed": 1},
    "cagrad": {"c": 0.5},
}

# (registry name, options) — every registered strategy
STRATEGIES: list[tuple[str, dict]] = [(name, OPTIONS.get(name, {})) for name in WEIGHTINGS]

# gradient aggregators accepted by mtlkit.weighting.aggregate
AGGREGATORS = list(AGGREGATIONS)

# gradient strategies whose definition does not depend on the order of the tasks
PERMUTATION_INVARIANT = [
    "mean",
    "sum",
    "mgda",
    "imtl_g",
    "nash_mtl",
    "aligned_mtl",
    "upgrad",
    "dualproj",
    "cagrad",
]

NUM_TASKS = 3


def make_problem(arch: str, seed: int = 0, num_tasks: int = NUM_TASKS, n: int = 64):
    """A tiny regression problem with conflicting tasks and a model of architecture ``arch``."""
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", "regression") for i in range(num_tasks)]
    model = make_model(arch, lambda: MLP(6, hidden=(16,)), tasks)
    x = torch.randn(n, 6)
    w = torch.randn(6, num_tasks)
    y = {t.name: (x @ w[:, i : i + 1]) * (i + 1) / 6**0.5 for i, t in enumerate(tasks)}
    return model, tasks, x, y


def forward(model, x, arch: str, representation: bool = True):
    """``(representation, outputs)``; the representation only for HPS (else ``None``)."""
    if arch == "hps" and representation:
        rep = model.encode(x)
        return rep, {name: head(rep) for name, head in model.heads.items()}
    return None, model(x)


def model_backward(model, losses, strategy, features, engine: GradientEngine):
    """:func:`mtl_backward` on the loss vector ``losses`` as the trainer calls it (the model's
    parameter split passed in)."""
    return mtl_backward(
        list(losses.unbind()),
        strategy,
        features=features,
        shared_params=list(model.shared_parameters()),
        task_params=list(model.task_specific_parameters()),
        last_shared_params=list(model.last_shared_parameters()),
        engine=engine,
    )


def train(
    strategy: Weighting,
    arch: str,
    steps: int = 30,
    lr: float = 0.1,
    clip: float | None = None,
    seed: int = 0,
    representation: bool = True,
    engine: GradientEngine | None = None,
):
    """A custom loop calling :func:`mtl_backward` as the trainer does (FAMO's ``after_step``
    included); returns the summed loss per step."""
    model, tasks, x, y = make_problem(arch, seed, num_tasks=NUM_TASKS)
    engine = engine or GradientEngine()
    groups = [{"params": list(model.parameters())}]
    extra = list(strategy.parameters())
    if extra:
        groups.append({"params": extra})
    optimizer = torch.optim.SGD(groups, lr=lr)
    history = []
    for step in range(steps):
        rep, out = forward(model, x, arch, representation)
        losses = torch.stack([t.weight * t.compute_loss(out[t.name], y[t.name]) for t in tasks])
        optimizer.zero_grad()
        weights = model_backward(model, losses, strategy, rep, engine)
        assert weights.shape == (NUM_TASKS,)
        if clip is not None:  # as the trainer may do
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if strategy.wants_losses_after_step:
            with torch.no_grad():
                out = model(x)
                after = torch.stack(
                    [t.weight * t.compute_loss(out[t.name], y[t.name]) for t in tasks]
                )
            strategy.after_step(losses.detach(), after)
        history.append(float(losses.detach().sum()))
        if step % 10 == 9:
            strategy.on_epoch_end(losses.detach())
    return history
