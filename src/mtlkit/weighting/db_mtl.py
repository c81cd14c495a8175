"""DB-MTL: dual balancing of loss scales (log transform) and gradient magnitudes."""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting.base import JacobianAggregator


def db_mtl_direction(ema: Tensor) -> tuple[Tensor, Tensor]:
    """``d = Σₜ αₜ ĝₜ`` with ``αₜ = maxₛ‖ĝₛ‖ / ‖ĝₜ‖``: every (averaged) log-loss gradient is
    scaled to the largest norm. Returns ``(d, α)``."""
    norms = ema.norm(dim=1)
    alpha = norms.max() / (norms + 1e-8)
    return alpha @ ema, alpha


class DBMTL(JacobianAggregator):
    """Lin et al., "Dual-Balancing for Multi-Task Learning", 2023 (arXiv:2308.12029).

    Loss scales: the strategy works on ``φ(Lₜ) = log(Lₜ + eps)`` (``transform_losses``), so its
    Jacobian rows are ``gₜ = ∇log(Lₜ+eps)`` and each head gets ``∇Lₜ / (Lₜ + eps)``, as in the
    authors' LibMTL code. Gradient magnitudes: an exponential average
    ``ĝₜ ← gₜ + (β / k^σ)(ĝₜ − gₜ)`` (k the step, starting from ``ĝ = 0``; defaults β = 0.9,
    σ = 0, LibMTL's ``DB_beta`` and ``DB_beta_sigma``), then
    :func:`db_mtl_direction`. The average is the buffer ``ema`` (restarted if the shared
    gradient's size changes, e.g. a smaller last batch under ``mode="representation"``).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "beta": [Interval(Real, 0, 1)],
        "beta_sigma": [Interval(Real, 0, None)],
        "eps": [Interval(Real, 0, None, closed="neither")],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"ema": (0,)}

    def __init__(
        self, num_tasks: int, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.eps = eps
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("ema", torch.zeros(num_tasks, 0))

    def transform_losses(self, losses: Tensor) -> Tensor:
        return torch.log(losses + self.eps)

    def forward(self, jacobian: Tensor) -> Tensor:
        self.steps += 1
        if self.ema.shape != jacobian.shape:
            self.ema = torch.zeros_like(jacobian)
        rate = self.beta / int(self.steps) ** self.beta_sigma
        self.ema = jacobian + rate * (self.ema.to(jacobian) - jacobian)
        direction, _ = db_mtl_direction(self.ema)
        return direction

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        ema = state_dict.get(prefix + "ema")
        if ema is not None:  # its column count is the shared gradient's size, known at run time
            self.ema = torch.empty_like(ema, device=self.ema.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
