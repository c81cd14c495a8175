"""GradDrop: keep, coordinate by coordinate, only the gradients of one sign."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit.weighting._random import SeededMixin
from mtlkit.weighting.base import JacobianAggregator


def graddrop_direction(jacobian: Tensor, uniform: Tensor, leak: float = 0.0) -> Tensor:
    """``d = Σᵢ (ℓ + (1−ℓ) Mᵢ) ⊙ gᵢ`` with the sign purity ``P = ½(1 + Σᵢgᵢ / Σᵢ|gᵢ|)`` and
    masks ``Mᵢ = [P > U]·[gᵢ > 0] + [P < U]·[gᵢ < 0]`` for ``U ~ Uniform(0, 1)`` (``uniform``,
    one per coordinate). Coordinates where every ``gᵢ`` is 0 get ``P = ½``.
    """
    total_abs = jacobian.abs().sum(dim=0)
    purity = 0.5 * (1.0 + jacobian.sum(dim=0) / torch.where(total_abs > 0, total_abs, 1.0))
    keep_pos = (purity > uniform) & (jacobian > 0)
    keep_neg = (purity < uniform) & (jacobian < 0)
    mask = (keep_pos | keep_neg).to(jacobian.dtype)
    return ((leak + (1.0 - leak) * mask) * jacobian).sum(dim=0)


class GradDrop(SeededMixin, JacobianAggregator):
    """Gradient sign dropout (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models
    with Gradient Sign Dropout", NeurIPS 2020, Algorithm 1 lines 10–15, with ``f`` the identity).

    The paper applies it to the gradients at the shared activations: use ``mode="representation"``
    for that; by default it acts on the shared parameters' gradients (as torchjd's GradDrop).
    ``leak`` is the fraction of every gradient always let through.
    """

    def __init__(self, num_tasks: int, leak: float = 0.0, seed: int | None = 0) -> None:
        super().__init__()
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"graddrop.leak must be in [0, 1], got {leak}")
        self.num_tasks = num_tasks
        self.leak = leak
        self._init_generator(seed)

    def forward(self, jacobian: Tensor) -> Tensor:
        uniform = torch.rand(jacobian.shape[1], generator=self.generator, dtype=jacobian.dtype)
        return graddrop_direction(jacobian, uniform.to(jacobian.device), self.leak)
