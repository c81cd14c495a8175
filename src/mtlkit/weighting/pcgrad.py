"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting._random import SeededMixin
from mtlkit.weighting.base import GramianWeighting


def pcgrad_weights(gramian: Tensor, orders: Sequence[Sequence[int]]) -> Tensor:
    """Weights ``w`` with ``Jᵀw = Σᵢ gᵢᴾᶜ``.

    For each task ``i``, start from ``gᵢᴾᶜ = gᵢ`` and, for ``j`` in ``orders[i]`` (``j ≠ i`` —
    an ``i`` in its own order is skipped), if ``gᵢᴾᶜ·gⱼ < 0`` set
    ``gᵢᴾᶜ ← gᵢᴾᶜ − (gᵢᴾᶜ·gⱼ / ‖gⱼ‖²) gⱼ``. Writing ``gᵢᴾᶜ = Jᵀcᵢ`` all inner products come
    from ``G``: ``gᵢᴾᶜ·gⱼ = (G cᵢ)ⱼ``.
    """
    g = gramian.detach().to("cpu", torch.float64).numpy()  # T² scalar steps: numpy, not torch
    t = g.shape[0]
    total = np.zeros(t)
    for i in range(t):
        c = np.zeros(t)
        c[i] = 1.0
        for j in orders[i]:
            j = int(j)
            if j == i:
                continue
            dot = g[j] @ c
            if dot < 0.0 and g[j, j] > 0.0:
                c[j] -= dot / g[j, j]
        total += c
    return torch.as_tensor(total, dtype=gramian.dtype, device=gramian.device)


class PCGrad(SeededMixin, GramianWeighting):
    """Gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

    ``d = Σᵢ gᵢᴾᶜ`` (a sum, as in the paper). Each task visits the others in a fresh random
    order drawn from the strategy's own seeded generator (``seed``).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "seed": [Interval(Integral, None, None), None],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    def __init__(self, num_tasks: int, seed: int | None = 0) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self._init_generator(seed)

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        t = gramian.shape[0]
        orders = [torch.randperm(t, generator=self.generator).tolist() for _ in range(t)]
        return pcgrad_weights(gramian, orders)
