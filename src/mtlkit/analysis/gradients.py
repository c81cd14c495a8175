"""Gradient relations between tasks: cosine similarity, conflict rate and gradient-norm ratio.

All measures are read off the Gramian ``G = J Jᵀ`` of the per-task gradients of the shared
parameters (``J`` is T × P, see :class:`mtlkit.weighting.GradientEngine`):

- cosine ``C[i, j] = G[i, j] / √(G[i, i] G[j, j])`` (0 where a gradient is zero);
- conflict: ``G[i, j] < 0``; the *conflict rate* of a pair is the share of recorded steps with a
  negative inner product;
- norm ratio ``R[i, j] = ‖gᵢ‖ / ‖gⱼ‖``, averaged over steps as a geometric mean (so that
  ``R[j, i] = 1 / R[i, j]``).

:class:`GradientRecorder` is a trainer step callback that records them every ``every`` steps; it
recomputes the task losses on the step's batch at the current (post-step) parameters and
differentiates them with :func:`torch.autograd.grad`, so ``.grad``, the parameters, the buffers
(batch-norm statistics) and the random number generator state are left as they were: a run with
the recorder follows exactly the trajectory of a run without it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mtlkit.training.trainer import Trainer


# ------------------------------------------------------------------------------- pure functions
def cosine_matrix(gramian: Tensor, eps: float = 1e-12) -> Tensor:
    """Pairwise cosine similarities from a Gramian; rows/columns of zero gradients are 0."""
    gramian = torch.as_tensor(gramian, dtype=torch.float64)
    norms = gramian.diagonal().clamp(min=0).sqrt()
    denom = norms[:, None] * norms[None, :]
    cos = torch.where(denom > eps, gramian / denom.clamp(min=eps), torch.zeros_like(gramian))
    return cos.clamp(-1.0, 1.0)


def conflict_matrix(gramian: Tensor) -> Tensor:
    """``True`` where two tasks' gradients have a negative inner product."""
    return torch.as_tensor(gramian) < 0


def norm_ratio_matrix(gramian: Tensor, eps: float = 1e-12) -> Tensor:
    """``R[i, j] = ‖gᵢ‖ / ‖gⱼ‖`` (``nan`` where ``‖gⱼ‖`` is 0)."""
    norms = torch.as_tensor(gramian, dtype=torch.float64).diagonal().clamp(min=0).sqrt()
    ratio = norms[:, None] / norms[None, :]
    return torch.where(norms[None, :] > eps, ratio, torch.full_like(ratio, float("nan")))


def gradient_cosine(g1: Tensor, g2: Tensor) -> float:
    """Cosine similarity of two (flattened) gradients."""
    jacobian = torch.stack([g1.reshape(-1), g2.reshape(-1)]).double()
    return float(cosine_matrix(jacobian @ jacobian.T)[0, 1])


@dataclass
class GradientRelations:
    """Gradient relations averaged over the recorded steps (T × T arrays, task order ``names``).

    ``cosine``: mean cosine similarity; ``conflict_rate``: share of steps with ``gᵢ·gⱼ < 0``;
    ``norm_ratio``: geometric mean of ``‖gᵢ‖ / ‖gⱼ‖``; ``counts``: steps where both tasks had a
    gradient (multi-input data may lack a task in a batch).
    """

    names: list[str]
    cosine: Tensor
    conflict_rate: Tensor
    norm_ratio: Tensor
    counts: Tensor
    steps: list[int] = field(default_factory=list)
    cosine_series: list[Tensor] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.names,
            "cosine": _nested(self.cosine),
            "conflict_rate": _nested(self.conflict_rate),
            "norm_ratio": _nested(self.norm_ratio),
            "counts": _nested(self.counts),
            "steps": list(self.steps),
            "cosine_series": [_nested(c) for c in self.cosine_series],
        }


def _nested(matrix: Tensor) -> list:
    values = matrix.tolist()
    return [[None if v != v else v for v in row] for row in values]  # NaN -> null in JSON


