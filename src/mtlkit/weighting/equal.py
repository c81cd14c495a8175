"""Equal weighting (EW): ``update = ∇ Σₜ αₜLₜ`` with the tasks' fixed weights αₜ."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mtlkit.weighting.base import LossWeighting


class EqualWeighting(LossWeighting):
    """Every (already α-weighted) loss counts once: wₜ = 1.

    With the tasks' ``weight`` fields this is the fixed-weight objective Σₜ αₜLₜ.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    sums_losses = True

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, losses: Tensor) -> Tensor:
        return torch.ones_like(losses)
