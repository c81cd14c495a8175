"""IMTL-G: the combination whose projections on every task direction are equal."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit.weighting._qp import range_basis, to_numpy
from mtlkit.weighting.base import GramianWeighting


def imtlg_weights(gramian: Tensor) -> Tensor:
    """``w ∝ G⁺ √diag(G)``, normalised to ``Σ wₜ = 1`` (zero if the sum vanishes).

    IMTL-G asks for ``d = Jᵀw`` with ``Σ wₜ = 1`` and equal ``dᵀuₜ`` for the unit task gradients
    ``uₜ = gₜ/‖gₜ‖``: ``(Gw)ₜ = c ‖gₜ‖``, i.e. ``w ∝ G⁻¹ √diag(G)``. The authors' closed form
    ``α = g₁Uᵀ(DUᵀ)⁻¹`` is the same for linearly independent gradients; the pseudo-inverse
    extends it to dependent ones (as in torchjd's IMTLG), ``G⁺ = Q (QᵀGQ)⁻¹ Qᵀ`` on the range
    ``Q`` of :func:`~mtlkit.weighting._qp.range_basis`: the rank follows ``G``'s dtype, so a
    float32 ``G`` of dependent gradients gives the float64 result (not ``w = (1, 1, −1)``,
    ``d ≈ 0``), and gradients whose norms differ by 1e4 still count as independent.
    """
    g = to_numpy(gramian)  # unit trace: w is invariant to the scale of G
    q = range_basis(g, gramian.dtype)
    d = np.sqrt(np.clip(np.diag(g), 0.0, None))
    v = q @ np.linalg.solve(q.T @ g @ q, q.T @ d) if q.shape[1] else np.zeros_like(d)
    total = v.sum()
    w = np.zeros_like(v) if abs(total) < 1e-12 else v / total
    return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


class IMTLG(GramianWeighting):
    """Impartial MTL, gradient part (Liu et al., "Towards Impartial Multi-task Learning",
    ICLR 2021). ``d = Jᵀw`` with equal projection on every task's gradient direction."""

    _parameter_constraints: ClassVar[dict[str, list]] = {}
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return imtlg_weights(gramian)
