"""Mean and Sum: the plain average or sum of the task gradients, as Gramian weightings."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mtlkit.weighting.base import GramianWeighting


class _Constant(GramianWeighting):
    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def _value(self, num_tasks: int) -> float:
        raise NotImplementedError

    needs_gramian = False

    def forward(self, gramian: Tensor | None, losses: Tensor | None = None) -> Tensor:
        like = gramian if gramian is not None else losses
        if like is None:
            raise ValueError(f"{type(self).__name__}: needs the Gramian or the losses")
        t = like.shape[0]
        return torch.full((t,), self._value(t), dtype=like.dtype, device=like.device)


class Mean(_Constant):
    """``d = (1/T) Σₜ gₜ`` (weights ``1/T``)."""

    def _value(self, num_tasks: int) -> float:
        return 1.0 / num_tasks


class Sum(_Constant):
    """``d = Σₜ gₜ`` (weights 1): the gradient of the plain sum, i.e. equal weighting."""

    def _value(self, num_tasks: int) -> float:
        return 1.0
