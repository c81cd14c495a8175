"""GradNorm: tune loss weights so that weighted gradient norms follow training rates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlkit.weighting.base import StepContext, Weighting


def gradnorm_weight_gradient(
    weights: Tensor, grad_norms: Tensor, losses: Tensor, initial_losses: Tensor, alpha: float
) -> Tensor:
    """``∂/∂w`` of ``Σₜ |Gₜ − Ḡ rₜ^α|`` with the target held constant (as in the paper).

    ``Gₜ = wₜ‖∇Lₜ‖``, ``Ḡ = mean Gₜ``, ``rₜ = L̃ₜ / mean L̃`` with ``L̃ₜ = Lₜ / Lₜ(0)``:
    ``sign(Gₜ − Ḡ rₜ^α) ‖∇Lₜ‖``.
    """
    g = weights * grad_norms
    ratio = losses / initial_losses.clamp(min=1e-12)
    r = ratio / ratio.mean().clamp(min=1e-12)
    target = g.mean() * r**alpha
    return torch.sign(g - target) * grad_norms


class GradNorm(Weighting):
    """Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", ICML 2018.

    The update is ``∇ Σ wₜLₜ`` with the current weights; then the weights take one gradient
    step of size ``lr`` on the GradNorm objective, are clamped positive and renormalised to
    ``Σ wₜ = T``. ``‖∇Lₜ‖`` is measured on the last shared weight tensor (``layer="last"``,
    the paper's choice; the last shared parameter with ≥ 2 dimensions) or on all shared
    parameters (``layer="all"``). Weights and ``Lₜ(0)`` are buffers.
    """

    uses_gradients = True
    gramian_only = True  # only the gradient norms, the diagonal of G

    def __init__(
        self, num_tasks: int, alpha: float = 1.5, lr: float = 0.025, layer: str = "last"
    ) -> None:
        super().__init__()
        if layer not in ("last", "all"):
            raise ValueError(f"gradnorm.layer: expected 'last' or 'all', got {layer!r}")
        self.num_tasks = num_tasks
        self.alpha = alpha
        self.lr = lr
        self.layer = layer
        self.register_buffer("task_weights", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("initial_losses", torch.full((num_tasks,), float("nan")).double())

    def _norm_params(self, shared: Sequence[Tensor]) -> list[Tensor]:
        if self.layer == "all":
            return list(shared)
        matrices = [p for p in shared if p.dim() >= 2]
        return [matrices[-1] if matrices else shared[-1]]

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = self.task_weights.to(losses)
        if len(ctx.shared_params) == 0:
            (weights * losses).sum().backward()
            return weights.detach()
        params = self._norm_params(ctx.shared_params)
        jacobian = ctx.engine.jacobian(losses, params)
        grad_norms = jacobian.double().norm(dim=1)
        reuse = jacobian if self.layer == "all" else None
        ctx.engine.backward_weighted(
            losses, weights, ctx.shared_params, ctx.task_params, jacobian=reuse
        )
        current = losses.detach().double()
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(current)
        grad = gradnorm_weight_gradient(
            self.task_weights, grad_norms, current, self.initial_losses, self.alpha
        )
        new = (self.task_weights - self.lr * grad).clamp(min=1e-6)
        self.task_weights.copy_(new * (self.num_tasks / new.sum()))
        return weights.detach()
