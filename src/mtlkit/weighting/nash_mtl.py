"""Nash-MTL: the Nash bargaining solution between the tasks."""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._param_validation import Interval
from mtlkit.weighting._qp import nash_bargaining
from mtlkit.weighting.base import GramianWeighting


def nash_mtl_weights(
    gramian: Tensor, init: Tensor | None = None, ridge: float = 1e-9, max_norm: float = 0.0
) -> Tensor:
    """The ``α > 0`` solving ``G α = 1/α`` on the unnormalised Gramian, as the authors' code.

    ``d = Jᵀα`` is the Nash bargaining solution of Navon et al. (ICML 2022): every task's
    utility is ``gₜᵀd = 1/αₜ``, hence ``‖d‖² = αᵀGα = T`` (``‖d‖ = √T``) whatever the scale of
    the gradients. The authors' code (AvivNavon/nash-mtl) divides ``G`` by ``‖G‖_F`` for its
    convex programs but multiplies it back in the constraint ``αₜ (Gα)ₜ ≥ 1``, so this is the
    equation it solves. Solved exactly (Newton on ``½αᵀGα − Σ log αₜ``, :func:`nash_bargaining`)
    instead of by their sequence of convex programs; ``ridge`` adds ``ridge · Gₜₜ`` to the
    diagonal (scale-free), which only matters when some positive combination of the gradients
    vanishes (then there is no solution and the weights grow like ``ridge^{-1/2}``). A task with
    a zero gradient gets ``αₜ = 0``. ``init``: a previous solution, to warm-start. If
    ``max_norm > 0`` the weights are scaled down so that ``‖Jᵀα‖ ≤ max_norm``.
    """
    g = gramian.detach().to("cpu", torch.float64).numpy()
    g = 0.5 * (g + g.T)
    diag = np.diag(g).copy()
    t = g.shape[0]
    scale = float(diag.max()) if t else 0.0
    alpha = np.zeros(t)
    live = diag > 0.0
    if scale > 0.0:
        sub = g[np.ix_(live, live)] / scale  # for conditioning: α = ŵ / √scale
        sub = sub + ridge * np.diag(np.diag(sub))
        start = None
        if init is not None:
            start = init.detach().cpu().double().numpy()[live] * np.sqrt(scale)
            if not (np.all(np.isfinite(start)) and np.all(start > 0)):
                start = None
        alpha[live] = nash_bargaining(sub, start) / np.sqrt(scale)
    if max_norm > 0:
        d_norm = float(np.sqrt(max(alpha @ g @ alpha, 0.0)))
        if d_norm > max_norm:
            alpha = alpha * max_norm / d_norm
    return torch.as_tensor(alpha, dtype=gramian.dtype, device=gramian.device)


class NashMTL(GramianWeighting):
    """Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

    The previous solution warm-starts the next solve (buffer ``previous``, saved in
    checkpoints). The authors' ``update_weights_every`` is the generic ``every=k`` option.
    ``max_norm`` (declared as ``shared_max_norm``) clips the shared parameters' update on every
    step, as the authors' ``clip_grad_norm_(shared_parameters, max_norm)``; the heads are not
    clipped and the weights reported are the unclipped solution.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "ridge": [Interval(Real, 0, None)],
        "max_norm": [Interval(Real, 0, None)],
    }
    """Each option's allowed values (checked by :func:`mtlkit.weighting.make_weighting`)."""

    per_task_state = {"previous": (0,)}

    def __init__(self, num_tasks: int, ridge: float = 1e-9, max_norm: float = 1.0) -> None:
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
