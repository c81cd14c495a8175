"""Inter-task affinity by lookahead (Fifty et al., "Efficiently Identifying Task Groupings for
Multi-Task Learning", NeurIPS 2021, TAG).

    Z(i→j) = 1 − Lⱼ(θₛ − η gᵢ, θⱼ) / Lⱼ(θₛ, θⱼ)

where ``gᵢ = ∂Lᵢ/∂θₛ`` is task i's gradient of the *shared* parameters θₛ on the current batch,
θⱼ are task j's own parameters (unchanged by the lookahead) and ``η`` is the lookahead step
size. ``Z(i→j) > 0``: a step on task i alone lowers task j's loss (i helps j); ``< 0``: it raises
it. ``Z(j→j)`` (the diagonal) is how much j's own step lowers its loss.

Choices made here (documented in ``docs/relatedness.md``):

- the lookahead is a plain SGD step ``θₛ − η gᵢ`` with ``η`` the trainer's *current* learning
  rate (``lr=`` overrides it), whatever the optimizer: TAG's ranking of affinities does not need
  the optimizer's state, and a plain step keeps the measure comparable across optimizers. With a
  small η, ``Z(i→j) ≈ η gᵢ·gⱼ / Lⱼ`` (first order), so only relative values matter: grouping is
  invariant to scaling the matrix;
- it is computed after the trainer's update, at the new parameters, on the batch just used;
  losses are the trainer's weighted task losses ``αₜLₜ`` in training mode, with the same dropout
  masks for the reference and every lookahead forward (the RNG state is reset before each);
- parameters are restored bit-exactly (copied back from a saved clone), and so are buffers and
  the RNG state: a run with the recorder follows the trajectory of a run without it.

:func:`lookahead_affinity` computes one T × T matrix; :class:`AffinityRecorder` is a trainer step
callback averaging it over training every ``every`` steps (it also logs the gradient Gramian from
the same Jacobian, for :mod:`mtlkit.analysis.gradients`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlkit.analysis.gradients import GradientLog, GradientRelations, shared_jacobian

if TYPE_CHECKING:
    from mtlkit.training.trainer import Trainer


def _rng_snapshot(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _rng_restore(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def lookahead_affinity(
    trainer: Trainer,
    inputs: Any,
    targets: Mapping[str, Tensor],
    lr: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(Z, gramian, present)`` on one batch at the trainer's current parameters.

    ``Z[i, j] = Z(i→j)``; rows/columns of tasks absent from the batch are ``nan``. Leaves the
    parameters, ``.grad``, buffers and the RNG state as they were.
    """
    model = trainer.model
    device = trainer.device
    step = float(trainer.optimizer.param_groups[0]["lr"] if lr is None else lr)
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    rng = _rng_snapshot(device)
    was_training = model.training
    model.train()
    try:
        losses, jacobian, shared, present = shared_jacobian(trainer, inputs, targets)
        base = losses.detach().double()
        saved = [p.detach().clone() for p in shared]
        num_tasks = len(trainer.tasks)
        z = torch.full((num_tasks, num_tasks), float("nan"), dtype=torch.float64)
        sizes = [p.numel() for p in shared]
        try:
            for i in range(num_tasks):
                if not present[i]:
                    continue
                with torch.no_grad():
                    for p, g in zip(shared, jacobian[i].split(sizes)):
                        p.sub_(step * g.view_as(p).to(p.dtype))
                    for buffer, value in buffers:
                        buffer.copy_(value)
                    _rng_restore(rng, device)
                    after = trainer.task_losses(model(inputs), targets).detach().double()
                    for p, value in zip(shared, saved):
                        p.copy_(value)
                ratio = torch.where(base > 0, after / base, torch.ones_like(base))
                z[i] = (1.0 - ratio).cpu()
        finally:
            with torch.no_grad():
                for p, value in zip(shared, saved):
                    p.copy_(value)
        z[:, ~present] = float("nan")
    finally:
        with torch.no_grad():
            for buffer, value in buffers:
                buffer.copy_(value)
        _rng_restore(rng, device)
        model.train(was_training)
    return z, (jacobian @ jacobian.T).detach(), present


class AffinityRecorder:
    """Step callback: TAG lookahead affinity every ``every`` steps, averaged over training.

    Records at steps 1, 1 + every, … (``trainer.step`` after the update). ``seconds`` is the
    time spent inside the callback (the overhead); ``gradients`` logs the Gramian of the same
    Jacobian (cosines etc. at no extra cost). ``lr``: lookahead step size (default: the
    trainer's current learning rate).
    """

    def __init__(self, every: int = 1, lr: float | None = None) -> None:
        if every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every}")
        if lr is not None and lr <= 0:
            raise ValueError(f"lookahead lr: expected a value > 0, got {lr}")
        self.every = every
        self.lr = lr
        self.seconds = 0.0
        self.steps: list[int] = []
        self._sum: Tensor | None = None
        self._count: Tensor | None = None
        self.gradients: GradientLog | None = None
        self.names: list[str] = []

    def __call__(
        self, trainer: Trainer, inputs: Any, targets: Mapping[str, Tensor], losses: Tensor
    ) -> None:
        if (trainer.step - 1) % self.every:
            return
        start = time.perf_counter()
        if self._sum is None:
            self.names = [t.name for t in trainer.tasks]
            t = len(self.names)
            self._sum = torch.zeros(t, t, dtype=torch.float64)
            self._count = torch.zeros(t, t, dtype=torch.float64)
            self.gradients = GradientLog(self.names)
        z, gramian, present = lookahead_affinity(trainer, inputs, targets, self.lr)
        ok = torch.isfinite(z)
        self._sum += torch.where(ok, z, torch.zeros_like(z))
        self._count += ok.double()
        self.gradients.append(trainer.step, gramian, present)
        self.steps.append(trainer.step)
        self.seconds += time.perf_counter() - start

    def affinity(self) -> Tensor:
        """The mean ``Z[i, j] = Z(i→j)`` over the recorded steps (``nan``: never measured)."""
        if self._sum is None:
            raise ValueError("the recorder has not recorded any step yet")
        nan = torch.full_like(self._sum, float("nan"))
        return torch.where(self._count > 0, self._sum / self._count.clamp(min=1), nan)

    def relations(self) -> GradientRelations:
        if self.gradients is None:
            raise ValueError("the recorder has not recorded any step yet")
        return self.gradients.relations()
