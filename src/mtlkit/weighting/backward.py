"""``mtl_backward``: the one function that turns task losses and a strategy into ``.grad``.

Every strategy is maths only (:mod:`mtlkit.weighting.base`); this module owns the plumbing, in
the spirit of torchjd's ``mtl_backward``:

- **Which parameters.** The *shared* parameters are those that lead to ``features`` in the
  autograd graph (or ``shared_params`` when given; with neither, those reached by two or more
  present tasks). The *task-specific* parameters are all other parameters the losses reach (or
  ``task_params`` when given): a head cannot be left without a gradient by forgetting it.
- **What each receives.** Shared parameters: ``Jᵀw`` for a weight strategy, the direction ``d``
  for a Jacobian aggregator. Task-specific parameters, for every strategy: the gradient of
  ``Σₜ cₜ φ(Lₜ)`` with ``cₜ = wₜ`` for a weight strategy (so a head of task t gets ``wₜ∇Lₜ``)
  and ``cₜ = 1`` for a direction strategy (its own ``∇φ(Lₜ)``; ``φ`` is the identity except
  for strategies declaring ``transform_losses``, e.g. DB-MTL's ``log(Lₜ + ε)`` whose factor is
  ``1/(Lₜ + ε)``). Least-squares weights are never applied to a head.
- **Absent tasks.** A loss given as ``None`` or without a graph (``requires_grad`` false) is a
  task absent from the batch: the strategy runs on the present tasks only (its per-task state is
  sliced to them and the absent tasks' state is left unchanged) and its weight is reported 0.
- **Clipping.** A strategy declaring ``shared_max_norm`` has the shared parameters' update
  clipped to that norm (never the heads'), on every step, ``every=k`` reuse steps included.
- **Engine.** Per-task gradients come from a :class:`~mtlkit.weighting.GradientEngine`; one
  engine per model (keyed weakly by its first shared parameter) is kept, so that the method
  chosen by timing is chosen once, not at every call.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mtlkit.weighting.base import (
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
    Weighting,
    least_squares_weights,
    tasks_only,
)
from mtlkit.weighting.engine import GradientEngine

_ENGINES: dict[int, tuple[weakref.ref, GradientEngine]] = {}
"""One engine per model, keyed by the id of its first shared parameter (held weakly: the entry
goes when the parameter does). Tensors compare elementwise, so no ``WeakKeyDictionary``."""


def engine_for(shared_params: Sequence[Tensor]) -> GradientEngine:
    """The engine kept for the model whose first shared parameter is ``shared_params[0]``."""
    key = shared_params[0]
    entry = _ENGINES.get(id(key))
    if entry is not None and entry[0]() is key:
        return entry[1]
    engine = GradientEngine()
    _ENGINES[id(key)] = (weakref.ref(key), engine)
    weakref.finalize(key, _ENGINES.pop, id(key), None)
    return engine


def graph_leaves(roots: Sequence[Tensor], stop: Sequence[Tensor] = ()) -> list[Tensor]:
    """The leaf tensors requiring grad that ``roots`` depend on, in the order first reached;
    the walk does not go past the tensors in ``stop``."""
    blocked = {t.grad_fn for t in stop if t.grad_fn is not None}
    seen: set = set()
    leaves: dict[int, Tensor] = {}
    nodes = [r.grad_fn for r in roots if r.grad_fn is not None]
    while nodes:
        node = nodes.pop()
        if node in seen or node in blocked:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.setdefault(id(variable), variable)
        nodes.extend(child for child, _ in node.next_functions if child is not None)
    return list(leaves.values())


def _as_list(x: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    if x is None:
        return []
    return [x] if isinstance(x, Tensor) else list(x)


def split_parameters(
    losses: Sequence[Tensor],
    features: Sequence[Tensor],
    shared_params: Sequence[Tensor] | None,
    task_params: Sequence[Tensor] | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """``(shared, task_specific)`` parameters of a step (see the module docstring)."""
    if shared_params is not None:
        shared = [p for p in shared_params if p.requires_grad]
    elif features:
        shared = graph_leaves(features)
    else:
        reached: dict[int, int] = {}
        order: dict[int, Tensor] = {}
        for loss in losses:
            for leaf in graph_leaves([loss]):
                reached[id(leaf)] = reached.get(id(leaf), 0) + 1
                order.setdefault(id(leaf), leaf)
        shared = [p for k, p in order.items() if reached[k] > 1]
    if task_params is not None:
        return shared, [p for p in task_params if p.requires_grad]
    shared_ids = {id(p) for p in shared}
    candidates = graph_leaves(losses, stop=features)
    return shared, [p for p in candidates if id(p) not in shared_ids]


def _add_grad(param: Tensor, grad: Tensor | None) -> None:
    if grad is None:
        return
    grad = grad.to(param.dtype)
    param.grad = grad.clone() if param.grad is None else param.grad + grad


@dataclass
class Step:
    """One call's data for the strategy handlers: present tasks only."""

    losses: Tensor
    """``φ(Lₜ)`` of the present tasks (in the graph), a vector made by ``engine.stack``."""
    shared: list[Tensor]
    task: list[Tensor]
    wrt: list[Tensor]
    """What the per-task gradients are taken with respect to: the shared parameters, or the
    shared representation (``mode="representation"``)."""
    engine: GradientEngine
    features: list[Tensor]
    max_norm: float = 0.0
    last_shared: list[Tensor] | None = None
    reduced: bool = False
    """Whether the shared update came from a reduced (cross-process) Jacobian."""

    @property
    def values(self) -> Tensor:
        return self.losses.detach()

    def jacobian(self, params: Sequence[Tensor] | None = None) -> Tensor:
        return self.engine.jacobian(self.losses, list(self.wrt if params is None else params))

    def _shared_from_direction(self, direction: Tensor) -> list[Tensor]:
        """Per-parameter gradients of the shared parameters for a flat direction over ``wrt``."""
        if all(p.is_leaf for p in self.wrt):
            chunks = direction.split([p.numel() for p in self.wrt])
            return [c.view_as(p) for c, p in zip(chunks, self.wrt, strict=True)]
        chunks = direction.split([r.numel() for r in self.wrt])
        outputs = [c.view_as(r).to(r.dtype) for c, r in zip(chunks, self.wrt, strict=True)]
        grads = torch.autograd.grad(
            self.wrt, self.shared, outputs, retain_graph=True, allow_unused=True
        )
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.shared)]

    def _write_shared(self, grads: Sequence[Tensor | None]) -> None:
        if self.max_norm > 0:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.double()) for g in grads if g is not None])
            )
            if float(norm) > self.max_norm:
                scale = self.max_norm / float(norm)
                grads = [None if g is None else g * scale for g in grads]
        for p, g in zip(self.shared, grads, strict=True):
            _add_grad(p, g)
            if self.reduced and self.engine.reduce is not None:
                self.engine.reduced_params.add(id(p))

    def _write_heads(self, coefficients: Tensor) -> None:
        if self.task:
            objective = (coefficients.detach().to(self.losses.dtype) * self.losses).sum()
            torch.autograd.backward(objective, inputs=self.task)

    def apply_weights(
        self, weights: Tensor, jacobian: Tensor | None = None, heads: Tensor | None = None
    ) -> None:
        """Shared: ``∇ Σ wₜLₜ`` (``Jᵀw`` when ``jacobian`` w.r.t. the leaf shared parameters is
        given); task-specific: ``∇ Σ cₜLₜ`` with ``c = heads`` (default ``w``)."""
        weights = weights.detach().to(self.losses.dtype)
        leaf_jacobian = jacobian is not None and all(p.is_leaf for p in self.wrt)
        if not leaf_jacobian and heads is None and self.max_norm == 0:  # one reverse pass
            if self.shared or self.task:
                objective = (weights * self.losses).sum()
                torch.autograd.backward(objective, inputs=self.shared + self.task)
            return
        if leaf_jacobian:
            self.reduced = True
            self._write_shared(self._shared_from_direction(weights.to(jacobian.dtype) @ jacobian))
        elif self.shared:
            objective = (weights * self.losses).sum()
            grads = torch.autograd.grad(
                objective, self.shared, retain_graph=True, allow_unused=True
            )
            self._write_shared(grads)
        self._write_heads(weights if heads is None else heads)

    def apply_direction(self, direction: Tensor) -> None:
        """Shared: ``d`` (over ``wrt``); task-specific: their own ``∇φ(Lₜ)``."""
        self.reduced = all(p.is_leaf for p in self.wrt)
        self._write_shared(self._shared_from_direction(direction))
        self._write_heads(torch.ones_like(self.values))


