"""The three kinds of strategy: maths only, no backward pass.

A strategy is a small ``nn.Module`` whose ``forward`` is the method's formula; all the plumbing
(per-task gradients, what the heads receive, absent tasks, clipping, writing ``.grad``) lives in
one place, :func:`mtlkit.mtl_backward`. The kinds:

- :class:`LossWeighting`: ``forward(losses) -> w`` (the loss values, and its own state).
- :class:`GramianWeighting`: ``forward(G, losses) -> w`` with ``G = J Jᵀ`` the Gramian of the
  per-task gradients ``J`` (T × P) of the shared parameters.
- :class:`JacobianAggregator`: ``forward(J) -> d``, the update direction (P,) of the shared
  parameters.

State lives in registered buffers and parameters (saved by ``state_dict``); a strategy learns
from what happened only through the explicit hooks :meth:`Weighting.after_step` (the losses
after the optimizer step) and :meth:`Weighting.on_epoch_end` (the mean epoch losses).

A strategy that needs more than its kind's input *declares* it, and the plumbing honours the
declaration (it never looks at a strategy's name):

- ``needs_grad_norms`` (loss weighting): ``forward(losses, grad_norms)`` also gets ``‖∇Lₜ‖``
  on the last shared layer (GradNorm);
- ``transform_losses`` (any kind): the strategy works on ``φ(Lₜ)`` instead of ``Lₜ`` (DB-MTL:
  ``log(Lₜ + ε)``), heads included;
- ``shared_max_norm``: the shared parameters' update is clipped to this norm (Nash-MTL);
- ``wants_losses_after_step``: call :meth:`Weighting.after_step` with the losses of the same
  batch at the new parameters (FAMO);
- ``per_task_state``: which buffers/parameters are indexed by task (so that a task absent from
  a batch is left out of that step with its state kept unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor, nn


class Weighting(nn.Module):
    """Base class of all strategies (see the module docstring for the declared attributes)."""

    uses_gradients: ClassVar[bool] = False
    """Whether it looks at per-task gradients (and so can run on representation gradients)."""
    sums_losses: ClassVar[bool] = False
    """Whether the update is just ∇ Σₜ Lₜ (the only kind alternating updates can honour)."""
    gramian_only: ClassVar[bool] = False
    """Whether it sees the per-task gradients only through ``G`` (then representation gradients
    stay exact when the batch rows are split across processes: ``G`` is a sum over rows)."""
    needs_grad_norms: ClassVar[bool] = False
    wants_losses_after_step: ClassVar[bool] = False
    per_task_state: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    """``{name: task dimensions}`` of the buffers/parameters indexed by task."""
    shared_max_norm: float = 0.0
    """If > 0, the shared parameters' update is clipped to this norm (0: no clipping)."""

    def transform_losses(self, losses: Tensor) -> Tensor:
        """``φ(L)``: the losses the strategy works on (default: the losses themselves)."""
        return losses

    def supports_sharded_representation(self) -> bool:
        """Whether it is exact when the representation holds only this process's rows."""
        return True

    def after_step(self, losses_before: Tensor, losses_after: Tensor) -> None:
        """Learn from the step just taken: the losses of one batch before and after it (NaN for a
        task absent from the batch). Called by the trainer when ``wants_losses_after_step``."""

    def on_epoch_end(self, epoch_losses: Tensor) -> None:
        """Called with the mean training loss of each task after every epoch."""


class LossWeighting(Weighting):
    """``w = f(L)``; the update is ``∇ Σₜ wₜLₜ`` (shared and task-specific parameters alike).

    ``w`` may depend on the strategy's own parameters (UW): the plumbing back-propagates
    ``Σₜ wₜLₜ + penalty()`` so that they receive their gradient too.
    """

    def forward(self, losses: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def penalty(self) -> Tensor | None:
        """A term added to the objective for the strategy's own parameters (default: none)."""
        return None


class GramianWeighting(Weighting):
    """``w = f(G)`` with ``G = J Jᵀ``; the shared parameters receive ``Jᵀw`` and the
    task-specific ones ``wₜ∇Lₜ``."""

    uses_gradients = True
    gramian_only = True
    needs_gramian: ClassVar[bool] = True
    """False for weights that do not depend on ``G`` (Mean, Sum): ``forward(None, losses)``
    then, and no Jacobian is computed."""

    def forward(self, gramian: Tensor | None, losses: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class JacobianAggregator(Weighting):
    """``d = A(J)``: the shared parameters receive ``d``; the task-specific ones their own
    task's gradient ``∇Lₜ`` (of ``φ(Lₜ)`` under ``transform_losses``), never least-squares
    weights. The weights :func:`mtlkit.mtl_backward` returns for logs are the least-squares
    weights ``w = G⁺ J d`` (``Jᵀw`` is the projection of ``d`` on the span of the rows)."""

    uses_gradients = True
    per_sample_features: ClassVar[bool] = False
    """Whether ``forward(J, features=...)`` wants the representation tensors (batch first) when
    ``J`` is taken w.r.t. them (``mode="representation"``), to use the per-sample layout."""

    def forward(self, jacobian: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def least_squares_weights(jacobian: Tensor, direction: Tensor) -> Tensor:
    """``w`` minimising ``‖Jᵀw − d‖``: ``w = (J Jᵀ)⁺ J d``."""
    jacobian = jacobian.detach().double()
    return torch.linalg.pinv(jacobian @ jacobian.T) @ (jacobian @ direction.detach().double())


def _task_index(dims: tuple[int, ...], index: Tensor, ndim: int) -> tuple:
    """An indexing tuple selecting ``index`` along each of ``dims`` (outer product)."""
    key: list = [slice(None)] * ndim
    for k, d in enumerate(dims):
        shape = [1] * len(dims)
        shape[k] = -1
        key[d] = index.view(shape)
    return tuple(key)


@contextmanager
def tasks_only(strategy: nn.Module, present: Sequence[int], num_tasks: int) -> Iterator[None]:
    """Within the block, every ``per_task_state`` buffer/parameter of ``strategy`` (and of the
    strategies it wraps) holds the present tasks' entries only; on exit the buffers' new values
    are written back into those entries and the absent tasks' entries are left unchanged. A
    parameter (UW's log-variances) is seen through an index of the full parameter, so its
    gradient reaches the present tasks' entries only."""
    if len(present) == num_tasks:
        yield
        return
    saved = []
    for module in strategy.modules():
        for name, dims in getattr(module, "per_task_state", {}).items():
            container = module._parameters if name in module._parameters else module._buffers
            full = container[name]
            if full is None:
                continue
            index = torch.as_tensor(list(present), device=full.device)
            key = _task_index(dims, index, full.dim())
            container[name] = full[key] if isinstance(full, nn.Parameter) else full[key].clone()
            saved.append((container, name, full, dims, key))
    try:
        yield
    finally:
        for container, name, full, dims, key in saved:
            part = container[name]
            container[name] = full
            if isinstance(full, nn.Parameter):
                continue
            expected = list(part.shape)
            for d in dims:
                expected[d] = full.shape[d]
            if list(full.shape) != expected:  # the strategy restarted this state (new size)
                full = torch.zeros(expected, dtype=part.dtype, device=part.device)
                container[name] = full
            with torch.no_grad():
                full[key] = part.to(full.dtype)
