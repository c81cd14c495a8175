"""GradVac: set the similarity of every task pair towards its running average."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting._random import SeededMixin
from mtlkit.weighting.base import GramianWeighting


def gradvac_weights(
    gramian: Tensor,
    targets: Tensor,
    orders: Sequence[Sequence[int]],
    beta: float = 0.5,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """One GradVac step on ``G``: returns the weights and the updated targets ``φ̂``.

    For each task ``i`` and ``j`` in ``orders[i]`` (``j ≠ i``), with ``gᵢᴾᶜ = Jᵀcᵢ`` and
    ``φᵢⱼ = cos(gᵢᴾᶜ, gⱼ)``: if ``φᵢⱼ < φ̂ᵢⱼ``,

        gᵢᴾᶜ ← gᵢᴾᶜ + ‖gᵢᴾᶜ‖ (φ̂ᵢⱼ √(1−φᵢⱼ²) − φᵢⱼ √(1−φ̂ᵢⱼ²)) / (‖gⱼ‖ √(1−φ̂ᵢⱼ²)) gⱼ,

    and in all cases ``φ̂ᵢⱼ ← (1−β) φ̂ᵢⱼ + β φᵢⱼ`` (with the ``φᵢⱼ`` before the change).
    ``eps`` guards the denominators. The weights are ``Σᵢ cᵢ``.
    """
    g = gramian.detach().to("cpu", torch.float64).numpy()  # T² scalar steps: numpy, not torch
    phi_hat = targets.detach().to("cpu", torch.float64).numpy().copy()
    t = g.shape[0]
    coeffs = np.eye(t)
    for i in range(t):
        cg = coeffs[i] @ g
        for j in orders[i]:
            j = int(j)
            if j == i:
                continue
            norm_i = math.sqrt(max(float(cg @ coeffs[i]), 0.0))
            norm_j = math.sqrt(max(float(g[j, j]), 0.0))
            phi = float(cg[j]) / (norm_i * norm_j + eps)
            target = float(phi_hat[i, j])
            if phi < target:
                s_phi = math.sqrt(max(1.0 - phi * phi, 0.0))
                s_hat = math.sqrt(max(1.0 - target * target, 0.0))
                w = norm_i * (target * s_phi - phi * s_hat) / (norm_j * s_hat + eps)
                coeffs[i, j] += w
                cg = cg + w * g[j]
            phi_hat[i, j] = (1.0 - beta) * target + beta * phi
    weights = torch.as_tensor(coeffs.sum(axis=0), dtype=gramian.dtype, device=gramian.device)
    return weights, torch.as_tensor(phi_hat, dtype=targets.dtype, device=targets.device)


class GradVac(SeededMixin, GramianWeighting):
    """Gradient Vaccine (Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task
    Optimization in Massively Multilingual Models", ICLR 2021), on the whole shared parameter
    vector. ``beta`` is the EMA rate of the similarity targets ``φ̂`` (buffer ``targets``, start
    0, so the first step is PCGrad). Visiting orders come from the seeded generator.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "beta": [Interval(Real, 0, 1)],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "seed": [Interval(Integral, None, None)],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"targets": (0, 1)}

    def __init__(self, num_tasks: int, beta: float = 0.5, eps: float = 1e-8, seed: int = 0):
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"gradvac.beta must be in [0, 1], got {beta}")
        self.num_tasks = num_tasks
        self.beta = beta
        self.eps = eps
        self._init_generator(seed)
        self.register_buffer("targets", torch.zeros(num_tasks, num_tasks, dtype=torch.float64))

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        t = gramian.shape[0]
        orders = []
        for i in range(t):
            others = [j for j in range(t) if j != i]
            perm = torch.randperm(len(others), generator=self.generator).tolist()
            orders.append([others[k] for k in perm])
        weights, targets = gradvac_weights(gramian, self.targets, orders, self.beta, self.eps)
        self.targets.copy_(targets)
        return weights
