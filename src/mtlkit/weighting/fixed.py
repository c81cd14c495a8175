"""Fixed user weights: ``update = ∇ Σₜ cₜ αₜLₜ`` with constants cₜ given in the config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit.weighting.base import LossWeighting


class FixedWeighting(LossWeighting):
    """Constant per-task multipliers ``weights`` (one per task, non-negative)."""

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "weights": [list, tuple],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"fixed": (0,)}

    def __init__(self, num_tasks: int, weights: Sequence[float]) -> None:
        super().__init__()
        if len(weights) != num_tasks:
            raise ValueError(f"weighting.weights: expected {num_tasks} values, got {len(weights)}")
        if any(w < 0 for w in weights):
            raise ValueError("weighting.weights: every weight must be >= 0")
        self.register_buffer("fixed", torch.tensor([float(w) for w in weights]))

    def forward(self, losses: Tensor) -> Tensor:
        return self.fixed.to(losses)