@functools.singledispatch
def run_strategy(strategy: Weighting, step: Step) -> Tensor:
    """Compute ``strategy``'s update for ``step``, write it, return the weights of the present
    tasks. One handler per kind of strategy; :mod:`mtlkit.weighting.approx` adds the modes."""
    raise TypeError(
        f"mtl_backward: {type(strategy).__name__} is not a LossWeighting, GramianWeighting or "
        "JacobianAggregator"
    )


@run_strategy.register
def _(strategy: LossWeighting, step: Step) -> Tensor:
    if strategy.needs_grad_norms:
        if step.wrt is not step.shared:  # mode="representation": norms w.r.t. the features
            norm_params: list[Tensor] | None = step.wrt
        elif strategy.grad_norms_of == "all":
            norm_params = step.shared
        else:
            norm_params = step.last_shared
        if norm_params is None:
            raise ValueError(
                f"{type(strategy).__name__}: the gradient norms on the last shared layer need "
                "last_shared_params= (e.g. model.last_shared_parameters()), or layer='all'"
            )
        norms = (
            step.jacobian(norm_params).double().norm(dim=1)
            if norm_params
            else torch.zeros_like(step.values, dtype=torch.float64)
        )
        weights = strategy(step.values, norms)
    else:
        weights = strategy(step.values)
    objective = (weights.to(step.losses.dtype) * step.losses).sum()
    penalty = strategy.penalty()
    if penalty is not None:
        objective = objective + penalty
    if step.max_norm > 0 and step.shared:
        step.apply_weights(weights)
    else:
        objective.backward(retain_graph=False)
    return weights.detach()


