"""The training loop: minimizes Σₜ αₜLₜ + λR(θ) with a pluggable balancing strategy.

In ``joint`` mode every step computes all task losses and hands them to the
:class:`~mtlkit.weighting.Weighting` strategy, which writes the gradients; in ``alternating``
mode (round-robin) each step updates one task's loss only, task after task.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mtlkit._param_validation import Constraint, Interval, Options, validate_params
from mtlkit.data import BatchLoader, MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.env import DistContext
from mtlkit.distributed.reduce import DistributedStep, label_counts
from mtlkit.models.base import MultiTaskModel, check_model
from mtlkit.models.inputs import TabularInput, check_codes_on_host, codes_checked
from mtlkit.tasks import Task, higher_is_better
from mtlkit.training.console import epoch_line
from mtlkit.training.evaluation import EvalData, evaluate, mean_loss, move
from mtlkit.training.options import TRAINING_MODES, TrainingOptions
from mtlkit.training.precision import Precision
from mtlkit.training.regularization import penalty
from mtlkit.weighting import GradientEngine, Weighting, make_weighting, mtl_backward

__all__ = ["OPTIMIZER_CONSTRAINTS", "TRAINING_MODES", "History", "NonFiniteLossError", "Trainer"]

logger = logging.getLogger("mtlkit.training")

Batch = tuple[Any, Mapping[str, Tensor]]
"""``(inputs, {task: target})``: inputs a tensor, or ``{task: tensor}`` for multi-input data."""

TrainData = Iterable[Batch] | Dataset
Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau

StepCallback = Callable[["Trainer", Any, Mapping[str, Tensor], Tensor], None]
"""``callback(trainer, inputs, targets, losses)``, called after every optimizer step (analysis
hooks such as gradient statistics or lookahead affinity); it must leave ``.grad`` and the
parameters as it found them."""


class _MicroBatch(NamedTuple):
    inputs: Any
    targets: Mapping[str, Tensor]
    parts: list[Tensor | None]
    losses: Tensor
    checked: list[TabularInput]
    """Input layers whose codes were checked on the host (not again in a forward pass)."""


def as_loader(data: TrainData, batch_size: int) -> Iterable[Batch]:
    """Training batches from ``data``: a loader as it is; an mtlkit dataset in a shuffled
    :class:`BatchLoader`, any other torch ``Dataset`` in a shuffled ``DataLoader``, both of
    ``batch_size`` rows."""
    if isinstance(data, MultiTaskDataset | MultiInputDataset):
        return BatchLoader(data, batch_size, shuffle=True)
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=True)
    if not isinstance(data, Iterable):
        raise TypeError(
            f"training data: expected a torch Dataset or DataLoader (or any iterable of "
            f"(inputs, {{task: target}}) batches), got {type(data).__name__}"
        )
    return data


@contextlib.contextmanager
def warmed_up(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int) -> Iterator[None]:
    """Linear warm-up: inside, every group's rate is ``lr · (step+1)/warmup_steps`` while
    ``step < warmup_steps``; the scheduler's rate is restored on leaving."""
    if step >= warmup_steps:
        yield
        return
    factor = (step + 1) / warmup_steps
    rates = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, rates):
            group["lr"] = lr


class NonFiniteLossError(RuntimeError):
    """A task's loss became NaN or infinite: ``task 'X': non-finite loss at epoch E, step S``.

    On CUDA with ``on_nonfinite="stop"`` a step's losses are checked when the next step checks
    its own (or by :meth:`Trainer.state_dict`, or at the epoch's end), not at once: reading
    them at once would stall the host until the device has computed them, at every step. The
    error names the step whose loss it was; that step's update is applied by then, but no
    state (checkpoint) is taken after it, so the last checkpoint is the last good one.
    ``on_nonfinite="skip"`` must know before the update, so it reads every step's losses at
    once (one host sync per step).
    """


class _PendingCheck(NamedTuple):
    """A step's non-finite flags on their way to the host (see :class:`NonFiniteLossError`)."""

    bad: Tensor
    """(T,) bool, CPU; filled by a non-blocking copy once ``ready`` has passed."""
    ready: torch.cuda.Event | None
    epoch: int
    step: int


