"""Mean and Sum: the plain average or sum of the task gradients, as Gramian weightings."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit.weighting.base import GramianWeighting


class _Constant(GramianWeighting):
    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def _value(self, num_tasks: int) -> float:
        raise NotImplementedError

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        t = gramian.shape[0]
        return torch.full((t,), self._value(t), dtype=gramian.dtype, device=gramian.device)


class Mean(_Constant):
    """``d = (1/T) Σₜ gₜ`` (weights ``1/T``)."""

    def _value(self, num_tasks: int) -> float:
        return 1.0 / num_tasks


class Sum(_Constant):
    """``d = Σₜ gₜ`` (weights 1): the gradient of the plain sum, i.e. equal weighting."""

    def _value(self, num_tasks: int) -> float:
        return 1.0