class GradientLog:
    """Per-step Gramians of the recorded steps, and their summary (:meth:`relations`)."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.steps: list[int] = []
        self.gramians: list[Tensor] = []
        self.present: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, gramian: Tensor, present: Tensor) -> None:
        self.steps.append(int(step))
        self.gramians.append(gramian.detach().double().cpu())
        self.present.append(present.detach().bool().cpu())

    def relations(self) -> GradientRelations:
        t = len(self.names)
        if not self.gramians:
            nan = torch.full((t, t), float("nan"), dtype=torch.float64)
            return GradientRelations(self.names, nan, nan.clone(), nan.clone(), torch.zeros(t, t))
        cos_sum = torch.zeros(t, t, dtype=torch.float64)
        conflict_sum = torch.zeros(t, t, dtype=torch.float64)
        log_ratio_sum = torch.zeros(t, t, dtype=torch.float64)
        ratio_count = torch.zeros(t, t, dtype=torch.float64)
        counts = torch.zeros(t, t, dtype=torch.float64)
        series = []
        for gramian, present in zip(self.gramians, self.present):
            both = (present[:, None] & present[None, :]).double()
            cos = cosine_matrix(gramian)
            series.append(torch.where(both > 0, cos, torch.full_like(cos, float("nan"))))
            cos_sum += cos * both
            conflict_sum += conflict_matrix(gramian).double() * both
            counts += both
            ratio = norm_ratio_matrix(gramian)
            ok = both.bool() & torch.isfinite(ratio) & (ratio > 0)
            log_ratio_sum += torch.where(ok, ratio.log(), torch.zeros_like(ratio))
            ratio_count += ok.double()
        safe = counts.clamp(min=1)
        nan = torch.full_like(counts, float("nan"))
        return GradientRelations(
            names=self.names,
            cosine=torch.where(counts > 0, cos_sum / safe, nan),
            conflict_rate=torch.where(counts > 0, conflict_sum / safe, nan),
            norm_ratio=torch.where(
                ratio_count > 0, (log_ratio_sum / ratio_count.clamp(min=1)).exp(), nan
            ),
            counts=counts,
            steps=list(self.steps),
            cosine_series=series,
        )


# ------------------------------------------------------------------------ trainer step callbacks
def _present_tasks(trainer: Trainer, losses: Tensor, targets: Mapping[str, Tensor]) -> Tensor:
    return torch.tensor(
        [bool(losses[i].requires_grad) and t.name in targets for i, t in enumerate(trainer.tasks)]
    )


@contextlib.contextmanager
def preserved_state(trainer: Trainer) -> Iterator[None]:
    """Restore the model's buffers and the global RNG state on exit (parameters: the caller).

    Dropout masks drawn inside the block then leave the training trajectory unchanged, and a
    forward pass in training mode cannot move batch-norm running statistics.
    """
    model = trainer.model
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    device = trainer.device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)


def shared_jacobian(
    trainer: Trainer, inputs: Any, targets: Mapping[str, Tensor]
) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
    """Task losses at the current parameters, the Jacobian of the shared parameters, those
    parameters and the mask of tasks present in the batch (``.grad`` is not touched)."""
    model = trainer.model
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    if not shared:
        raise ValueError(
            "gradient relations need shared parameters; this architecture shares none "
            "(use e.g. model.arch: hps)"
        )
    outputs = model(inputs)
    losses = trainer.task_losses(outputs, targets)
    present = _present_tasks(trainer, losses, targets)
    jacobian = trainer.engine.jacobian(losses, shared).detach()
    return losses, jacobian, shared, present


class GradientRecorder:
    """Step callback: logs the gradient Gramian of the shared parameters every ``every`` steps.

    Records at steps 1, 1 + every, 1 + 2·every, … (``trainer.step`` after the update).
    ``seconds`` is the time spent inside the callback. Read the result with :meth:`relations`.
    """

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every}")
        self.every = every
        self.seconds = 0.0
        self.log: GradientLog | None = None

    def due(self, trainer: Trainer) -> bool:
        return (trainer.step - 1) % self.every == 0

    def __call__(
        self, trainer: Trainer, inputs: Any, targets: Mapping[str, Tensor], losses: Tensor
    ) -> None:
        if not self.due(trainer):
            return
        start = time.perf_counter()
        if self.log is None:
            self.log = GradientLog([t.name for t in trainer.tasks])
        was_training = trainer.model.training
        trainer.model.train()
        with preserved_state(trainer):
            _, jacobian, _, present = shared_jacobian(trainer, inputs, targets)
        trainer.model.train(was_training)
        self.log.append(trainer.step, jacobian @ jacobian.T, present)
        self.seconds += time.perf_counter() - start

    def relations(self) -> GradientRelations:
        if self.log is None:
            raise ValueError("the recorder has not recorded any step yet")
        return self.log.relations()
