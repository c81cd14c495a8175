"""The seam between the trainer and every balancing strategy.

The trainer computes the vector of (task-weighted) losses ``L = (α₁L₁, …, α_TL_T)`` and hands it to
a :class:`Weighting` together with a :class:`StepContext`. The strategy decides how the losses
become gradients on the model's parameters and writes them into ``.grad``. The trainer never looks
at which strategy it holds.

Three families share this interface:

- :class:`LossWeighting`: a function of the losses gives weights ``w``; the update is ∇(Σ wₜLₜ).
- :class:`GramianWeighting`: a function of the Gramian ``G = J Jᵀ`` of the per-task gradients of
  the shared parameters gives weights ``w``; the update is again ∇(Σ wₜLₜ), so ``J`` never needs
  to be applied a second time.
- :class:`JacobianAggregator`: a function of the Jacobian ``J`` (T × P) of the shared parameters
  gives the update direction directly. Task-specific parameters always receive only the
  gradient of their own task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlkit.weighting.engine import GradientEngine


@dataclass
class StepContext:
    """What a strategy may use in one update step besides the losses."""

    shared_params: Sequence[nn.Parameter]
    task_params: Sequence[nn.Parameter]
    engine: GradientEngine = field(default_factory=GradientEngine)
    step: int = 0
    epoch: int = 0
    representation: Tensor | None = None
    """The shared representation (encoder output, still in the graph) when the model exposes
    one; lets strategies work on gradients w.r.t. the representation instead of the shared
    parameters (MGDA-UB style)."""


class Weighting(nn.Module):
    """Base class of all strategies. Subclasses implement :meth:`backward`.

    Strategies are ``nn.Module`` s so that learnable weights (e.g. uncertainty weighting's
    log-variances) join the optimizer, and so that their state is saved by ``state_dict``.
    Non-tensor state goes through ``get_extra_state``/``set_extra_state``.
    """

    uses_gradients: bool = False
    """Whether the strategy looks at per-task gradients (and so can run on representation
    gradients, see :mod:`mtlkit.weighting.approx`)."""
    sums_losses: bool = False
    """Whether the update is just ∇ Σₜ Lₜ of the (task-weighted) losses: the only kind that
    alternating updates (one task per step, no combining) can honour."""
    gramian_only: bool = False
    """Whether it sees the per-task gradients only through their Gramian ``G = J Jᵀ``. Then
    representation gradients stay exact when the batch rows are split across processes
    (``G`` is a sum over rows); see :meth:`supports_sharded_representation`."""

    def supports_sharded_representation(self) -> bool:
        """Whether it is exact when ``ctx.representation`` holds only this process's rows."""
        return True

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        """Write the update's gradients into ``.grad``; return the task weights used (for logs)."""
        raise NotImplementedError

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        """Called with the mean training loss of each task after every epoch."""


class LossWeighting(Weighting):
    """A strategy that only needs the loss values: ``update = ∇ Σₜ wₜ(L) Lₜ``."""

    def weights(self, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def combine(self, losses: Tensor, weights: Tensor | None = None) -> Tensor:
        """The scalar objective whose gradient is the update (``weights``: this step's, if
        already computed, so that a random or stateful weighting is drawn once per step)."""
        if weights is None:
            weights = self.weights(losses)
        return (weights * losses).sum()

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        weights = self.weights(losses.detach()).detach()
        self.combine(losses, weights).backward()
        return weights


class GramianWeighting(Weighting):
    """A strategy that only needs ``G = J Jᵀ``: ``w = f(G)``, ``update = ∇ Σₜ wₜLₜ``.

    The engine computes ``J`` once; the shared parameters then receive ``Jᵀw`` directly (no
    second reverse pass through the shared layers) and the task-specific parameters ``wₜ∇Lₜ``.
    """

    uses_gradients = True
    gramian_only = True

    def weights_from_gramian(self, gramian: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if len(ctx.shared_params) == 0:
            losses.sum().backward()
            return torch.ones_like(losses).detach()
        jacobian = ctx.engine.jacobian(losses, ctx.shared_params)
        gramian = jacobian @ jacobian.T
        weights = self.weights_from_gramian(gramian).detach().to(losses.dtype)
        ctx.engine.backward_weighted(
            losses, weights, ctx.shared_params, ctx.task_params, jacobian=jacobian
        )
        return weights


class JacobianAggregator(Weighting):
    """A strategy that maps the Jacobian ``J`` (T × P) to the update direction (P,).

    Task-specific parameters receive their own task's gradient ``∇Lₜ``. The weights returned
    (for logs, and for reuse by :class:`~mtlkit.weighting.approx.EveryK`) are the least-squares
    weights ``w = G⁺ J d``, i.e. ``Jᵀw`` is the projection of the direction ``d`` onto the span
    of the task gradients (exactly ``d`` when ``d`` lies in that span).
    """

    uses_gradients = True

    def aggregate(self, jacobian: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        task_params = [p for p in ctx.task_params if p.requires_grad]
        if len(ctx.shared_params) == 0:
            losses.sum().backward()
            return torch.ones_like(losses).detach()
        if task_params:
            torch.autograd.backward(losses.sum(), inputs=task_params, retain_graph=True)
        jacobian = ctx.engine.jacobian(losses, ctx.shared_params)
        direction = self.aggregate(jacobian)
        ctx.engine.accumulate(direction, ctx.shared_params)
        return least_squares_weights(jacobian, direction).to(losses.dtype)


def least_squares_weights(jacobian: Tensor, direction: Tensor) -> Tensor:
    """``w`` minimising ``‖Jᵀw − d‖``: ``w = (J Jᵀ)⁺ J d``."""
    jacobian = jacobian.detach().double()
    return torch.linalg.pinv(jacobian @ jacobian.T) @ (jacobian @ direction.detach().double())
