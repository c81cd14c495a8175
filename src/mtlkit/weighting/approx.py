"""The two documented approximations, usable with any gradient strategy; both run through
:func:`mtlkit.mtl_backward` (they register their handler there).

- :class:`RepresentationGradients` (``mode="representation"``): the strategy sees the per-task
  gradients with respect to the shared representation ``r`` (``features``) instead of the
  shared parameters, as in MGDA-UB (Sener & Koltun, 2018). Only T cheap reverse passes through
  the heads are needed for ``J_r``. Weight strategies then apply ``∇ Σ wₜLₜ``; direction
  strategies back-propagate ``d`` from ``r``; heads are treated as in exact mode.
- :class:`EveryK` (``every=k``): the inner strategy runs every ``k``-th step; the steps in
  between reuse its weights, costing one ordinary backward (EW's cost). The heads get what
  they get on compute steps: ``wₜ∇Lₜ`` for a weight strategy, their own ``∇Lₜ`` for a
  direction strategy (whose shared parameters get ``∇ Σ wₜLₜ`` with its least-squares
  weights, :func:`~mtlkit.weighting.base.least_squares_weights`). A declared
  ``shared_max_norm`` clips the shared update on every step, reuse steps included.

Both are built by :func:`~mtlkit.weighting.registry.make_weighting` from the ``mode`` and
``every`` options.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mtlkit.weighting.backward import Step, run_strategy
from mtlkit.weighting.base import GramianWeighting, JacobianAggregator, Weighting


class _Wrapper(Weighting):
    """Delegates the declarations and hooks to ``inner``."""

    uses_gradients = True
    inner: Weighting

    @property
    def shared_max_norm(self) -> float:  # type: ignore[override]
        return self.inner.shared_max_norm

    @property
    def wants_losses_after_step(self) -> bool:  # type: ignore[override]
        return self.inner.wants_losses_after_step

    def transform_losses(self, losses: Tensor) -> Tensor:
        return self.inner.transform_losses(losses)

    def after_step(self, losses_before: Tensor, losses_after: Tensor) -> None:
        self.inner.after_step(losses_before, losses_after)

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        self.inner.on_epoch_end(epoch_losses)

    def forward(self, *args: Any) -> Tensor:
        return self.inner(*args)


class RepresentationGradients(_Wrapper):
    """Run ``inner`` on gradients w.r.t. ``features`` instead of the shared parameters.

    Raises if the model has shared parameters but no ``features`` were given (no silent fall
    back to exact gradients). With no shared parameters (STL) it is ``inner``.
    """

    def __init__(self, inner: Weighting) -> None:
        super().__init__()
        if not inner.uses_gradients:
            raise ValueError(
                f"mode='representation' needs a gradient strategy, not {type(inner).__name__}"
            )
        self.inner = inner

    def supports_sharded_representation(self) -> bool:
        return self.inner.gramian_only


@run_strategy.register
def _(strategy: RepresentationGradients, step: Step) -> Tensor:
    if step.shared:
        if not step.features:
            raise ValueError(
                "mode='representation' needs the shared representation (mtl_backward's "
                "features=); this model/batch does not provide one"
            )
        step = replace(step, wrt=list(step.features))
    return run_strategy(strategy.inner, step)


class EveryK(_Wrapper):
    """Run ``inner`` every ``every`` steps; reuse its weights in between.

    The step counter and the cached weights are buffers (saved in checkpoints).
    """

    per_task_state = {"cached": (0,)}

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
        self.directional = isinstance(inner_core, JacobianAggregator)
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("cached", torch.ones(num_tasks, dtype=torch.float64))


@run_strategy.register
def _(strategy: EveryK, step: Step) -> Tensor:
    if int(strategy.steps) % strategy.every == 0 or not step.shared:
        weights = run_strategy(strategy.inner, step)
        strategy.cached.copy_(weights.detach().double())
    else:
        weights = strategy.cached.to(step.losses)
        step.apply_weights(
            weights, heads=torch.ones_like(weights) if strategy.directional else None
        )
    strategy.steps += 1
    return weights.detach()
