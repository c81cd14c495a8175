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

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        """Write the update's gradients into ``.grad``; return the task weights used (for logs)."""
        raise NotImplementedError

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        """Called with the mean training loss of each task after every epoch."""


class LossWeighting(Weighting):
    """A strategy that only needs the loss values: ``update = ∇ Σₜ wₜ(L) Lₜ``."""

    def weights(self, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def combine(self, losses: Tensor) -> Tensor:
        """The scalar objective whose gradient is the update."""
        return (self.weights(losses) * losses).sum()

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        self.combine(losses).backward()
        return self.weights(losses.detach()).detach()


class GramianWeighting(Weighting):
    """A strategy that only needs ``G = J Jᵀ``: ``w = f(G)``, ``update = ∇ Σₜ wₜLₜ``."""

    def weights_from_gramian(self, gramian: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if len(ctx.shared_params) == 0:
            losses.sum().backward()
            return torch.ones_like(losses).detach()
        gramian = ctx.engine.gramian(losses, ctx.shared_params)
        weights = self.weights_from_gramian(gramian).detach().to(losses.dtype)
        (weights * losses).sum().backward()
        return weights


class JacobianAggregator(Weighting):
    """A strategy that maps the Jacobian ``J`` (T × P) to the update direction (P,)."""

    def aggregate(self, jacobian: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if ctx.task_params:
            losses.sum().backward(inputs=list(ctx.task_params), retain_graph=True)
        if len(ctx.shared_params) == 0:
            return torch.ones_like(losses).detach()
        jacobian = ctx.engine.jacobian(losses, ctx.shared_params)
        direction = self.aggregate(jacobian)
        ctx.engine.accumulate(direction, ctx.shared_params)
        return torch.full_like(losses, float("nan")).detach()
