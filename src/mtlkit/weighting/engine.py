"""Per-task gradients of the shared parameters: the Jacobian ``J`` (T × P) and Gramian ``J Jᵀ``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


class GradientEngine:
    """Computes per-task gradients of the shared parameters.

    Parameters
    ----------
    reduce:
        Applied to every Jacobian or Gramian before a strategy sees it. Multi-process training
        passes a cross-process reduction here, so that strategies act on the global batch.
    """

    def __init__(self, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        self.reduce = reduce

    def jacobian(self, losses: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
        """``J[t] = ∂Lₜ/∂θ`` flattened over ``params``; rows of tasks without a graph are zero."""
        rows = []
        for t in range(losses.shape[0]):
            grads = torch.autograd.grad(
                losses[t], list(params), retain_graph=True, allow_unused=True
            )
            rows.append(
                torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).reshape(-1)
                        for g, p in zip(grads, params, strict=True)
                    ]
                )
            )
        jacobian = torch.stack(rows)
        return self.reduce(jacobian) if self.reduce is not None else jacobian

    def gramian(self, losses: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
        jacobian = self.jacobian(losses, params)
        return jacobian @ jacobian.T

    @staticmethod
    def accumulate(direction: Tensor, params: Sequence[nn.Parameter]) -> None:
        """Add a flat direction (P,) to the ``.grad`` of ``params``."""
        offset = 0
        for p in params:
            n = p.numel()
            g = direction[offset : offset + n].view_as(p).to(p.dtype)
            p.grad = g.clone() if p.grad is None else p.grad + g
            offset += n
