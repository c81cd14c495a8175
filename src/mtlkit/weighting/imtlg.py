"""IMTL-G: the combination whose projections on every task direction are equal."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit.weighting.base import GramianWeighting


def imtlg_weights(gramian: Tensor) -> Tensor:
    """``w ∝ G⁺ √diag(G)``, normalised to ``Σ wₜ = 1`` (zero if the sum vanishes).

    IMTL-G asks for ``d = Jᵀw`` with ``Σ wₜ = 1`` and equal ``dᵀuₜ`` for the unit task gradients
    ``uₜ = gₜ/‖gₜ‖``: ``(Gw)ₜ = c ‖gₜ‖``, i.e. ``w ∝ G⁻¹ √diag(G)``. The authors' closed form
    ``α = g₁Uᵀ(DUᵀ)⁻¹`` is the same for linearly independent gradients; the pseudo-inverse
    extends it to dependent ones (as in torchjd's IMTLG).
    """
    g = gramian.detach().double()
    d = torch.sqrt(torch.clamp(torch.diagonal(g), min=0.0))
    v = torch.linalg.pinv(g, hermitian=True) @ d
    total = v.sum()
    w = torch.zeros_like(v) if total.abs() < 1e-12 else v / total
    return w.to(gramian.dtype)


class IMTLG(GramianWeighting):
    """Impartial MTL, gradient part (Liu et al., "Towards Impartial Multi-task Learning",
    ICLR 2021). ``d = Jᵀw`` with equal projection on every task's gradient direction."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def weights_from_gramian(self, gramian: Tensor) -> Tensor:
        return imtlg_weights(gramian)
