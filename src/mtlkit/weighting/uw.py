"""Uncertainty weighting (UW): learn one homoscedastic log-variance per task."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlkit.weighting.base import LossWeighting


def uncertainty_objective(losses: Tensor, log_vars: Tensor) -> Tensor:
    """``Σₜ ½ exp(−sₜ) Lₜ + ½ sₜ`` with ``sₜ = log σₜ²``; minimised over ``sₜ`` at
    ``sₜ* = log Lₜ`` (for fixed positive losses)."""
    return (0.5 * torch.exp(-log_vars) * losses + 0.5 * log_vars).sum()


class UncertaintyWeighting(LossWeighting):
    """Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", CVPR 2018 (regression form, as in LibMTL).

    ``log_vars`` is an ``nn.Parameter`` (initial value ``init``): the trainer puts
    ``strategy.parameters()`` in the optimizer. Weights reported: ``½ exp(−sₜ)``.
    """

    def __init__(self, num_tasks: int, init: float = 0.0) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.log_vars = nn.Parameter(torch.full((num_tasks,), float(init)))

    def weights(self, losses: Tensor) -> Tensor:
        return (0.5 * torch.exp(-self.log_vars)).detach().to(losses)

    def combine(self, losses: Tensor, weights: Tensor | None = None) -> Tensor:
        return uncertainty_objective(losses, self.log_vars.to(losses.dtype))
