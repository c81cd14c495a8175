"""Nash-MTL: the Nash bargaining solution between the tasks."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit.weighting._qp import nash_bargaining
from mtlkit.weighting.base import GramianWeighting


def nash_mtl_weights(
    gramian: Tensor, init: Tensor | None = None, ridge: float = 1e-6, max_norm: float = 0.0
) -> Tensor:
    """The ``w > 0`` solving ``G̃ w = 1/w`` with ``G̃ = G/‖G‖_F + ridge·I``.

    ``Jᵀw`` is the Nash bargaining solution of Navon et al.: every task's utility
    ``gₜᵀd = 1/wₜ`` and ``d`` is the maximiser of ``Σₜ log(gₜᵀd)`` in the ball. Like the
    authors' code, ``G`` is first normalised by its Frobenius norm (so the weights are
    ``‖G‖_F^{1/2}`` times those of the unnormalised equation); the tiny ``ridge`` keeps the
    problem well posed when ``G`` is singular. Solved exactly (Newton) instead of by the
    authors' sequence of convex programs. If ``max_norm > 0`` and ``‖Jᵀw‖ > max_norm`` the
    weights are rescaled to ``‖Jᵀw‖ = max_norm``.
    """
    g = gramian.detach().to("cpu", torch.float64).numpy()
    g = 0.5 * (g + g.T)
    norm = float(np.linalg.norm(g))
    t = g.shape[0]
    if norm == 0.0:
        return torch.zeros(t, dtype=gramian.dtype, device=gramian.device)
    gn = g / norm + ridge * np.eye(t)
    start = None if init is None else init.detach().cpu().double().numpy()
    if start is not None and not (np.all(np.isfinite(start)) and np.all(start > 0)):
        start = None
    w = nash_bargaining(gn, start)
    if max_norm > 0:
        d_norm = float(np.sqrt(max(w @ g @ w, 0.0)))
        if d_norm > max_norm:
            w = w * max_norm / d_norm
    return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


class NashMTL(GramianWeighting):
    """Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

    The previous solution warm-starts the next solve (buffer ``previous``, saved in
    checkpoints). The authors' ``update_weights_every`` is the generic ``every=k`` option.
    ``max_norm`` (declared as ``shared_max_norm``) clips the shared parameters' update on every
    step, as the authors' ``clip_grad_norm_(shared_parameters, max_norm)``; the heads are not
    clipped and the weights reported are the unclipped solution.
    """

    per_task_state = {"previous": (0,)}

    def __init__(self, num_tasks: int, ridge: float = 1e-6, max_norm: float = 1.0) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.ridge = ridge
        self.max_norm = max_norm
        self.shared_max_norm = max_norm
        self.register_buffer("previous", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("solved", torch.tensor(False))

    def forward(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        init = self.previous if bool(self.solved) else None
        w = nash_mtl_weights(gramian, init, self.ridge, 0.0)
        if torch.all(w > 0):
            # store the solution of the (unclipped) equation as the next warm start
            self.previous.copy_(w.detach().double().cpu())
            self.solved.fill_(True)
        return w