def _no_shared(step: Step) -> Tensor:
    """Nothing to combine (no shared parameters, e.g. STL): every task trains on its own."""
    weights = torch.ones_like(step.values)
    step.apply_weights(weights)
    return weights


@run_strategy.register
def _(strategy: GramianWeighting, step: Step) -> Tensor:
    if not step.wrt:
        return _no_shared(step)
    if not strategy.needs_gramian:
        weights = strategy(None, step.values).detach()
        step.apply_weights(weights)
        return weights
    jacobian = step.jacobian()
    weights = strategy(jacobian @ jacobian.T, step.values).detach()
    step.apply_weights(weights, jacobian=jacobian)
    return weights


@run_strategy.register
def _(strategy: JacobianAggregator, step: Step) -> Tensor:
    if not step.wrt:
        return _no_shared(step)
    jacobian = step.jacobian()
    if strategy.per_sample_features and not all(p.is_leaf for p in step.wrt):
        direction = strategy(jacobian, features=step.wrt).detach()
    else:
        direction = strategy(jacobian).detach()
    step.apply_direction(direction)
    return least_squares_weights(jacobian, direction).to(step.losses.dtype)


def is_present(loss: Tensor | None) -> bool:
    """A task is present in the batch if its loss is a tensor in the autograd graph."""
    return loss is not None and loss.requires_grad


