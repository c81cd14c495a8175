"""Geometric loss strategy (GLS): minimise the geometric mean of the losses."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mtlkit.weighting.base import LossWeighting


def geometric_loss(losses: Tensor) -> Tensor:
    """``(Πₜ Lₜ)^{1/T} = exp(mean log Lₜ)``; its gradient is ``Σₜ wₜ∇Lₜ`` with
    ``wₜ = (Πₛ Lₛ)^{1/T} / (T Lₜ)``. Losses are clamped at 1e-12 (it needs ``Lₜ > 0``)."""
    return torch.exp(torch.log(losses.clamp(min=1e-12)).mean())


class GeometricLoss(LossWeighting):
    """Chennupati et al., "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss
    Strategy for Multi-Task Learning", CVPR Workshops 2019."""

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, losses: Tensor) -> Tensor:
        """``wₜ = (Πₛ Lₛ)^{1/T} / (T Lₜ)``: ``Σ wₜ∇Lₜ`` is the geometric mean's gradient."""
        losses = losses.detach().clamp(min=1e-12)
        return geometric_loss(losses) / (losses.shape[0] * losses)
