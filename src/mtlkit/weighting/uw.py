"""Uncertainty weighting (UW): learn one homoscedastic log-variance per task."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import torch
from torch import Tensor, nn

from mtlkit._param_validation import Interval
from mtlkit.weighting.base import LossWeighting


def uncertainty_objective(losses: Tensor, log_vars: Tensor) -> Tensor:
    """``Σₜ ½ exp(−sₜ) Lₜ + ½ sₜ`` with ``sₜ = log σₜ²``; minimised over ``sₜ`` at
    ``sₜ* = log Lₜ`` (for fixed positive losses)."""
    return (0.5 * torch.exp(-log_vars) * losses + 0.5 * log_vars).sum()


class UncertaintyWeighting(LossWeighting):
    """Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", CVPR 2018 (regression form, as in LibMTL).

    ``w = ½ exp(−s)`` and :func:`mtlkit.mtl_backward` adds the :meth:`penalty` ``½ Σₜ sₜ``, so
    ``log_vars`` (an ``nn.Parameter``, initial value ``init``, default −0.5 as LibMTL's
    ``loss_scale``; the paper gives none) receives the gradient of
    :func:`uncertainty_objective`: hand ``strategy.parameters()`` to the optimizer (the trainer
    does), e.g. ``torch.optim.Adam([*model.parameters(), *strategy.parameters()])``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "init": [Interval(Real, None, None)],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"log_vars": (0,)}

    def __init__(self, num_tasks: int, init: float = -0.5) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.log_vars = nn.Parameter(torch.full((num_tasks,), float(init)))

    def forward(self, losses: Tensor) -> Tensor:
        """``wₜ = ½ exp(−sₜ)``, differentiable in ``s``."""
        return (0.5 * torch.exp(-self.log_vars)).to(losses)

    def penalty(self) -> Tensor:
        """``½ Σₜ sₜ``."""
        return 0.5 * self.log_vars.sum()
