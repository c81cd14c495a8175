"""Aligned-MTL: align the principal components of the task gradients."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from mtlkit.weighting.base import GramianWeighting

ScaleMode = Literal["min", "median", "rmse"]
_BAD_SCALE = "aligned_mtl.scale_mode: expected min, median or rmse, got {!r}"


def aligned_mtl_weights(gramian: Tensor, scale_mode: ScaleMode = "min") -> Tensor:
    """``w = B·(1/T)``, ``B = √σ V Λ⁻¹ᐟ² Vᵀ`` over the non-zero eigenpairs ``G = V Λ Vᵀ``.

    ``JᵀB`` has orthogonal rows of equal norm ``√σ`` (the condition number of the aligned
    system is 1); ``σ`` is the smallest (``min``), median (``median``) or mean (``rmse``)
    non-zero eigenvalue. A zero Gramian gives ``B = I``.
    """
    g = gramian.detach().double()
    g = 0.5 * (g + g.T)
    lam, vec = torch.linalg.eigh(g)
    tol = lam.max() * len(g) * torch.finfo(g.dtype).eps
    keep = lam > tol
    t = g.shape[0]
    pref = torch.full((t,), 1.0 / t, dtype=g.dtype)
    if not keep.any():
        return pref.to(gramian.dtype)
    lam, vec = lam[keep], vec[:, keep]
    if scale_mode == "min":
        sigma = lam.min()
    elif scale_mode == "median":
        sigma = torch.median(lam)
    elif scale_mode == "rmse":
        sigma = lam.mean()
    else:
        raise ValueError(_BAD_SCALE.format(scale_mode))
    balance = sigma.sqrt() * (vec / lam.sqrt()) @ vec.T
    return (balance @ pref).to(gramian.dtype)


class AlignedMTL(GramianWeighting):
    """Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task
    Learning", CVPR 2023, Algorithm 1), with the mean as preference vector (torchjd's
    convention; the authors' code sums, i.e. T times larger)."""

    def __init__(self, num_tasks: int, scale_mode: ScaleMode = "min") -> None:
        super().__init__()
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(_BAD_SCALE.format(scale_mode))
        self.num_tasks = num_tasks
        self.scale_mode = scale_mode

    def weights_from_gramian(self, gramian: Tensor) -> Tensor:
        return aligned_mtl_weights(gramian, self.scale_mode)
