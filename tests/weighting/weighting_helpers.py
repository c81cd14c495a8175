"""Shared fixtures of the weighting tests: the list of every strategy and a tiny trainer.

A new strategy joins every common test by adding one line to ``STRATEGIES``; gradient
aggregators are listed by the registry (``AGGREGATIONS``).
"""

from __future__ import annotations

import torch

from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.weighting import GradientEngine, StepContext, Weighting
from mtlkit.weighting.registry import AGGREGATIONS

# (registry name, options) — every registered strategy, with options making it deterministic
STRATEGIES: list[tuple[str, dict]] = [
    ("ew", {}),
    ("fixed", {"weights": [1.0, 0.5, 2.0]}),
    ("uw", {}),
    ("dwa", {}),
    ("gradnorm", {"alpha": 1.5, "lr": 0.01}),
    ("rlw", {"seed": 1}),
    ("gls", {}),
    ("famo", {}),
    ("db_mtl", {}),
    ("mean", {}),
    ("sum", {}),
    ("mgda", {}),
    ("mgda_ub", {}),
    ("pcgrad", {"seed": 1}),
    ("gradvac", {"seed": 1}),
    ("graddrop", {"seed": 1}),
    ("cagrad", {"c": 0.5}),
    ("imtl_g", {}),
    ("nash_mtl", {}),
    ("aligned_mtl", {}),
    ("upgrad", {}),
    ("dualproj", {}),
]

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
    """A local loop following the trainer's call contract; returns the summed loss per step."""
    model, tasks, x, y = make_problem(arch, seed, num_tasks=NUM_TASKS)
    engine = engine or GradientEngine()
    groups = [{"params": list(model.parameters())}]
    extra = list(strategy.parameters())
    if extra:
        groups.append({"params": extra})
    optimizer = torch.optim.SGD(groups, lr=lr)
    history = []
    for step in range(steps):
        if arch == "hps" and representation:
            rep = model.encode(x)
            out = {name: head(rep) for name, head in model.heads.items()}
        else:
            rep = None
            out = model(x)
        losses = torch.stack([t.weight * t.compute_loss(out[t.name], y[t.name]) for t in tasks])
        optimizer.zero_grad()
        ctx = StepContext(
            shared_params=list(model.shared_parameters()),
            task_params=list(model.task_specific_parameters()),
            engine=engine,
            step=step,
            epoch=step // 10,
            representation=rep,
        )
        weights = strategy.backward(losses, ctx)
        assert weights.shape == (NUM_TASKS,)
        if clip is not None:  # as the trainer may do
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        history.append(float(losses.detach().sum()))
        if step % 10 == 9:
            strategy.on_epoch_end(losses.detach())
    return history
