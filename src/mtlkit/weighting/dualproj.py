"""DualProj: the mean task gradient projected onto the dual cone."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit.weighting._qp import project_dual_cone, to_numpy
from mtlkit.weighting.base import GramianWeighting


def dualproj_weights(gramian: Tensor) -> Tensor:
    """``w = argmin_{v ≥ 1/T} vᵀ G v``: ``Jᵀw = π_J(ḡ)``, the projection of the mean gradient
    ``ḡ = (1/T) Σ gₜ`` onto the dual cone ``{x : Jx ≥ 0}``."""
    t = gramian.shape[0]
    v = project_dual_cone(to_numpy(gramian), np.full(t, 1.0 / t))
    return torch.as_tensor(v, dtype=gramian.dtype, device=gramian.device)


class DualProj(GramianWeighting):
    """Projection of the mean gradient onto the dual cone of the task gradients (Quinton & Rey,
    2024, arXiv:2406.16232; the same projection as in GEM, Lopez-Paz & Ranzato, 2017).

    ``A(J) = π_J((1/T) Σₜ gₜ)``; a T × T non-negative least-squares problem (SciPy).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return dualproj_weights(gramian)