def mtl_backward(
    losses: Sequence[Tensor | None],
    strategy: str | Weighting,
    *,
    features: Tensor | Sequence[Tensor] | None = None,
    shared_params: Sequence[Tensor] | None = None,
    task_params: Sequence[Tensor] | None = None,
    last_shared_params: Sequence[Tensor] | None = None,
    engine: GradientEngine | None = None,
) -> Tensor:
    """Write the update of ``strategy`` for the task ``losses`` into ``.grad`` (accumulating,
    like ``Tensor.backward``); return the weights used (0 for absent tasks), for logs.

    Parameters
    ----------
    losses:
        One scalar loss per task; ``None`` (or a tensor outside the graph) for a task absent from
        the batch.
    strategy:
        A strategy object, or the registry name of a stateless one (a stateful strategy must be
        built once with :func:`~mtlkit.weighting.make_weighting` and passed each step). On a
        GPU, move a stateful strategy with the model (``strategy.to(device)``); the gradients
        are computed on the device of the losses.
    features:
        The shared representation (tensor or tensors) the task heads read. Shared parameters
        are those leading to it; ``mode="representation"`` strategies differentiate w.r.t. it.
    shared_params, task_params:
        Override the split found from the graph (see the module docstring).
    last_shared_params:
        The last shared layer's parameters, for strategies measuring gradient norms there
        (GradNorm; the models give them as ``model.last_shared_parameters()``).
    engine:
        The gradient engine to use (default: one kept per model).

    Example
    -------
    >>> import torch
    >>> from torch import nn
    >>> trunk, heads = nn.Linear(3, 4), [nn.Linear(4, 1), nn.Linear(4, 1)]
    >>> x = torch.randn(8, 3)
    >>> z = trunk(x)
    >>> losses = [h(z).pow(2).mean() for h in heads]
    >>> mtl_backward(losses, "upgrad", features=z).shape
    torch.Size([2])
    """
    losses = list(losses)
    num_tasks = len(losses)
    if num_tasks == 0:
        raise ValueError("mtl_backward: losses is empty")
    for t, loss in enumerate(losses):
        if loss is not None and loss.numel() != 1:
            raise ValueError(
                f"mtl_backward: losses[{t}] must be a scalar, got shape {tuple(loss.shape)}"
            )
    if isinstance(strategy, str):
        strategy = _stateless(strategy, num_tasks)
    present = [t for t, loss in enumerate(losses) if is_present(loss)]
    reference = next((loss for loss in losses if loss is not None), None)
    if not present:
        if reference is None:
            return torch.zeros(num_tasks)
        return torch.zeros(num_tasks, dtype=reference.dtype, device=reference.device)
    parts = [losses[t].reshape(()) for t in present]  # type: ignore[union-attr]
    features_list = _as_list(features)
    shared, task = split_parameters(parts, features_list, shared_params, task_params)
    if engine is None:
        engine = engine_for(shared) if shared else GradientEngine()
    with tasks_only(strategy, present, num_tasks):
        # per task, so that each task's reverse pass starts at its own loss (engine.stack)
        vector = engine.stack([strategy.transform_losses(part) for part in parts])
        step = Step(
            losses=vector,
            shared=shared,
            task=task,
            wrt=shared,
            engine=engine,
            features=features_list,
            max_norm=float(strategy.shared_max_norm),
            last_shared=None if last_shared_params is None else list(last_shared_params),
        )
        try:
            weights = run_strategy(strategy, step)
        finally:
            engine.release_graph()  # no reference to this step's activations after it
    return _in_task_order(weights.detach(), present, num_tasks)


def _in_task_order(weights: Tensor, present: Sequence[int], num_tasks: int) -> Tensor:
    """The ``num_tasks`` weights: ``weights[i]`` at task ``present[i]``, 0 for the tasks not
    present. Built from views and a stack, with no index tensor (whose copy to the device would
    be a host sync on CUDA)."""
    if len(present) == num_tasks:
        return weights.clone()
    zero = weights.new_zeros(())
    slot = dict(zip(present, weights.unbind()))
    return torch.stack([slot.get(t, zero) for t in range(num_tasks)])


@functools.cache
def _stateless_check(name: str, num_tasks: int) -> None:
    from mtlkit.weighting.registry import make_weighting

    probe = make_weighting(name, num_tasks)
    if has_state(probe):
        raise ValueError(
            f"mtl_backward: strategy {name!r} keeps state between steps; build it once with "
            f"make_weighting({name!r}, num_tasks={num_tasks}) and pass the object every step"
        )


def _stateless(name: str, num_tasks: int) -> Weighting:
    from mtlkit.weighting.registry import make_weighting

    _stateless_check(name.lower(), num_tasks)
    return make_weighting(name, num_tasks)


def has_state(strategy: Weighting) -> bool:
    """Whether the strategy keeps anything between steps (parameters, buffers, extra state)."""
    for module in strategy.modules():
        if list(module.parameters(recurse=False)) or list(module.buffers(recurse=False)):
            return True
        if type(module).get_extra_state is not torch.nn.Module.get_extra_state:
            return True
    return False
