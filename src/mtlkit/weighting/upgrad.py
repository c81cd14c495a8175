"""UPGrad: the mean of the task gradients each projected onto the dual cone."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit.weighting._qp import project_dual_cone, to_numpy
from mtlkit.weighting.base import GramianWeighting


def upgrad_weights(gramian: Tensor) -> Tensor:
    """``w = (1/T) Σᵢ vᵢ`` with ``vᵢ = argmin_{v ≥ eᵢ} vᵀ G v``.

    ``Jᵀvᵢ`` is the projection of ``gᵢ`` onto the dual cone ``{x : Jx ≥ 0}``, so the result
    ``Jᵀw`` never conflicts with any task gradient.
    """
    t = gramian.shape[0]
    v = project_dual_cone(to_numpy(gramian), np.eye(t))
    return torch.as_tensor(v.mean(axis=0), dtype=gramian.dtype, device=gramian.device)


class UPGrad(GramianWeighting):
    """Unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for
    Multi-Objective Optimization", 2024, arXiv:2406.16232).

    ``A(J) = (1/T) Σᵢ π_J(gᵢ)``, ``π_J(x) = argmin_{y : Jy ≥ 0} ‖y − x‖``. Each projection is a
    T × T non-negative least-squares problem on the Gramian (SciPy, exact active set).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return upgrad_weights(gramian)
