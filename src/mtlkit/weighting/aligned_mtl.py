"""Aligned-MTL: align the principal components of the task gradients."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from mtlkit._param_validation import Options
from mtlkit.weighting._qp import range_basis, to_numpy
from mtlkit.weighting.base import GramianWeighting

ScaleMode = Literal["min", "median", "rmse"]
_BAD_SCALE = "aligned_mtl.scale_mode: expected min, median or rmse, got {!r}"


def aligned_mtl_weights(gramian: Tensor, scale_mode: ScaleMode = "min") -> Tensor:
    """``w = B·(1/T)``, ``B = √σ V Λ⁻¹ᐟ² Vᵀ`` over the non-zero eigenpairs ``G = V Λ Vᵀ``.

    ``JᵀB`` has orthogonal rows of equal norm ``√σ`` (the condition number of the aligned
    system is 1); ``σ`` is the smallest (``min``), median (``median``) or mean (``rmse``)
    non-zero eigenvalue. The non-zero eigenpairs are those of ``G`` on its range ``Q``
    (:func:`~mtlkit.weighting._qp.range_basis`: the rank follows ``G``'s dtype, so a float32 ``G``
    of exactly dependent gradients gives the float64 result). A zero Gramian gives ``B = I``.
    """
    if scale_mode not in ("min", "median", "rmse"):
        raise ValueError(_BAD_SCALE.format(scale_mode))
    g = to_numpy(gramian)  # unit trace: w is invariant to the scale of G
    t = g.shape[0]
    pref = np.full(t, 1.0 / t)
    q = range_basis(g, gramian.dtype)
    lam, vec = np.linalg.eigh(q.T @ g @ q)
    keep = lam > 0
    if not keep.any():
        weights = pref
    else:
        lam, vec = lam[keep], q @ vec[:, keep]
        lower_median = np.sort(lam)[(len(lam) - 1) // 2]  # torch.median's, as the authors'
        sigma = {"min": lam.min(), "median": lower_median, "rmse": lam.mean()}[scale_mode]
        weights = np.sqrt(sigma) * (vec / np.sqrt(lam)) @ (vec.T @ pref)
    return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)


class AlignedMTL(GramianWeighting):
    """Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task
    Learning", CVPR 2023, Algorithm 1), with the mean as preference vector (torchjd's
    convention; the authors' code sums, i.e. T times larger)."""

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "scale_mode": [Options(("min", "median", "rmse"))],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int, scale_mode: ScaleMode = "min") -> None:
        super().__init__()
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(_BAD_SCALE.format(scale_mode))
        self.num_tasks = num_tasks
        self.scale_mode = scale_mode

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return aligned_mtl_weights(gramian, self.scale_mode)
