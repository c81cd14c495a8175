"""The Trainer's plain settings, grouped: how a step is taken, penalized and checked.

Objects (model, tasks, strategy, optimizer, scheduler, data) are the Trainer's own arguments;
everything else a run chooses by value lives here, so that the configured run builds it from
the config in one place (:func:`mtlkit.runs.build.build_trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any, ClassVar

from mtlkit._param_validation import Constraint, Interval, Options, validate_params
from mtlkit.training.regularization import PENALTIES

TRAINING_MODES = ("joint", "alternating")
PRECISIONS = ("fp32", "bf16", "fp16")


def _validate(settings: Any, where: str) -> None:
    """Check a settings dataclass's fields against its ``_parameter_constraints``."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    validate_params(settings._parameter_constraints, values, where)


@dataclass(frozen=True)
class Regularization:
    """The penalty λR(θ) of Σₜ αₜLₜ + λR(θ): ``kind`` (none, l1, l2, elasticnet), λ = ``strength``,
    ρ = ``l1_ratio`` (elasticnet), on the ``shared`` parameters or on ``all`` of them."""

    kind: str = "none"
    strength: float = 0.0
    l1_ratio: float = 0.5
    scope: str = "shared"

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "kind": [Options(tuple(PENALTIES))],
        "strength": [Interval(Real, 0.0, None)],
        "l1_ratio": [Interval(Real, 0.0, 1.0)],
        "scope": [Options(("shared", "all"))],
    }

    def __post_init__(self) -> None:
        _validate(self, "regularization")


@dataclass(frozen=True)
class TrainingOptions:
    """How the :class:`~mtlkit.training.Trainer` steps.

    Parameters
    ----------
    mode:
        ``"joint"`` (every step: all task losses, combined by the strategy) or ``"alternating"``
        (one task per step, round-robin).
    accumulate:
        Micro-batches per optimizer step. The gradients of the ``k`` micro-batches are summed and
        divided by ``k`` (by the number of micro-batches in a shorter last group of an epoch), so
        for a strategy that sums the losses (EW, fixed weights) ``k`` batches of ``b`` rows take
        the step of one batch of ``k·b`` rows; a strategy that weighs tasks from the gradients
        weighs each micro-batch on its own.
    warmup_steps:
        Linear learning-rate warm-up: optimizer step ``s`` (from 0) uses ``lr · (s+1)/warmup_steps``
        while ``s < warmup_steps``, on top of the scheduler's rate.
    precision:
        ``fp32``; ``bf16`` (autocast to bfloat16, on CPU and GPU; no loss scaling needed); ``fp16``
        (autocast to float16 with a ``GradScaler``: CUDA only, and only with a strategy that sums
        the losses, the only ones for which scaling the losses scales the update exactly).
    grad_clip:
        Maximum global gradient norm, or ``None``.
    monitor:
        What early stopping and model selection watch: ``"loss"`` (mean validation loss) or
        ``"TASK:METRIC"``.
    on_nonfinite:
        ``"stop"`` (raise :class:`~mtlkit.training.NonFiniteLossError`) or ``"skip"`` the batch.
    batch_size:
        Rows per batch when :meth:`~mtlkit.training.Trainer.fit` is given a dataset instead of a
        loader (training data is shuffled).
    eval_batch_size:
        Rows per batch when evaluating a dataset.
    progress:
        A progress bar per epoch (when the console is a terminal).
    """

    mode: str = "joint"
    accumulate: int = 1
    warmup_steps: int = 0
    precision: str = "fp32"
    grad_clip: float | None = None
    regularization: Regularization = field(default_factory=Regularization)
    monitor: str = "loss"
    on_nonfinite: str = "stop"
    batch_size: int = 32
    eval_batch_size: int = 1024
    progress: bool = True

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "mode": [Options(TRAINING_MODES)],
        "accumulate": [Interval(Integral, 1, None)],
        "warmup_steps": [Interval(Integral, 0, None)],
        "precision": [Options(PRECISIONS)],
        "grad_clip": [Interval(Real, 0.0, None, closed="neither"), None],
        "regularization": [Regularization],
        "monitor": [str],
        "on_nonfinite": [Options(("stop", "skip"))],
        "batch_size": [Interval(Integral, 1, None)],
        "eval_batch_size": [Interval(Integral, 1, None)],
        "progress": [bool],
    }

    def __post_init__(self) -> None:
        _validate(self, "training")