OPTIMIZER_CONSTRAINTS: dict[str, list[Constraint]] = {"lr": [Interval(Real, 0.0, None, "neither")]}
"""What :func:`make_optimizer` checks itself (the optimizer class checks its ``options``)."""


def make_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, **options: Any
) -> torch.optim.Optimizer:
    """Any ``torch.optim`` optimizer by (case-insensitive) name, learning rate ``lr > 0``."""
    validate_params(OPTIMIZER_CONSTRAINTS, {"lr": lr}, "optim")
    classes = {
        k.lower(): v
        for k, v in vars(torch.optim).items()
        if isinstance(v, type) and issubclass(v, torch.optim.Optimizer)
    }
    cls = classes.get(name.lower())
    if cls is None or cls is torch.optim.Optimizer:
        raise ValueError(f"optim.name: unknown optimizer {name!r}; e.g. adam, adamw, sgd, rmsprop")
    try:
        return cls(params, lr=lr, **options)
    except TypeError as err:
        raise ValueError(f"optim.options: bad options for {name!r}: {err}") from None


def optimizer_groups(
    model: nn.Module, weighting: nn.Module, groups: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The parameter groups to build an optimizer on: ``groups`` (default: one group of the
    model's trainable parameters) and, when the strategy learns parameters (e.g. uncertainty
    weighting's log-variances), one more group of those, with the optimizer's defaults."""
    groups = list(groups or [{"params": _trainable(model)}])
    strategy = _trainable(weighting)
    return [*groups, {"params": strategy}] if strategy else groups


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def make_scheduler(
    name: str | None, optimizer: torch.optim.Optimizer, **options: Any
) -> Scheduler | None:
    """Any ``torch.optim.lr_scheduler`` class by name, or ``None``."""
    if not name:
        return None
    classes = {
        k.lower(): v for k, v in vars(torch.optim.lr_scheduler).items() if isinstance(v, type)
    }
    cls = classes.get(name.lower())
    if cls is None:
        raise ValueError(
            f"optim.scheduler: unknown scheduler {name!r}; e.g. steplr, cosineannealinglr"
        )
    try:
        return cls(optimizer, **options)
    except TypeError as err:
        raise ValueError(f"optim.scheduler_options: bad options for {name!r}: {err}") from None


@dataclass
class _EpochPartial:
    """The sums of an epoch in progress: train losses (on the training device, so that adding
    a step's losses waits for nothing) and their batch counts (CPU) per task."""

    totals: Tensor
    counts: Tensor
    skipped_before: int
    """``Trainer.skipped_batches`` when the epoch began."""

    @classmethod
    def new(cls, num_tasks: int, skipped: int, device: torch.device) -> _EpochPartial:
        return cls(torch.zeros(num_tasks, device=device), torch.zeros(num_tasks), skipped)

    def state_dict(self) -> dict[str, Any]:
        """CPU tensors (a checkpoint loads on any device)."""
        return {
            "totals": self.totals.to("cpu", copy=True),
            "counts": self.counts.clone(),
            "skipped_before": self.skipped_before,
        }

    @classmethod
    def load(cls, state: Mapping[str, Any], device: torch.device) -> _EpochPartial:
        totals = state["totals"].to(device, copy=True)
        return cls(totals, state["counts"].clone(), state["skipped_before"])

    def means(self) -> Tensor:
        """Mean loss per task over the batches holding it (CPU)."""
        return self.totals.cpu() / self.counts.clamp(min=1)


@dataclass
class History:
    """Per-epoch records: train losses per task, validation metrics per task, timings."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.nan
    stopped_early: bool = False


class Trainer:
    """Trains a multi-task model: minimizes Σₜ αₜLₜ + λR(θ) with a balancing strategy.

    Parameters
    ----------
    model:
        A :class:`~mtlkit.models.MultiTaskModel` (``forward(x) -> {task: output}``, knowing its
        shared parameters); wrap your own trunk and heads with
        :class:`~mtlkit.models.SharedTrunk`.
    tasks:
        The tasks (their ``weight`` fields are the fixed αₜ).
    strategy:
        The balancing :class:`~mtlkit.weighting.Weighting` (default: equal weighting, ``ew``).
    optimizer:
        A ``torch.optim.Optimizer`` over the model's parameters (default: Adam, lr 10⁻³, over
        every trainable parameter). A strategy's learnable parameters (UW's log-variances) that
        the optimizer does not hold are added to it as a parameter group with the optimizer's
        defaults (refused when a ``scheduler`` is given, as it was built on the groups before);
        put ``strategy.parameters()`` in the optimizer yourself to choose their rate.
    scheduler:
        A ``torch.optim.lr_scheduler`` instance on ``optimizer``, stepped after every epoch or,
        with ``scheduler_interval="step"``, after every optimizer step. ``ReduceLROnPlateau``
        steps per epoch on the monitored validation value.
    options:
        The plain settings (mode, gradient accumulation, warm-up, precision, clipping,
        regularization, monitor, batch sizes): :class:`~mtlkit.training.TrainingOptions`.
    device:
        Where the model, strategy and batches go.
    target_scaling:
        ``{task: (mean, std)}`` of standardized regression targets; metrics are reported in the
        original units.
    step_callbacks:
        ``callback(trainer, inputs, targets, losses)`` after every optimizer step (analysis
        hooks); each must leave ``.grad`` and the parameters as it found them.
    distributed:
        A :class:`~mtlkit.distributed.DistContext` for data-parallel training (each rank gets
        its shard of every global batch from a sharded :class:`BatchLoader`); ``None``: one
        process. Rank 0's model and strategy state are broadcast to every rank at construction.
    engine:
        The :class:`~mtlkit.weighting.GradientEngine` (default: a new one).

    Example
    -------
    >>> import torch
    >>> from torch import nn
    >>> from mtlkit.models import SharedTrunk
    >>> from mtlkit.tasks import Task
    >>> tasks = [Task("a", "regression"), Task("b", "binary")]
    >>> model = SharedTrunk(nn.Linear(3, 8), heads={"a": nn.Linear(8, 1), "b": nn.Linear(8, 1)})
    >>> trainer = Trainer(model, tasks, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "scheduler_interval": [Options(("epoch", "step"))],
    }
    POSTFIX_SECONDS: ClassVar[float] = 1.0
    """The progress bar shows the running losses at most this often (reading them waits for
    the device)."""
    _fit_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "epochs": [Interval(Integral, 1, None)],
        "patience": [Interval(Integral, 1, None), None],
    }
    """:meth:`fit`'s settings."""

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Sequence[Task],
        strategy: Weighting | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        scheduler: Scheduler | None = None,
        scheduler_interval: str = "epoch",
        options: TrainingOptions | None = None,
        device: str | torch.device = "cpu",
        target_scaling: Mapping[str, tuple[float, float]] | None = None,
        step_callbacks: Sequence[StepCallback] = (),
        distributed: DistContext | None = None,
        engine: GradientEngine | None = None,
    ) -> None:
        check_model(model)
        self.options = options = options or TrainingOptions()
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tasks = list(tasks)
        self.weighting = (strategy or make_weighting("ew", len(self.tasks))).to(self.device)
        self.mode = options.mode
        if self.mode == "alternating" and not self.weighting.sums_losses:
            raise ValueError(
                "training.mode: alternating updates train one task per step; "
                f"{type(self.weighting).__name__} combines tasks and needs training.mode: joint"
            )
        # The parameter split is fixed for the trainer's life (freeze before building it).
        self.shared_params = [p for p in self.model.shared_parameters() if p.requires_grad]
        self.task_params = [p for p in self.model.task_specific_parameters() if p.requires_grad]
        self.last_shared_params = self._last_shared_params()
        self.monitor = options.monitor
        self._monitor_sign = self._check_monitor(options.monitor)
        self.engine = engine or GradientEngine()
        if any(getattr(m, "uses_gradients", False) for m in self.weighting.modules()):
            self.engine.watch(self.model, self.shared_params)  # enables the layerwise Jacobian
        self.distributed = distributed
        self.dist: DistributedStep | None = None
        if distributed is not None:
            if options.accumulate > 1:
                raise ValueError(
                    "training.accumulate: gradient accumulation is not supported with several "
                    "processes; raise data.batch_size instead"
                )
            self._setup_distributed(distributed)
        self.target_scaling = dict(target_scaling or {})
        self.progress = options.progress and (distributed is None or distributed.is_main)
        self.step_callbacks = list(step_callbacks)
        self.skipped_batches = 0
        self.optimizer = self._with_strategy_params(optimizer, scheduler)
        validate_params(
            self._parameter_constraints, {"scheduler_interval": scheduler_interval}, "trainer"
        )
        if scheduler is not None and getattr(scheduler, "optimizer", None) is not self.optimizer:
            raise ValueError("scheduler: it must be built on the trainer's optimizer")
        if scheduler_interval == "step" and isinstance(
            scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
        ):
            raise ValueError(
                "scheduler: ReduceLROnPlateau reads the validation value once per epoch; use "
                "scheduler_interval='epoch'"
            )
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.precision = Precision(options.precision, self.device, self.weighting)
        self.step = 0
        self.epoch = 0
        self.history = History()
        self.best_state: dict[str, Tensor] | None = None
        self._patience_left: int | None = None
        # on the device: adding a step's weights waits for nothing; read at epoch ends
        self._weight_sum = torch.zeros(len(self.tasks), device=self.device)
        self._weight_count = 0
        self._partial: _EpochPartial | None = None  # the epoch in progress
        self._lagged_finite_check = self.device.type == "cuda" and options.on_nonfinite == "stop"
        self._pending_check: _PendingCheck | None = None

    def _with_strategy_params(
        self, optimizer: torch.optim.Optimizer | None, scheduler: Scheduler | None
    ) -> torch.optim.Optimizer:
        if optimizer is None:
            return torch.optim.Adam(optimizer_groups(self.model, self.weighting), lr=1e-3)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer instance, got "
                f"{type(optimizer).__name__} (e.g. torch.optim.Adam(model.parameters(), lr=1e-3); "
                "mtlkit.training.make_optimizer builds one by name)"
            )
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [p for p in _trainable(self.weighting) if id(p) not in held]
        if missing and scheduler is not None:
            raise ValueError(
                f"optimizer: {type(self.weighting).__name__} has learnable parameters the "
                "optimizer does not hold, and a scheduler already reads its groups; build the "
                "optimizer with strategy.parameters() too"
            )
        if missing:
            optimizer.add_param_group({"params": missing})
        return optimizer

    def _setup_distributed(self, ctx: DistContext) -> None:
        for module in self.weighting.modules():
            if isinstance(module, Weighting) and not module.supports_sharded_representation():
                raise ValueError(
                    f"weighting: {type(module).__name__} is not exact with several processes "
                    "(in mode='representation' only strategies that use the Gramian alone are: "
                    "the representation rows are split across processes); use mode: exact"
                )
        self.dist = DistributedStep(ctx)
        self.engine.reduce = self.dist.reduce_jacobian
        self.engine.reduce_disjoint = self.dist.reduce_disjoint
        # every rank starts from rank 0's weights and strategy state (incl. random generators)
        model_state = ctx.broadcast_object(
            self.model.state_dict() if ctx.is_main else None, what="model broadcast"
        )
        self.model.load_state_dict(model_state)
        strategy_state = ctx.broadcast_object(
            self.weighting.state_dict() if ctx.is_main else None, what="strategy broadcast"
        )
        self.weighting.load_state_dict(strategy_state)

    def _last_shared_params(self) -> list[nn.Parameter] | None:
        """The layer where a strategy measuring gradient norms (GradNorm) wants them."""
        layers = {
            m.grad_norms_of for m in self.weighting.modules() if getattr(m, "needs_grad_norms", 0)
        }
        layer = next(iter(layers), "all")
        if layer == "all":
            return None
        params = self.model.last_shared_parameters(None if layer == "last" else layer)
        return [p for p in params if p.requires_grad]

    def _check_monitor(self, monitor: str) -> float:
        if monitor == "loss":
            return -1.0
        task_name, _, metric = monitor.partition(":")
        task = next((t for t in self.tasks if t.name == task_name), None)
        if task is None or metric not in task.metrics:
            raise ValueError(
                f"training.monitor: expected 'loss' or 'TASK:METRIC' with one of the tasks' "
                f"metrics, got {monitor!r}"
            )
        return 1.0 if higher_is_better(metric) else -1.0

    # ----------------------------------------------------------------------------------- steps
    def task_losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
        """The vector (α₁L₁, …, α_TL_T); a task absent from the batch contributes 0."""
        zero = torch.zeros((), device=self.device)
        losses = self._loss_parts(outputs, targets)
        return self.engine.stack([zero if loss is None else loss for loss in losses])

    def _loss_parts(
        self,
        outputs: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        counts: Tensor | None = None,
    ) -> list[Tensor | None]:
        """αₜLₜ per task, ``None`` for a task with no labelled row in the batch (``counts``:
        :func:`label_counts` of ``targets``, counted here if not given)."""
        if counts is None:
            counts = label_counts(self.tasks, targets)
        return [
            task.weight * task.compute_loss(outputs[task.name], targets[task.name])
            if task.name in outputs and bool(counts[i] > 0)
            else None
            for i, task in enumerate(self.tasks)
        ]

    def _forward(self, inputs) -> tuple[dict[str, Tensor], Tensor | None]:
        if isinstance(inputs, Tensor) and hasattr(self.model, "forward_with_representation"):
            return self.model.forward_with_representation(inputs)
        return self.model(inputs), None

    def _is_finite(self, losses: Tensor) -> bool:
        """Whether this step goes on; raises :class:`NonFiniteLossError` (for this step, or on
        CUDA for the step before: see there) unless non-finite batches are skipped."""
        self.check_pending_losses()
        bad = ~torch.isfinite(losses.detach())
        if self._lagged_finite_check:
            ready = None
            if bad.is_cuda:
                bad = bad.to("cpu", non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
            self._pending_check = _PendingCheck(bad, ready, self.epoch, self.step)
            return True
        if not bool(bad.any()):
            return True
        if self.options.on_nonfinite == "skip":
            self.skipped_batches += 1
            return False
        raise self._nonfinite_error(bad, self.epoch, self.step)

    def check_pending_losses(self) -> None:
        """Raise :class:`NonFiniteLossError` if the last step's losses, not checked yet (on
        CUDA), were not finite; :meth:`state_dict` and the end of an epoch call it."""
        pending, self._pending_check = self._pending_check, None
        if pending is None:
            return
        if pending.ready is not None:
            pending.ready.synchronize()  # the losses of that step only, not the queued work
        if bool(pending.bad.any()):
            raise self._nonfinite_error(pending.bad, pending.epoch, pending.step)

    def _nonfinite_error(self, bad: Tensor, epoch: int, step: int) -> NonFiniteLossError:
        name = self.tasks[int(bad.nonzero()[0])].name
        return NonFiniteLossError(
            f"task {name!r}: non-finite loss at epoch {epoch + 1}, step {step}"
        )

    def _penalty_backward(self) -> None:
        reg = self.options.regularization
        params = self.model.parameters() if reg.scope == "all" else self.shared_params
        value = penalty(params, reg.kind, reg.strength, reg.l1_ratio)
        if value is not None:
            value.backward()

    def _global_losses(
        self, parts: Sequence[Tensor | None], targets, counts: Tensor | None = None
    ) -> Tensor:
        """The loss vector (0 for absent tasks); global values when distributed (``counts``
        as in :meth:`_loss_parts`)."""
        zero = torch.zeros((), device=self.device)
        losses = torch.stack([zero if loss is None else loss.float() for loss in parts])
        if self.dist is not None:
            if counts is None:
                counts = label_counts(self.tasks, targets)
            losses = self.dist.global_losses(losses, counts)
        return losses

    def _after_step(self, inputs, targets, parts: Sequence[Tensor | None], losses: Tensor) -> None:
        """The strategy's ``after_step`` hook: the same batch's losses at the new parameters."""
        with torch.no_grad(), self.precision.autocast():
            outputs, _ = self._forward(inputs)
            after = self._global_losses(self._loss_parts(outputs, targets), targets)
        before, after = losses.detach().clone(), after.clone()
        for t, part in enumerate(parts):  # element writes: no host-to-device copy of a mask
            if part is None:
                before[t] = after[t] = float("nan")
        self.weighting.after_step(before, after)

    def train_step(self, inputs, targets: Mapping[str, Tensor]) -> Tensor | None:
        """One optimizer step on one batch; returns the detached task losses (``None`` for a
        skipped batch). :meth:`train_epoch` groups ``options.accumulate`` batches per step."""
        self.optimizer.zero_grad(set_to_none=True)
        micro = self._micro_step(inputs, targets)
        if micro is None:
            return None
        self._update(1, micro)
        return micro.losses

    def _micro_step(self, inputs, targets: Mapping[str, Tensor]) -> _MicroBatch | None:
        """Forward one batch and add its gradients to ``.grad`` (no optimizer step)."""
        self.model.train()
        # read on the CPU before the move: no host sync (a CUDA batch is read where it is)
        counts = label_counts(self.tasks, targets)
        checked = check_codes_on_host(self.model, inputs)
        inputs, targets = move(inputs, self.device), move(targets, self.device)
        self.engine.new_step()
        with self.precision.autocast(), codes_checked(checked):
            outputs, representation = self._forward(inputs)
            parts = self._loss_parts(outputs, targets, counts)
        parts = [None if p is None else p.float() for p in parts]
        losses = self._global_losses(parts, targets, counts)
        if self.dist is not None:  # global values, local gradients (see mtlkit.distributed)
            present = self.dist.present.tolist()
            parts = [loss if ok else None for loss, ok in zip(losses.unbind(), present)]
        if not self._is_finite(losses):
            return None
        self.engine.reduced_params.clear()
        parts = self.precision.scale_losses(parts)
        if self.mode == "alternating":
            task = self.step % len(self.tasks)
            if parts[task] is not None:
                parts[task].backward()
            weights = torch.zeros(len(self.tasks), device=self.device)
            weights[task] = 1.0
        else:
            weights = mtl_backward(
                parts,
                self.weighting,
                features=representation,
                shared_params=self.shared_params,
                task_params=self.task_params,
                last_shared_params=self.last_shared_params,
                engine=self.engine,
            )
        if self.dist is not None:
            self.dist.reduce_gradients(self.model.parameters(), skip=self.engine.reduced_params)
            self.engine.reduced_params.clear()
        self._weight_sum += weights.detach().float().to(self._weight_sum.device)
        self._weight_count += 1
        return _MicroBatch(inputs, targets, parts, losses.detach(), checked)

    def _update(self, micro_batches: int, last: _MicroBatch) -> None:
        """The optimizer step after ``micro_batches`` gradients were summed into ``.grad``."""
        self.precision.unscale(self.optimizer)
        if micro_batches > 1:
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.div_(micro_batches)
        self._penalty_backward()
        if self.options.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options.grad_clip)
        with warmed_up(self.optimizer, self.step, self.options.warmup_steps):
            self.precision.step(self.optimizer)
        if self.weighting.wants_losses_after_step:
            with codes_checked(last.checked):
                self._after_step(last.inputs, last.targets, last.parts, last.losses)
        self.step += 1
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        for callback in self.step_callbacks:
            callback(self, last.inputs, last.targets, last.losses)

    # ----------------------------------------------------------------------------------- epochs
    def train_epoch(
        self, loader: Iterable[Batch], on_step_end: Callable[[Trainer], None] | None = None
    ) -> dict[str, float]:
        """One pass over ``loader``: mean train loss per task (over the batches holding it).

        ``on_step_end(trainer)`` runs after every optimizer step taken as a batch arrives (a
        mid-epoch checkpoint: :meth:`state_dict` then holds the epoch's partial sums, consistent
        with the batches ``loader`` has yielded; not after the last step of an epoch whose
        batches do not fill ``options.accumulate``). After :meth:`load_state_dict` of such a
        state it continues that epoch (``loader`` restored to the same point yields the rest).
        """
        if self._partial is None:
            self._partial = _EpochPartial.new(len(self.tasks), self.skipped_batches, self.device)
            self._weight_sum.zero_()
            self._weight_count = 0
        partial = self._partial
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=None if self.progress else True,  # None: off when not a terminal
            dynamic_ncols=True,
        )
        accumulate, pending, last = self.options.accumulate, 0, None
        shown = -math.inf  # when the bar's running losses were last shown
        try:
            for inputs, targets in bar:
                if pending == 0:
                    self.optimizer.zero_grad(set_to_none=True)
                micro = self._micro_step(inputs, targets)
                if micro is None:
                    continue
                # a task whose labels are all masked in this batch has no loss (None), not 0
                present = [p is not None for p in micro.parts]
                partial.totals += self._present_losses(micro.losses, present)
                partial.counts += torch.tensor(present, dtype=torch.float)
                pending, last = pending + 1, micro
                if pending == accumulate:
                    self._update(pending, micro)
                    pending = 0
                    if on_step_end is not None:
                        on_step_end(self)
                if not bar.disable and time.monotonic() - shown >= self.POSTFIX_SECONDS:
                    shown = time.monotonic()  # reading the losses waits for the device
                    running = partial.means()
                    bar.set_postfix({t.name: f"{v:.3f}" for t, v in zip(self.tasks, running)})
            if pending and last is not None:
                self._update(pending, last)
            self.check_pending_losses()
        finally:  # an interrupted epoch is not continued by the next call (its loader restarts)
            self._partial = None
        if not partial.counts.any() and self.skipped_batches > partial.skipped_before:
            raise NonFiniteLossError(
                f"every batch of epoch {self.epoch + 1} had a non-finite loss "
                f"({self.skipped_batches - partial.skipped_before} skipped); lower optim.lr or "
                "check the data"
            )
        means = partial.means()
        self.weighting.on_epoch_end(means.to(self.device))
        return {t.name: float(v) for t, v in zip(self.tasks, means)}

    @staticmethod
    def _present_losses(losses: Tensor, present: Sequence[bool]) -> Tensor:
        """``losses`` with 0 for the tasks not present (element writes on the losses' device:
        no mask copied to it)."""
        if all(present):
            return losses
        losses = losses.clone()
        for t, ok in enumerate(present):
            if not ok:
                losses[t] = 0.0
        return losses

    def epoch_task_weights(self) -> dict[str, float]:
        """The strategy's task weights, averaged over the last epoch's micro-batches."""
        mean = self._weight_sum.cpu() / max(self._weight_count, 1)
        return {t.name: float(w) for t, w in zip(self.tasks, mean)}

    def score(self, val_results: Mapping[str, Mapping[str, float]]) -> float:
        """The monitored validation value, signed so that higher is better."""
        if self.monitor == "loss":
            return -mean_loss(val_results)
        task_name, _, metric = self.monitor.partition(":")
        return self._monitor_sign * val_results[task_name][metric]

    def evaluate(self, data: EvalData) -> dict[str, dict[str, float]]:
        """``{task: {metric: value, "loss": mean loss}}`` over a split (an mtlkit dataset, a torch
        ``Dataset`` of ``(input, {task: target})`` rows, or a loader of such batches)."""
        with self.precision.autocast():
            return evaluate(
                self.model,
                self.tasks,
                data,
                batch_size=self.options.eval_batch_size,
                device=self.device,
                target_scaling=self.target_scaling,
                distributed=self.distributed,
            )

    def fit(
        self,
        train: TrainData,
        val: EvalData | None = None,
        epochs: int = 10,
        patience: int | None = None,
        on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None = None,
        on_step_end: Callable[[Trainer], None] | None = None,
    ) -> History:
        """Train for up to ``epochs`` epochs (counting those already done), keeping the best model.

        ``train`` is a loader of ``(inputs, {task: target})`` batches (a torch ``DataLoader``, an
        mtlkit :class:`~mtlkit.data.BatchLoader`) or a dataset, batched here with
        ``options.batch_size`` rows, shuffled. ``val`` (any of those) is scored after every
        epoch. With ``patience`` set, stops when the monitored validation value has not improved
        for that many epochs. ``on_epoch_end(trainer, record)`` runs after every epoch (logging,
        checkpoints); the record is also logged as one line on the ``mtlkit.training`` logger.
        ``on_step_end(trainer)`` runs after optimizer steps inside an epoch (mid-epoch
        checkpoints, see :meth:`train_epoch`). A trainer restored from a mid-epoch state
        finishes that epoch first.
        """
        validate_params(self._fit_constraints, {"epochs": epochs, "patience": patience}, "fit")
        loader = as_loader(train, self.options.batch_size)
        if self._patience_left is None:
            self._patience_left = patience
        started, first_epoch = time.perf_counter(), self.epoch
        while self.epoch < epochs:
            start = time.perf_counter()
            train_losses = self.train_epoch(loader, on_step_end)
            record: dict[str, Any] = {
                "epoch": self.epoch + 1,
                "step": self.step,
                "train_loss": train_losses,
                "task_weights": self.epoch_task_weights(),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start,
            }
            if self.skipped_batches:
                record["skipped_batches"] = self.skipped_batches
            if val is not None:
                results = self.evaluate(val)
                record["val"] = results
                score = self.score(results)
                record["score"] = score
                # an undefined (NaN) value never improves: it counts against patience
                best = self.history.best_score
                improved = not math.isnan(score) and (math.isnan(best) or score > best)
                if improved:
                    self.history.best_score, self.history.best_epoch = score, self.epoch + 1
                    self.best_state = copy.deepcopy(self.model.state_dict())
                    self._patience_left = patience
                elif self._patience_left is not None:
                    self._patience_left -= 1
            if self.scheduler_interval == "epoch":
                self._step_scheduler(record.get("score"))
            self.epoch += 1
            self.history.epochs.append(record)
            if self.distributed is None or self.distributed.is_main:
                elapsed = time.perf_counter() - started
                eta = elapsed / (self.epoch - first_epoch) * (epochs - self.epoch)
                best = (self.history.best_score, self.history.best_epoch)
                logger.info(epoch_line(record, epochs, self.monitor, self._monitor_sign, best, eta))
            if on_epoch_end is not None:
                on_epoch_end(self, record)
            if self._patience_left is not None and self._patience_left <= 0:
                self.history.stopped_early = True
                break
        return self.history

    def _step_scheduler(self, score: float | None) -> None:
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if score is not None:
                self.scheduler.step(-score)
        else:
            self.scheduler.step()

    def restore_best(self) -> None:
        """Load the weights of the best validation epoch (if validation ran)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (references, as ``nn.Module``'s);
        inside an epoch also the epoch's partial sums (``epoch_partial``). Raises
        :class:`NonFiniteLossError` first if the last step's losses were not finite."""
        self.check_pending_losses()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "weighting": self.weighting.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "history": self.history,
            "best_state": self.best_state,
            "patience_left": self._patience_left,
            "skipped_batches": self.skipped_batches,
            "grad_scaler": None
            if self.precision.scaler is None
            else self.precision.scaler.state_dict(),
            "epoch_partial": None if self._partial is None else self._partial.state_dict(),
            "weight_sum": (self._weight_sum.to("cpu", copy=True), self._weight_count),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.history = state["history"]
        self.best_state = state["best_state"]
        self._patience_left = state["patience_left"]
        self.skipped_batches = state.get("skipped_batches", 0)
        if self.precision.scaler is not None and state.get("grad_scaler"):
            self.precision.scaler.load_state_dict(state["grad_scaler"])
        partial = state.get("epoch_partial")  # a state taken inside an epoch
        self._partial = None if partial is None else _EpochPartial.load(partial, self.device)
        if "weight_sum" in state:
            weight_sum, self._weight_count = state["weight_sum"]
            self._weight_sum = weight_sum.to(self.device, copy=True)
        self._pending_check = None
