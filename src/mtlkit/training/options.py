"""The Trainer's plain settings, grouped: how a step is taken, penalized and checked.

Objects (model, tasks, strategy, optimizer, scheduler, data) are the Trainer's own arguments;
everything else a run chooses by value lives here, so that the configured run builds it from
the config in one place (:func:`mtlkit.runs.build.build_trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlkit.training.regularization import PENALTIES

TRAINING_MODES = ("joint", "alternating")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Regularization:
    """The penalty λR(θ) of Σₜ αₜLₜ + λR(θ): ``kind`` (none, l1, l2, elasticnet), λ = ``strength``,
    ρ = ``l1_ratio`` (elasticnet), on the ``shared`` parameters or on ``all`` of them."""

    kind: str = "none"
    strength: float = 0.0
    l1_ratio: float = 0.5
    scope: str = "shared"

    def __post_init__(self) -> None:
        if self.kind not in PENALTIES:
            raise ValueError(
                f"regularization.kind must be one of {', '.join(PENALTIES)}, got {self.kind!r}"
            )
        if self.strength < 0:
            raise ValueError(f"regularization.strength must be >= 0, got {self.strength}")
        if not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"regularization.l1_ratio must be in [0, 1], got {self.l1_ratio}")
        if self.scope not in ("shared", "all"):
            raise ValueError(f"regularization.scope must be shared or all, got {self.scope!r}")


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

    def __post_init__(self) -> None:
        if self.mode not in TRAINING_MODES:
            raise ValueError(
                f"training.mode must be one of {', '.join(TRAINING_MODES)}, got {self.mode!r}"
            )
        for name in ("accumulate", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"training.{name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(
                f"training.warmup_steps must be an integer >= 0, got {self.warmup_steps!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"training.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"training.grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError(
                f"training.on_nonfinite must be stop or skip, got {self.on_nonfinite!r}"
            )
