"""FAMO: fast adaptive multitask optimisation, balancing the rates of loss decrease."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit.weighting.base import LossWeighting, StepContext


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
    γ, as in the authors' code). The authors update ``ξ`` right after the optimiser step with
    the loss of the same batch at the new parameters (an extra forward pass); here the update
    uses the next step's losses instead (no extra pass and no trainer hook): at step k the logit
    gradient is computed from the losses of steps k−1 and k. State (logits, Adam moments, the
    previous losses) lives in buffers, so checkpoints restore it.
    """

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
        self.register_buffer("previous", torch.full((num_tasks,), float("nan")).double())
        self.register_buffer("exp_avg", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.tensor(0))

    def weights(self, losses: Tensor) -> Tensor:
        current = losses.detach().double()
        return famo_weights(self.logits, current, self.min_losses).to(losses)

    def _update_logits(self, current: Tensor) -> None:
        grad = famo_logit_gradient(self.logits, self.previous, current, self.min_losses)
        grad = grad + self.weight_decay * self.logits
        beta1, beta2 = self.betas
        self.adam_steps += 1
        k = int(self.adam_steps)
        self.exp_avg.mul_(beta1).add_((1 - beta1) * grad)
        self.exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)
        m_hat = self.exp_avg / (1 - beta1**k)
        v_hat = self.exp_avg_sq / (1 - beta2**k)
        self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))

    def backward(self, losses: Tensor, ctx: StepContext) -> Tensor:
        current = losses.detach().double()
        if not torch.isnan(self.previous).any():
            self._update_logits(current)
        weights = self.weights(losses)
        (weights * losses).sum().backward()
        self.previous.copy_(current)
        return weights.detach()
