"""FAMO: fast adaptive multitask optimisation, balancing the rates of loss decrease."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting.base import LossWeighting, tasks_only


def famo_weights(logits: Tensor, losses: Tensor, min_losses: Tensor, eps: float = 1e-8) -> Tensor:
    """Weights on ``∇Lₜ`` of FAMO's update ``d = Σₜ (zₜ / c) ∇log(Lₜ − Lₜ*)``:
    ``wₜ = zₜ / (c Dₜ)``, ``z = softmax(ξ)``, ``Dₜ = Lₜ − Lₜ* + eps``, ``c = Σₜ zₜ/Dₜ`` (so
    ``Σ wₜ = 1``)."""
    z = torch.softmax(logits, dim=0)
    d = losses - min_losses + eps
    return z / (d * (z / d).sum())


def famo_logit_gradient(
    logits: Tensor, previous: Tensor, current: Tensor, min_losses: Tensor, eps: float = 1e-8
) -> Tensor:
    """``∂/∂ξ`` of FAMO's logit objective: ``J_softmax(ξ)ᵀ δ``, ``δₜ = log Dₜ(prev) − log
    Dₜ(now)``, i.e. ``z ⊙ (δ − zᵀδ)``."""
    delta = torch.log(previous - min_losses + eps) - torch.log(current - min_losses + eps)
    z = torch.softmax(logits, dim=0)
    return z * (delta - (z * delta).sum())


class FAMO(LossWeighting):
    """Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

    The logits ``ξ`` are updated by the strategy itself with Adam (``lr``, L2 ``weight_decay``
    γ, as in the authors' code) in :meth:`after_step`, from the losses of one batch before and
    after the optimizer step (the authors' extra forward pass; the trainer does it because FAMO
    declares ``wants_losses_after_step``; in a custom loop call
    ``strategy.after_step(losses_before, losses_after)``). Without it the logits stay at 0.
    State (logits, Adam moments) lives in buffers, so checkpoints restore it. ``eps`` is the
    authors' ``1e-8`` in ``Dₜ = Lₜ − Lₜ* + eps`` (weights and logit gradient); Adam's own
    epsilon is torch's default ``1e-8``, as in the authors' ``torch.optim.Adam``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None)],
        "min_losses": [Interval(Real, None, None)],
        "betas": [list, tuple],
        "eps": [Interval(Real, 0, None, closed="neither")],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    wants_losses_after_step = True
    per_task_state = {"logits": (0,), "min_losses": (0,), "exp_avg": (0,), "exp_avg_sq": (0,)}

    def __init__(
        self,
        num_tasks: int,
        lr: float = 0.025,
        weight_decay: float = 1e-3,
        min_losses: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.eps = eps
        self.register_buffer("logits", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("min_losses", torch.full((num_tasks,), float(min_losses)).double())
        self.register_buffer("exp_avg", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.tensor(0))

    def forward(self, losses: Tensor) -> Tensor:
        current = losses.detach().double()
        return famo_weights(self.logits, current, self.min_losses, self.eps).to(losses)

    def after_step(self, losses_before: Tensor, losses_after: Tensor) -> None:
        """One Adam step on the logits of the tasks with both losses finite (NaN: absent)."""
        before = losses_before.detach().double().to(self.logits.device)
        after = losses_after.detach().double().to(self.logits.device)
        present = (torch.isfinite(before) & torch.isfinite(after)).nonzero().flatten().tolist()
        if not present:
            return
        with tasks_only(self, present, self.num_tasks):
            self._update_logits(before[present], after[present])

    def _update_logits(self, previous: Tensor, current: Tensor) -> None:
        grad = famo_logit_gradient(self.logits, previous, current, self.min_losses, self.eps)
        grad = grad + self.weight_decay * self.logits
        beta1, beta2 = self.betas
        self.adam_steps += 1
        k = int(self.adam_steps)
        self.exp_avg.mul_(beta1).add_((1 - beta1) * grad)
        self.exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)
        m_hat = self.exp_avg / (1 - beta1**k)
        v_hat = self.exp_avg_sq / (1 - beta2**k)
        self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))
