"""The contract every multi-task model follows."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import ClassVar

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


def last_layer(module: nn.Module, shared_ids: set[int]) -> list[nn.Parameter]:
    """The own parameters of the last submodule of ``module`` (registration order) that has
    shared parameters of its own."""
    for sub in reversed(list(module.modules())):
        own = [p for p in sub.parameters(recurse=False) if id(p) in shared_ids]
        if own:
            return own
    return []


def check_model(model: object) -> None:
    """Refuse a model that does not say which parameters are shared, pointing to the wrapper."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not callable(getattr(model, "shared_parameters", None)):
        raise TypeError(
            f"model: {type(model).__name__} does not say which parameters the tasks share; wrap "
            "your trunk and heads with mtlkit.models.SharedTrunk(trunk, heads={task: head, ...}) "
            "or subclass mtlkit.models.MultiTaskModel"
        )


class MultiTaskModel(nn.Module):
    """A model with one output per task.

    ``forward(x)`` returns ``{task name: raw output}``. With multi-input data ``x`` is a mapping
    ``{task name: input}`` and only the tasks present are computed.

    Parameters are split into *shared* ones (receiving gradients from several tasks, combined by
    the weighting strategy) and *task-specific* ones (receiving their own task's gradient only).
    """

    tasks: Sequence[Task]
    independent_tasks: ClassVar[bool] = False
    """Whether the tasks share nothing (STL): a table's embedding layer is then built inside each
    task's encoder instead of once in front of the model (see :mod:`mtlkit.models.inputs`)."""

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def task_specific_parameters(self) -> Iterator[nn.Parameter]:
        shared = {id(p) for p in self.shared_parameters()}
        return (p for p in self.parameters() if id(p) not in shared)

    def last_shared_modules(self) -> list[nn.Module]:
        """The shared modules whose outputs the task-specific part reads (per architecture)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define its last shared layer; name one (e.g. "
            "weighting option layer: 'encoder.fc2') or use layer: all"
        )

    def last_shared_parameters(self, layer: str | None = None) -> list[nn.Parameter]:
        """The *last shared layer*: the layer feeding the task-specific part (GradNorm measures
        ``‖∇Lₜ‖`` there). By default the last shared layer of each of
        :meth:`last_shared_modules` (HPS: the encoder's last layer; MMoE/CGC/PLE: every shared
        expert's last layer at the last level; cross-stitch: each column's last shared layer;
        MTAN: the shared encoder's); ``layer`` names a submodule instead (its shared parameters).
        """
        shared_ids = {id(p) for p in self.shared_parameters()}
        if layer is None:
            return [p for m in self.last_shared_modules() for p in last_layer(m, shared_ids)]
        names = [name for name, _ in self.named_modules() if name]
        if layer not in names:
            close = difflib.get_close_matches(layer, names, n=3)
            raise ValueError(
                f"weighting layer: {type(self).__name__} has no module {layer!r}"
                + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
            )
        params = [p for p in self.get_submodule(layer).parameters() if id(p) in shared_ids]
        if not params:
            raise ValueError(f"weighting layer: module {layer!r} has no shared parameter")
        return params

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Inputs) -> dict[str, Tensor]:
        raise NotImplementedError
