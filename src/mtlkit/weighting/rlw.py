"""Random loss weighting (RLW): fresh random weights every step."""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting._random import SeededMixin
from mtlkit.weighting.base import LossWeighting


class RandomLossWeighting(SeededMixin, LossWeighting):
    """Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task
    Learning", TMLR 2022: ``w = softmax(z)``, ``z ~ N(0, I_T)``, drawn every step from the
    strategy's seeded generator (the weights sum to 1, as in the paper)."""

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "seed": [Interval(Integral, None, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int, seed: int | None = 0) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self._init_generator(seed)

    def forward(self, losses: Tensor) -> Tensor:
        """A fresh draw (each call advances the generator)."""
        z = torch.randn(losses.shape[0], generator=self.generator, dtype=torch.float64)
        return torch.softmax(z, dim=0).to(losses)
