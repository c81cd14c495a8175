"""The two documented approximations, usable with any gradient strategy.

- :class:`RepresentationGradients` (``mode="representation"``): the strategy sees the per-task
  gradients with respect to the shared representation ``r`` (the HPS encoder output, N × D)
  instead of the shared parameters, as in MGDA-UB (Sener & Koltun, 2018). Only T cheap
  reverse passes through the heads are needed for ``J_r``. Weight-type strategies then apply
  ``∇ Σ wₜLₜ``; direction-type ones apply ``r.backward(d)`` plus each task's own gradient on its
  task-specific parameters.
- :class:`EveryK` (``every=k``): the inner strategy computes its weights every ``k``-th step;
  the steps in between reuse them, costing one ordinary backward of ``Σ wₜLₜ`` (EW's cost).
  Direction-type strategies are reused through their least-squares weights
  (:func:`~mtlkit.weighting.base.least_squares_weights`).

Both are built by :func:`~mtlkit.weighting.registry.make_weighting` from the ``mode`` and
``every`` options, so the trainer never names them.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mtlkit.weighting.base import (
    GramianWeighting,
    JacobianAggregator,
    StepContext,
    Weighting,
)


class RepresentationGradients(Weighting):
    """Run ``inner`` on gradients w.r.t. ``ctx.representation`` instead of the shared params.

    Raises if the model has shared parameters but the trainer gave no representation (no
    silent fall back to exact gradients). With no shared parameters (STL) it is ``inner``.
    """

    uses_gradients = True

    def __init__(self, inner: Weighting) -> None:
        super().__init__()
        if not inner.uses_gradients:
            raise ValueError(
                f"mode='representation' needs a gradient strategy, not {type(inner).__name__}"
            )
        self.inner = inner

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if len(ctx.shared_params) == 0:
            return self.inner.backward(losses, ctx)
        if ctx.representation is None:
            raise ValueError(
                "mode='representation' needs the shared representation (StepContext."
                "representation); this model/batch does not provide one"
            )
        inner_ctx = replace(ctx, shared_params=[ctx.representation], representation=None)
        return self.inner.backward(losses, inner_ctx)

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        self.inner.on_epoch_end(epoch_losses)

    def supports_sharded_representation(self) -> bool:
        return self.inner.gramian_only


class EveryK(Weighting):
    """Recompute ``inner``'s weights every ``every`` steps; reuse them in between.

    The step counter and the cached weights are buffers (saved in checkpoints).
    """

    uses_gradients = True

    def __init__(self, inner: Weighting, every: int, num_tasks: int) -> None:
        super().__init__()
        inner_core = inner.inner if isinstance(inner, RepresentationGradients) else inner
        if not isinstance(inner_core, GramianWeighting | JacobianAggregator):
            raise ValueError(
                f"every=k needs a Gramian or Jacobian strategy, not {type(inner_core).__name__}"
            )
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.inner = inner
        self.every = int(every)
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("cached", torch.ones(num_tasks, dtype=torch.float64))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        if int(self.steps) % self.every == 0 or len(ctx.shared_params) == 0:
            weights = self.inner.backward(losses, ctx)
            self.cached.copy_(weights.detach().double())
        else:
            weights = self.cached.to(losses)
            (weights * losses).sum().backward()
        self.steps += 1
        return weights.detach()

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        self.inner.on_epoch_end(epoch_losses)
