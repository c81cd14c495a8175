"""GradNorm: tune loss weights so that weighted gradient norms follow training rates."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting.base import LossWeighting


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


class GradNorm(LossWeighting):
    """Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", ICML 2018.

    The update is ``∇ Σ wₜLₜ`` with the current weights; then the weights take one gradient
    step of size ``lr`` on the GradNorm objective, are clamped positive and renormalised to
    keep their sum (``Σ wₜ = T`` when every task is present). ``‖∇Lₜ‖`` is measured on the last
    shared layer (``layer="last"``, the paper's choice: the layer feeding the heads, given to
    :func:`mtlkit.mtl_backward` as ``last_shared_params``, see
    ``MultiTaskModel.last_shared_parameters``), on all shared parameters (``layer="all"``) or
    on a module the user names (``layer="encoder.fc2"``; the trainer resolves the name).
    Weights and ``Lₜ(0)`` are buffers.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "alpha": [Interval(Real, 0, None)],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "layer": [str],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    uses_gradients = True
    gramian_only = True  # only the gradient norms, the diagonal of G
    needs_grad_norms = True
    per_task_state = {"task_weights": (0,), "initial_losses": (0,)}

    def __init__(
        self, num_tasks: int, alpha: float = 1.5, lr: float = 0.025, layer: str = "last"
    ) -> None:
        super().__init__()
        if not isinstance(layer, str) or not layer:
            raise ValueError(
                f"gradnorm.layer: expected 'last', 'all' or a module name, got {layer!r}"
            )
        self.num_tasks = num_tasks
        self.alpha = alpha
        self.lr = lr
        self.grad_norms_of = layer
        self.register_buffer("task_weights", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("initial_losses", torch.full((num_tasks,), float("nan")).double())

    def forward(self, losses: Tensor, grad_norms: Tensor) -> Tensor:
        """This step's weights; then one GradNorm step on them (from ``‖∇Lₜ‖``, ``Lₜ``)."""
        weights = self.task_weights.to(losses).clone()
        current = losses.detach().double().to(self.task_weights.device)
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(current)
        grad = gradnorm_weight_gradient(
            self.task_weights, grad_norms.to(current), current, self.initial_losses, self.alpha
        )
        total = self.task_weights.sum()
        new = (self.task_weights - self.lr * grad).clamp(min=1e-6)
        self.task_weights.copy_(new * (total / new.sum()))
        return weights
