"""CAGrad: the best worst-case improvement within a ball around the mean gradient."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._param_validation import Interval, Options
from mtlkit.weighting._qp import cagrad_subproblem, range_basis, to_numpy
from mtlkit.weighting.base import GramianWeighting

RESCALES = {0: lambda c: 1.0, 1: lambda c: 1.0 + c**2, 2: lambda c: 1.0 + c}
"""The authors' ``rescale`` option: the update is divided by 1, ``1 + c²`` (default) or
``1 + c``."""


def cagrad_weights(gramian: Tensor, c: float = 0.5, rescale: int = 1) -> Tensor:
    """``d = (g₀ + (√φ / ‖g_w‖) g_w) / s`` as weights: ``(1/T + (√φ / ‖g_w‖) w) / s``.

    ``g₀ = (1/T) Σ gₜ``, ``√φ = c ‖g₀‖``, ``g_w = Jᵀw`` with
    ``w = argmin_{w ∈ Δ} g_wᵀ g₀ + √φ ‖g_w‖``. Then ``d·s`` solves
    ``max_d min_t gₜᵀd`` s.t. ``‖d − g₀‖ ≤ c‖g₀‖`` (Liu et al. 2021, Algorithm 1). ``s`` is the
    authors' final rescaling (:data:`RESCALES`, ``rescale=1``: ``1 + c²``). As in the authors'
    code there is no cut-off: ``√φ / (‖g_w‖ + 1e-8)``, ``G`` scaled to unit trace, so a task
    whose gradient is 1e4 times smaller than another's still moves the update. ``w`` is first
    projected on the range of ``G`` (:func:`~mtlkit.weighting._qp.range_basis`), which leaves
    ``g_w`` unchanged: where ``w`` sits on a zero gradient or on exactly cancelling ones
    (``g_w = 0``, the authors' update is then ``g₀``) the weights, which the task-specific
    parameters receive, stay ``1/T`` instead of growing like ``√φ / 1e-8``.
    """
    g = to_numpy(gramian)  # unit trace: the weights are invariant to the scale of G
    t = g.shape[0]
    scale = RESCALES[rescale](c)
    if c == 0.0:
        weights = np.full(t, 1.0 / t)
    else:
        w = cagrad_subproblem(g, c)
        sqrt_phi = c * np.sqrt(max(float(g.mean()), 0.0))
        gw_norm = np.sqrt(max(float(w @ g @ w), 0.0))
        q = range_basis(g, gramian.dtype)  # weights moving Jᵀw; the rest only moves heads
        weights = np.full(t, 1.0 / t) + sqrt_phi / (gw_norm + 1e-8) * (q @ (q.T @ w))
    return torch.as_tensor(weights / scale, dtype=gramian.dtype, device=gramian.device)


class CAGrad(GramianWeighting):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021, Algorithm 1), ``c`` the
    radius scale and ``rescale`` the final division (defaults 0.5 and 1, the authors': step
    divided by ``1 + c²``). The convex T-dimensional subproblem is solved with SciPy SLSQP.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "c": [Interval(Real, 0, None)],
        "rescale": [Options(tuple(RESCALES))],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int, c: float = 0.5, rescale: int = 1) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"cagrad.c must be >= 0, got {c}")
        if rescale not in RESCALES:
            raise ValueError(f"cagrad.rescale must be 0, 1 (÷(1+c²)) or 2 (÷(1+c)), got {rescale}")
        self.num_tasks = num_tasks
        self.c = c
        self.rescale = rescale

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        return cagrad_weights(gramian, self.c, self.rescale)
