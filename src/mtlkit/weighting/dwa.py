"""Dynamic weight average (DWA): weigh tasks by how slowly their loss decreased."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting.base import LossWeighting


def dwa_weights(previous: Tensor, before_previous: Tensor, temperature: float = 2.0) -> Tensor:
    """``wₜ = T · softmax(rₜ / τ)`` with ``rₜ = Lₜ(e−1) / Lₜ(e−2)`` (mean epoch losses)."""
    ratio = previous / before_previous.clamp(min=1e-12)
    return previous.shape[0] * torch.softmax(ratio / temperature, dim=0)


class DWA(LossWeighting):
    """Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.

    Weights are 1 during the first two epochs; afterwards they are recomputed from the mean
    epoch losses given to :meth:`on_epoch_end` (buffers ``history`` and ``epochs_seen``). In a
    custom loop, call ``strategy.on_epoch_end(mean_losses)`` after every epoch (the trainer
    does).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"history": (1,)}

    def __init__(self, num_tasks: int, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"dwa.temperature must be > 0, got {temperature}")
        self.num_tasks = num_tasks
        self.temperature = temperature
        self.register_buffer("history", torch.ones(2, num_tasks, dtype=torch.float64))
        self.register_buffer("epochs_seen", torch.tensor(0))

    def forward(self, losses: Tensor) -> Tensor:
        if int(self.epochs_seen) < 2:
            return torch.ones_like(losses)
        return dwa_weights(self.history[1], self.history[0], self.temperature).to(losses)

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        self.history[0] = self.history[1].clone()
        self.history[1] = epoch_losses.detach().to(self.history)
        self.epochs_seen += 1
