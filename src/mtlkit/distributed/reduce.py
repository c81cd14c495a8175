"""Cross-rank reductions that make a sharded step equal to the one-process step.

Notation: the global batch is split in ``R`` shards; task ``t`` has ``c_{r,t}`` labelled rows
(labelled entries for the default multilabel / multi-output regression losses) on rank ``r`` and
``N_t = Σ_r c_{r,t}`` in the whole batch. Every task loss is a mean over its labelled rows, so the
global loss is ``L_t = Σ_r c_{r,t} L_{r,t} / N_t``.

Each rank rescales its loss to ``ℓ_{r,t} = L_{r,t} · R c_{r,t} / N_t``, whose mean over ranks is
``L_t`` exactly; so the *mean* over ranks of any gradient of ``ℓ_r`` is the global gradient, and
the mean of the ranks' Jacobians is the global Jacobian. The tensor handed to the strategy has
the global *value* ``L_t`` (identical bits on every rank) and the local *gradient* ``∇ℓ_{r,t}``
(:class:`_GlobalValue`), so loss-based weights and statistics are global while the backward
pass stays local.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from mtlkit.distributed.env import DistContext


class _GlobalValue(torch.autograd.Function):
    """Forward: the global value; backward: the gradient flows to the local tensor."""

    @staticmethod
    def forward(ctx, local: Tensor, global_value: Tensor) -> Tensor:  # noqa: D102
        return global_value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        return grad, None


def label_counts(tasks: Sequence, targets: Mapping[str, Tensor]) -> Tensor:
    """Per task: the number of labels its loss averages over in this shard (0 if absent)."""
    counts = []
    for task in tasks:
        target = targets.get(task.name)
        if target is None:
            counts.append(0.0)
        elif getattr(task, "loss", None) is None:
            counts.append(float(task.label_mask(target).sum()))
        else:  # a custom loss is taken to be a mean over the labelled rows
            counts.append(float(task.row_mask(target).sum()))
    return torch.tensor(counts, dtype=torch.float64)


def gramian_factor(gramian: Tensor) -> Tensor:
    """A T × T matrix ``F`` with ``F Fᵀ = G`` (G symmetric positive semi-definite)."""
    g = gramian.detach().double()
    g = 0.5 * (g + g.T)
    values, vectors = torch.linalg.eigh(g)
    return vectors * values.clamp(min=0.0).sqrt()


class DistributedStep:
    """The reductions one training step needs; built by the trainer from a :class:`DistContext`.

    Communication per step (``T`` tasks, ``P_s`` shared and ``P_t`` task-specific parameters):
    ``2T`` numbers for the losses, then

    - loss weighting: one all-reduce of the ``P_s + P_t`` gradients;
    - gradient strategies, exact mode: the ``T × P_s`` Jacobian plus the ``P_t`` task-specific
      gradients (the shared gradient ``Jᵀw`` / ``d`` is then computed identically on every rank);
    - representation mode: a ``T × T`` partial Gramian plus the ``P_s + P_t`` gradients;
    - ``every=k``: the Jacobian (or Gramian) only on the recomputation steps, ``P_s + P_t``
      otherwise.
    """

    def __init__(self, ctx: DistContext) -> None:
        self.ctx = ctx

    # -------------------------------------------------------------------------------- losses
    def global_losses(self, local: Tensor, counts: Tensor) -> Tensor:
        """The strategy's loss vector: global value, local (rescaled) gradient."""
        counts = counts.to(device=local.device, dtype=torch.float64)
        sums = counts * local.detach().double()
        reduced = self.ctx.all_reduce_sum(torch.cat([counts, sums]), "loss all-reduce")
        total, summed = reduced.chunk(2)
        positive = total > 0
        self.present = positive  # tasks with a label somewhere in the global batch
        safe = torch.where(positive, total, torch.ones_like(total))
        global_value = torch.where(positive, summed / safe, torch.zeros_like(summed))
        scale = torch.where(positive, self.ctx.world_size * counts / safe, torch.zeros_like(safe))
        rescaled = local * scale.to(local.dtype)
        return _GlobalValue.apply(rescaled, global_value.to(local.dtype))

    # ------------------------------------------------------------------------------ jacobians
    def reduce_jacobian(self, jacobian: Tensor) -> Tensor:
        """Jacobian of the shared parameters: mean over ranks (= the global-batch Jacobian)."""
        return self.ctx.all_reduce_mean(jacobian, "Jacobian all-reduce")

    def reduce_disjoint(self, jacobian: Tensor) -> Tensor:
        """Jacobian w.r.t. the shared representation (rows disjoint across ranks).

        The global Jacobian is the concatenation of the ranks' ``J_r / R``, so its Gramian is
        ``Σ_r J_r J_rᵀ / R²``: one all-reduce of a T × T matrix. What is returned is a T × T
        factor ``F`` of that Gramian (``F Fᵀ = G``): every Gramian-based strategy (and GradNorm's
        norms) sees exactly the global Gramian.
        """
        j = jacobian.detach().double()
        gramian = self.ctx.all_reduce_sum(j @ j.T, "Gramian all-reduce")
        gramian = gramian / self.ctx.world_size**2
        return gramian_factor(gramian).to(jacobian.dtype)

    # ------------------------------------------------------------------------------ gradients
    def reduce_gradients(self, params: Iterable[Tensor], skip: set[int] | None = None) -> None:
        """Average ``.grad`` over ranks, except for parameters in ``skip`` (ids of tensors whose
        gradient was computed from already-reduced quantities and is identical on every rank).
        """
        skip = skip or set()
        params = [p for p in params if p.requires_grad and id(p) not in skip]
        if not params:
            return
        present = torch.tensor(
            [p.grad is not None for p in params], dtype=torch.float32, device=self.ctx.device
        )
        self.ctx.all_reduce_max_(present, "gradient all-reduce")
        grads = []
        for p, flag in zip(params, present.tolist(), strict=True):
            if not flag:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p)
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for p in grads:
            by_dtype.setdefault(p.grad.dtype, []).append(p)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            flat = self.ctx.all_reduce_mean(flat, "gradient all-reduce")
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = flat[offset : offset + n].view_as(p).clone()
                offset += n

    # ------------------------------------------------------------------------------ metrics
    def gather(self, obj):
        return self.ctx.all_gather_object(obj, "evaluation gather")
