"""DB-MTL: dual balancing of loss scales (log transform) and gradient magnitudes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlkit.weighting.base import StepContext, Weighting


def db_mtl_direction(ema: Tensor) -> tuple[Tensor, Tensor]:
    """``d = Σₜ αₜ ĝₜ`` with ``αₜ = maxₛ‖ĝₛ‖ / ‖ĝₜ‖``: every (averaged) log-loss gradient is
    scaled to the largest norm. Returns ``(d, α)``."""
    norms = ema.norm(dim=1)
    alpha = norms.max() / (norms + 1e-8)
    return alpha @ ema, alpha


class DBMTL(Weighting):
    """Lin et al., "Dual-Balancing for Multi-Task Learning", 2023 (arXiv:2308.12029).

    Loss scales: each task uses ``log(Lₜ + eps)``. Gradient magnitudes: an exponential average
    ``ĝₜ ← gₜ + (β / k^σ)(ĝₜ − gₜ)`` of the shared-parameter gradients ``gₜ = ∇log(Lₜ+eps)``
    (k the step, starting from ``ĝ = 0``, as in the authors' LibMTL code), then
    :func:`db_mtl_direction`. Task-specific parameters get ``∇log(Lₜ+eps)``. The average is saved
    in the extra state; it is restarted if the shared gradient's size changes (e.g. a smaller
    last batch under ``mode="representation"``).
    """

    uses_gradients = True

    def __init__(
        self, num_tasks: int, beta: float = 0.9, beta_sigma: float = 0.5, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.eps = eps
        self.steps = 0
        self.ema: Tensor | None = None

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        log_losses = torch.log(losses + self.eps)
        if len(ctx.shared_params) == 0:
            log_losses.sum().backward()
            return torch.ones_like(losses).detach()
        task_params = [p for p in ctx.task_params if p.requires_grad]
        if task_params:
            torch.autograd.backward(log_losses.sum(), inputs=task_params, retain_graph=True)
        jacobian = ctx.engine.jacobian(log_losses, ctx.shared_params)
        self.steps += 1
        if self.ema is None or self.ema.shape != jacobian.shape:
            self.ema = torch.zeros_like(jacobian)
        rate = self.beta / self.steps**self.beta_sigma
        self.ema = jacobian + rate * (self.ema - jacobian)
        direction, alpha = db_mtl_direction(self.ema)
        ctx.engine.accumulate(direction, ctx.shared_params)
        return alpha.detach().to(losses.dtype)

    def get_extra_state(self) -> Any:
        return {"steps": self.steps, "ema": None if self.ema is None else self.ema.clone()}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
        self.ema = None if state["ema"] is None else state["ema"].clone()
