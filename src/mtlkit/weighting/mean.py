"""Mean and Sum: the plain average or sum of the task gradients, as Gramian weightings."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit.weighting.base import GramianWeighting, StepContext


class _Constant(GramianWeighting):
    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def _value(self, num_tasks: int) -> float:
        raise NotImplementedError

    def weights_from_gramian(self, gramian: Tensor) -> Tensor:
        t = gramian.shape[0]
        return torch.full((t,), self._value(t), dtype=gramian.dtype, device=gramian.device)

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        # The weights do not depend on G, so no Jacobian is computed.
        t = losses.shape[0]
        weights = torch.full_like(losses, self._value(t)).detach()
        (weights * losses).sum().backward()
        return weights


class Mean(_Constant):
    """``d = (1/T) Σₜ gₜ`` (weights ``1/T``)."""

    def _value(self, num_tasks: int) -> float:
        return 1.0 / num_tasks


class Sum(_Constant):
    """``d = Σₜ gₜ`` (weights 1): the gradient of the plain sum, i.e. equal weighting."""

    def _value(self, num_tasks: int) -> float:
        return 1.0
