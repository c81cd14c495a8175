"""The contract every multi-task model follows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from torch import Tensor, nn

from mtlkit.tasks import Task

Inputs = Tensor | Mapping[str, Tensor]
"""One input tensor shared by all tasks, or one input per task (multi-input data)."""

EncoderFactory = Callable[[], nn.Module]
"""Builds a fresh encoder (with an ``out_features`` attribute) each time it is called."""


def make_head(in_features: int, task: Task, hidden: int | None = None) -> nn.Module:
    """A task head: ``Linear`` (or ``Linear → ReLU → Linear``) onto ``task.num_outputs``."""
    if hidden:
        return nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, task.num_outputs)
        )
    return nn.Linear(in_features, task.num_outputs)


class MultiTaskModel(nn.Module):
    """A model with one output per task.

    ``forward(x)`` returns ``{task name: raw output}``. With multi-input data ``x`` is a mapping
    ``{task name: input}`` and only the tasks present are computed.

    Parameters are split into *shared* ones (receiving gradients from several tasks, combined by
    the weighting strategy) and *task-specific* ones (receiving their own task's gradient only).
    """

    tasks: Sequence[Task]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def task_specific_parameters(self) -> Iterator[nn.Parameter]:
        shared = {id(p) for p in self.shared_parameters()}
        return (p for p in self.parameters() if id(p) not in shared)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        raise NotImplementedError
