"""Per-task gradients of the shared parameters: the Jacobian ``J`` (T × P) and Gramian ``J Jᵀ``.

How ``J`` is computed
---------------------
Two exact ways are implemented:

- ``"loop"``: one ``torch.autograd.grad`` per task (T reverse passes, graph retained).
- ``"batched"``: one vmapped reverse pass, ``torch.autograd.grad(losses, params,
  grad_outputs=I_T, is_grads_batched=True)``.

Which one is cheaper depends on the model, the batch and the device, so with ``method="auto"``
(the default) the engine *measures* both on the first ``probes`` calls for a given problem shape
and then keeps the faster one (``engine.choice``). A model whose operations vmap cannot batch is
measured as "batched unavailable" and uses the loop; this is an engine choice between two exact
computations, never a change of strategy.

``params`` may also contain non-leaf tensors (the shared representation, for the
representation-gradient approximation): both methods differentiate with respect to any tensor
in the graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

METHODS = ("auto", "loop", "batched")


def _flatten(grads: Sequence[Tensor | None], params: Sequence[Tensor], batch: int) -> Tensor:
    return torch.cat(
        [
            (
                g.reshape(batch, -1)
                if g is not None
                else torch.zeros(batch, p.numel(), dtype=p.dtype, device=p.device)
            )
            for g, p in zip(grads, params, strict=True)
        ],
        dim=1,
    )


def jacobian_loop(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
    """``J`` by one reverse pass per task."""
    rows = []
    for t in range(losses.shape[0]):
        if not losses[t].requires_grad:
            rows.append(_flatten([None] * len(params), params, 1))
            continue
        grads = torch.autograd.grad(losses[t], list(params), retain_graph=True, allow_unused=True)
        rows.append(_flatten(grads, params, 1))
    return torch.cat(rows, dim=0)


def jacobian_batched(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
    """``J`` by one vmapped reverse pass over the T unit vectors."""
    eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses,
        list(params),
        grad_outputs=eye,
        retain_graph=True,
        allow_unused=True,
        is_grads_batched=True,
    )
    return _flatten(grads, params, losses.shape[0])


class GradientEngine:
    """Computes per-task gradients of the shared parameters.

    Parameters
    ----------
    reduce:
        Applied to every Jacobian before a strategy sees it. Multi-process training passes a
        cross-process reduction here, so that strategies act on the global batch.
    reduce_disjoint:
        Applied instead of ``reduce`` to a Jacobian with respect to non-leaf tensors (the shared
        representation), whose columns belong to this process's rows only. Multi-process
        training returns a T × T factor of the global Gramian there (see
        :meth:`mtlkit.distributed.reduce.DistributedStep.reduce_disjoint`). Default: ``reduce``.
    method:
        ``"auto"`` (measure and choose), ``"loop"`` or ``"batched"``; see the module docstring.
    probes:
        With ``"auto"``: how many calls per problem shape time both methods before choosing.
    """

    def __init__(
        self,
        reduce: Callable[[Tensor], Tensor] | None = None,
        method: str = "auto",
        probes: int = 2,
        reduce_disjoint: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"engine.method: expected one of {METHODS}, got {method!r}")
        self.reduce = reduce
        self.reduce_disjoint = reduce_disjoint
        self.reduced_params: set[int] = set()
        """With ``reduce`` set: ids of the leaf tensors whose gradient :meth:`accumulate` wrote
        from a reduced Jacobian (identical on every process, so not to be all-reduced again);
        the trainer clears it every step."""
        self.method = method
        self.probes = probes
        self._timings: dict[tuple, dict[str, list[float]]] = {}
        self.choice: dict[tuple, str] = {}
        """The method chosen for each problem key ``(T, shapes, device)`` once measured."""

    def _key(self, losses: Tensor, params: Sequence[Tensor]) -> tuple:
        return (
            losses.shape[0],
            tuple(tuple(p.shape) for p in params),
            tuple(p.is_leaf for p in params),
            str(losses.device),
        )

    def _measure(self, key: tuple, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        timings = self._timings.setdefault(key, {"loop": [], "batched": []})
        start = time.perf_counter()
        result = jacobian_loop(losses, params)
        timings["loop"].append(time.perf_counter() - start)
        try:
            start = time.perf_counter()
            jacobian_batched(losses, params)
            timings["batched"].append(time.perf_counter() - start)
        except RuntimeError:  # an operation vmap cannot batch: only the loop is available
            timings["batched"].append(float("inf"))
        if len(timings["loop"]) >= self.probes:
            self.choice[key] = min(timings, key=lambda m: min(timings[m]))
        return result

    def jacobian(self, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        """``J[t] = ∂Lₜ/∂θ`` flattened over ``params``; rows of tasks without a graph are zero.

        The graph is retained, so the caller can still back-propagate through ``losses``.
        """
        params = list(params)
        if self.method == "loop":
            jacobian = jacobian_loop(losses, params)
        elif self.method == "batched":
            jacobian = jacobian_batched(losses, params)
        else:
            key = self._key(losses, params)
            method = self.choice.get(key)
            if method is None:
                jacobian = self._measure(key, losses, params)
            elif method == "loop":
                jacobian = jacobian_loop(losses, params)
            else:
                jacobian = jacobian_batched(losses, params)
        if self.reduce is None:
            return jacobian
        if self.reduce_disjoint is not None and not all(p.is_leaf for p in params):
            return self.reduce_disjoint(jacobian)
        return self.reduce(jacobian)

    def gramian(self, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        jacobian = self.jacobian(losses, params)
        return jacobian @ jacobian.T

    def accumulate(self, direction: Tensor, params: Sequence[Tensor]) -> None:
        """Add a flat direction (P,) to the gradients of ``params``.

        Leaf parameters get it added to ``.grad``; a non-leaf tensor (the shared representation)
        is back-propagated with it as its gradient, so that the parameters upstream receive
        ``(∂r/∂θ)ᵀ direction``.
        """
        offset = 0
        for p in params:
            n = p.numel()
            g = direction[offset : offset + n].view_as(p).to(p.dtype)
            offset += n
            if p.is_leaf:
                p.grad = g.clone() if p.grad is None else p.grad + g
                if self.reduce is not None:
                    self.reduced_params.add(id(p))
            else:
                torch.autograd.backward(p, g, retain_graph=True)

    def backward_weighted(
        self,
        losses: Tensor,
        weights: Tensor,
        shared_params: Sequence[Tensor],
        task_params: Sequence[Tensor],
        jacobian: Tensor | None = None,
    ) -> None:
        """Write ``∇ Σₜ wₜLₜ`` into ``.grad``.

        When the Jacobian of the (leaf) shared parameters is already at hand, their part is
        ``Jᵀw`` (a T × P product) instead of a second reverse pass through the shared layers;
        the task-specific parameters then get ``wₜ ∇Lₜ`` from a reverse pass limited to them.
        """
        weights = weights.detach().to(losses.dtype)
        objective = (weights * losses).sum()
        if jacobian is None or not shared_params or not all(p.is_leaf for p in shared_params):
            objective.backward()
            return
        task_params = [p for p in task_params if p.requires_grad]
        if task_params:
            torch.autograd.backward(objective, inputs=task_params)
        self.accumulate(weights.to(jacobian.dtype) @ jacobian, shared_params)
