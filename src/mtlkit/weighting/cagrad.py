"""CAGrad: the best worst-case improvement within a ball around the mean gradient."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit.weighting._qp import cagrad_subproblem, to_numpy
from mtlkit.weighting.base import GramianWeighting


def cagrad_weights(gramian: Tensor, c: float = 0.5, norm_eps: float = 1e-4) -> Tensor:
    """``d = g₀ + (√φ / ‖g_w‖) g_w`` as weights: ``1/T + (√φ / ‖g_w‖) w``.

    ``g₀ = (1/T) Σ gₜ``, ``√φ = c ‖g₀‖``, ``g_w = Jᵀw`` with
    ``w = argmin_{w ∈ Δ} g_wᵀ g₀ + √φ ‖g_w‖``. Then ``d`` solves
    ``max_d min_t gₜᵀd`` s.t. ``‖d − g₀‖ ≤ c‖g₀‖``. If ``‖g_w‖ < norm_eps·√tr(G)`` (a Pareto-
    stationary point) the weights are 0, as in torchjd. No final rescaling by ``1/(1+c²)``
    (the authors' code has it as an option).
    """
    g = to_numpy(gramian)  # unit trace: the weights are invariant to the scale of G
    t = g.shape[0]
    if c == 0.0:
        return torch.full((t,), 1.0 / t, dtype=gramian.dtype, device=gramian.device)
    w = cagrad_subproblem(g, c)
    sqrt_phi = c * np.sqrt(max(float(g.mean()), 0.0))
    gw_norm = np.sqrt(max(float(w @ g @ w), 0.0))
    weights = np.zeros(t) if gw_norm < norm_eps else np.full(t, 1.0 / t) + sqrt_phi / gw_norm * w
    return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)


class CAGrad(GramianWeighting):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021, Algorithm 1), ``c`` the
    radius scale (default 0.5). The convex T-dimensional subproblem is solved with SciPy SLSQP.
    """

    def __init__(self, num_tasks: int, c: float = 0.5, norm_eps: float = 1e-4) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"cagrad.c must be >= 0, got {c}")
        self.num_tasks = num_tasks
        self.c = c
        self.norm_eps = norm_eps

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return cagrad_weights(gramian, self.c, self.norm_eps)
