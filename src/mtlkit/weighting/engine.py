"""Per-task gradients of the shared parameters: the Jacobian ``J`` (T × P) and Gramian ``J Jᵀ``.

How ``J`` is computed
---------------------
Three exact ways are implemented:

- ``"loop"``: one ``torch.autograd.grad`` per task (T reverse passes, graph retained).
- ``"batched"``: one vmapped reverse pass, ``torch.autograd.grad(losses, params,
  grad_outputs=I_T, is_grads_batched=True)``.
- ``"layerwise"``: T reverse passes that stop at the outputs of the shared ``Linear``/``Conv2d``
  layers, whose weight columns are then built from the layers' inputs by one matrix product per
  layer for all tasks (:mod:`mtlkit.weighting.layerwise`) instead of T per-task weight-gradient
  kernels. The layer calls come from forward hooks when the model is watched
  (:meth:`GradientEngine.watch`, as the trainer does) and otherwise from the losses' autograd
  graph (:func:`~mtlkit.weighting.layerwise.graph_layer_calls`), so that ``mtl_backward`` from a
  custom loop, which knows no model, has the method too.

Which one is cheaper depends on the model, the batch and the device, so with ``method="auto"``
(the default) the engine *measures* them on the first ``probes`` calls for a given problem shape
and then keeps the fastest (``engine.choice``). A method that fails (an operation vmap cannot
batch) or, for ``"layerwise"``, whose Jacobian differs from the loop's at the first probe (a
watched layer's parameter used outside its ``forward``) is measured as unavailable. This is an
engine choice between exact computations, never a change of strategy. A forced
``method="layerwise"`` is checked against the loop the same way at its first call for each
problem shape and raises a ``ValueError`` naming the layer if it is not exact. Sparse
gradients (``nn.Embedding(sparse=True)``) become dense Jacobian columns.

The problem key includes whether the graph has shared layers for ``"layerwise"`` (a walk of
the autograd graph without a watched model). Once the method chosen for a shape is ``"loop"``
or ``"batched"``, later calls of that shape use it without the walk: both are exact whatever
the graph holds, so a change of the graph's layers could only have changed which exact method
is timed, never the result. A ``"layerwise"`` choice walks the graph every step (it needs that
step's layer calls).

``params`` may also contain non-leaf tensors (the shared representation, for the
representation-gradient approximation): both methods differentiate with respect to any tensor
in the graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from mtlkit.weighting.layerwise import (
    LayerCall,
    LayerRecorder,
    graph_layer_calls,
    jacobian_layerwise,
)

METHODS = ("auto", "loop", "batched", "layerwise")


def dense(grad: Tensor) -> Tensor:
    """A sparse gradient (``nn.Embedding(sparse=True)``) as a dense tensor: a Jacobian row is
    dense anyway."""
    return grad.to_dense() if grad.is_sparse else grad


def _flatten(grads: Sequence[Tensor | None], params: Sequence[Tensor], batch: int) -> Tensor:
    return torch.cat(
        [
            (
                dense(g).reshape(batch, -1)
                if g is not None
                else torch.zeros(batch, p.numel(), dtype=p.dtype, device=p.device)
            )
            for g, p in zip(grads, params, strict=True)
        ],
        dim=1,
    )


TaskLosses = Tensor | Sequence[Tensor]
"""The T task losses: a vector, or the T scalar tensors themselves (see
:meth:`GradientEngine.stack`)."""


def jacobian_loop(losses: TaskLosses, params: Sequence[Tensor]) -> Tensor:
    """``J`` by one reverse pass per task."""
    rows = []
    for loss in losses:
        if not loss.requires_grad:
            rows.append(_flatten([None] * len(params), params, 1))
            continue
        grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
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


def _same(a: Tensor, b: Tensor) -> bool:
    """Equal up to float rounding of differently ordered sums."""
    scale = b.abs().max().clamp_min(torch.finfo(b.dtype).tiny)
    return bool(((a - b).abs().max() <= 1e-4 * scale).item())


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
        ``"auto"`` (measure and choose), ``"loop"``, ``"batched"`` or ``"layerwise"``; see the
        module docstring.
    probes:
        With ``"auto"``: how many calls per problem shape time every method before choosing
        (the fastest by its best time after the first call; methods within ~10% of each other
        swap places between noisy probes, so fewer than 4 probes often pick the slower).
    """

    def __init__(
        self,
        reduce: Callable[[Tensor], Tensor] | None = None,
        method: str = "auto",
        probes: int = 4,
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
        self._checked: set[tuple] = set()
        self.choice: dict[tuple, str] = {}
        """The method chosen for each problem key ``(T, shapes, device)`` once measured."""
        self._graph_free: dict[tuple, str] = {}
        """Per shape (the key without its layerwise part): a chosen method that needs no layer
        calls, used without walking the graph (see the module docstring)."""
        self.recorder: LayerRecorder | None = None
        self._stacked: tuple[Tensor, list[Tensor]] | None = None
        self._found: tuple[Tensor, tuple[int, ...], list[LayerCall]] | None = None

    def stack(self, parts: Sequence[Tensor]) -> Tensor:
        """``torch.stack(parts)``, remembered until :meth:`new_step`.

        A per-task reverse pass from ``losses[t]`` of a stacked vector sends zero gradients
        through every other task's head (T² head backwards per Jacobian); for a vector made
        here the engine starts each pass at the task's own loss tensor instead.
        """
        parts = list(parts)
        losses = torch.stack(parts)
        self._stacked = (losses, parts)
        return losses

    def _parts(self, losses: Tensor) -> TaskLosses:
        if self._stacked is not None and self._stacked[0] is losses:
            return self._stacked[1]
        return losses

    def watch(self, model: nn.Module, shared_params: Sequence[Tensor]) -> None:
        """Record the calls of ``model``'s shared layers by forward hooks for the ``"layerwise"``
        method (instead of finding them in the losses' graph at every call).

        Call :meth:`new_step` before each forward pass (the trainer does).
        """
        self.unwatch()
        self.recorder = LayerRecorder(model, shared_params)

    def unwatch(self) -> None:
        if self.recorder is not None:
            self.recorder.remove()
        self.recorder = None

    def new_step(self) -> None:
        """Forget the layer calls and losses recorded so far (a new forward pass is to start)."""
        self._stacked = None
        self._found = None
        if self.recorder is not None:
            self.recorder.clear()

    def release_graph(self) -> None:
        """Drop the layer calls found in the last graph (they hold the layers' inputs), e.g.
        once a step's backward is done; :meth:`new_step` does it too."""
        self._found = None

    def layer_calls(self, losses: Tensor, params: Sequence[Tensor]) -> list[LayerCall]:
        """The shared layer calls the ``"layerwise"`` method builds columns for: the recorder's
        when watching, else those found in the graph of ``losses`` (kept for this vector)."""
        if self.recorder is not None:
            return self.recorder.usable_calls()
        ids = tuple(id(p) for p in params)
        if self._found is not None and self._found[0] is losses and self._found[1] == ids:
            return self._found[2]
        roots = self._parts(losses)
        calls = graph_layer_calls([roots] if isinstance(roots, Tensor) else roots, params)
        self._found = (losses, ids, calls)
        return calls

    def _layerwise_ready(self, losses: Tensor, params: Sequence[Tensor]) -> bool:
        return all(p.is_leaf for p in params) and bool(self.layer_calls(losses, params))

    def _compute(self, method: str, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        if method == "loop":
            return jacobian_loop(self._parts(losses), params)
        if method == "batched":
            return jacobian_batched(losses, params)
        if method == "layerwise":
            if not self._layerwise_ready(losses, params):
                raise ValueError(
                    "engine.method 'layerwise' needs leaf parameters and shared Linear/Conv2d "
                    "layers, found in the losses' graph or, with engine.watch(model, "
                    "shared_params), recorded since engine.new_step(); none were found"
                )
            return jacobian_layerwise(self._parts(losses), params, self.layer_calls(losses, params))
        raise ValueError(f"engine.method: expected one of {METHODS}, got {method!r}")

    def _shape_key(self, losses: Tensor, params: Sequence[Tensor]) -> tuple:
        return (
            losses.shape[0],
            tuple(tuple(p.shape) for p in params),
            tuple(p.is_leaf for p in params),
            str(losses.device),
        )

    def _key(self, losses: Tensor, params: Sequence[Tensor]) -> tuple:
        return (*self._shape_key(losses, params), self._layerwise_ready(losses, params))

    def _measure(self, key: tuple, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        methods = ["loop", "batched"] + (["layerwise"] if key[-1] else [])
        timings = self._timings.setdefault(key, {m: [] for m in methods})
        probe = len(timings["loop"])
        shift = probe % len(methods)  # each method takes its turn first (cold caches)
        results: dict[str, Tensor | None] = {}
        for method in methods[shift:] + methods[:shift]:
            if timings[method] and timings[method][-1] == float("inf"):
                results[method] = None  # found unavailable at an earlier probe
                continue
            try:
                start = time.perf_counter()
                results[method] = self._compute(method, losses, params)
                timings[method].append(time.perf_counter() - start)
            except RuntimeError:  # e.g. an operation vmap cannot batch
                if method == "loop":  # the reference: its own error says what is wrong
                    raise
                results[method] = None
                timings[method].append(float("inf"))
        reference = results["loop"]
        assert reference is not None  # the loop's errors propagate
        for method, jacobian in results.items():
            if jacobian is not None and not _same(jacobian, reference):
                timings[method][-1] = float("inf")  # not exact for this model: never choose it
        if probe + 1 >= self.probes:
            # the first probe pays one-off costs (allocator, kernels' first calls): left out
            self.choice[key] = min(timings, key=lambda m: min(timings[m][1:] or timings[m]))
        return reference

    def jacobian(self, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        """``J[t] = ∂Lₜ/∂θ`` flattened over ``params``; rows of tasks without a graph are zero.

        The graph is retained, so the caller can still back-propagate through ``losses``.
        """
        params = list(params)
        if self.method == "layerwise":
            jacobian = self._checked_layerwise(losses, params)
        elif self.method != "auto":
            jacobian = self._compute(self.method, losses, params)
        else:
            jacobian = self._auto(losses, params)
        if self.reduce is None:
            return jacobian
        if self.reduce_disjoint is not None and not all(p.is_leaf for p in params):
            return self.reduce_disjoint(jacobian)
        return self.reduce(jacobian)

    def _auto(self, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        """The chosen method's Jacobian, or a measuring probe's while none is chosen."""
        shape = self._shape_key(losses, params)
        method = self._graph_free.get(shape)
        if method is not None:
            return self._compute(method, losses, params)
        key = (*shape, self._layerwise_ready(losses, params))
        method = self.choice.get(key)
        if method is None:
            return self._measure(key, losses, params)
        if method != "layerwise":
            self._graph_free[shape] = method
        return self._compute(method, losses, params)

    def _checked_layerwise(self, losses: Tensor, params: Sequence[Tensor]) -> Tensor:
        """The forced ``"layerwise"`` Jacobian, checked against the loop at the first call for
        each problem shape, as ``"auto"`` does before choosing it; a mismatch is an error."""
        jacobian = self._compute("layerwise", losses, params)
        key = self._key(losses, params)
        if key in self._checked:
            return jacobian
        reference = jacobian_loop(self._parts(losses), params)
        if not _same(jacobian, reference):
            bad, offset = [], 0
            for p in params:
                block = slice(offset, offset + p.numel())
                offset += p.numel()
                if not _same(jacobian[:, block], reference[:, block]):
                    bad.append(self._describe(p))
            raise ValueError(
                "engine.method 'layerwise' is not exact for this model: the Jacobian columns of "
                f"{', '.join(bad)} differ from autograd's. A watched layer's parameter is used "
                "outside the layer's forward, or a forward hook registered before engine.watch "
                "changes its output; use method='auto' (which then avoids layerwise) or 'loop'."
            )
        self._checked.add(key)
        return jacobian

    def _describe(self, param: Tensor) -> str:
        if self.recorder is not None:
            for layer in self.recorder.layers:
                for name, p in layer.named_parameters(recurse=False):
                    if p is param:
                        return f"{layer}.{name}"
        return f"a parameter of shape {tuple(param.shape)}"

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
