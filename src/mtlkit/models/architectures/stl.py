"""Single-task learning (STL): an independent model of the same shape for every task.

The baseline that multi-task models are compared against (Δm). Nothing is shared, so every
weighting strategy reduces to training each task on its own loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from numbers import Integral
from typing import ClassVar

from torch import nn

from mtlkit._param_validation import Interval
from mtlkit.models.base import EncoderFactory, Inputs, MultiTaskModel, make_head
from mtlkit.tasks import Task


class SingleTaskModels(MultiTaskModel):
    """``outputₜ = headₜ(encoderₜ(x))`` with one encoder per task."""

    independent_tasks: ClassVar[bool] = True

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "head_hidden": [Interval(Integral, 1, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.models.make_model`)."""

    def __init__(
        self, encoder_factory: EncoderFactory, tasks: Sequence[Task], head_hidden: int | None = None
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.encoders = nn.ModuleDict({t.name: encoder_factory() for t in self.tasks})
        self.heads = nn.ModuleDict(
            {
                t.name: make_head(self.encoders[t.name].out_features, t, head_hidden)
                for t in self.tasks
            }
        )

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def last_shared_modules(self) -> list[nn.Module]:
        return []

    def forward(self, x: Inputs) -> dict:
        items = x.items() if isinstance(x, Mapping) else ((name, x) for name in self.encoders)
        return {name: self.heads[name](self.encoders[name](xt)) for name, xt in items}


def build_stl(
    encoder_factory: EncoderFactory, tasks: Sequence[Task], head_hidden: int | None = None
) -> SingleTaskModels:
    return SingleTaskModels(encoder_factory, tasks, head_hidden=head_hidden)
