"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mtlkit.weighting._qp import min_norm_simplex, to_numpy
from mtlkit.weighting.base import GramianWeighting


def mgda_weights(gramian: Tensor) -> Tensor:
    """``w* = argmin_{w ∈ Δ_T} wᵀ G w``, so that ``Jᵀw*`` is the min-norm point of conv{gₜ}.

    Solved exactly (not by Frank–Wolfe) as a least-distance program, see
    :func:`mtlkit.weighting._qp.min_norm_simplex`. The weights sum to 1.
    """
    w = min_norm_simplex(to_numpy(gramian))
    return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


class MGDA(GramianWeighting):
    """Multiple-gradient descent (Désidéri, 2012; Sener & Koltun, NeurIPS 2018).

    ``d = Jᵀw*``, ``w* = argmin_{w ∈ Δ} ‖Jᵀw‖²``: the common descent direction of minimum norm
    (``dᵀgₜ ≥ ‖d‖²`` for every task). ``mgda_ub`` is the same weighting computed from the
    gradients with respect to the shared representation (MGDA-UB, the paper's upper bound).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return mgda_weights(gramian)
