"""The training loop: minimizes Σₜ αₜLₜ + λR(θ) with a pluggable balancing strategy.

In ``joint`` mode every step computes all task losses and hands them to the
:class:`~mtlkit.weighting.Weighting` strategy, which writes the gradients; in ``alternating``
mode (round-robin) each step updates one task's loss only, task after task.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mtlkit.data import BatchLoader, MultiInputDataset, MultiTaskDataset
from mtlkit.distributed.env import DistContext
from mtlkit.distributed.reduce import DistributedStep, label_counts
from mtlkit.models import MultiTaskModel
from mtlkit.tasks import Task, higher_is_better
from mtlkit.training.evaluation import evaluate, mean_loss, move
from mtlkit.training.regularization import penalty
from mtlkit.weighting import GradientEngine, Weighting, make_weighting, mtl_backward

TRAINING_MODES = ("joint", "alternating")


StepCallback = Callable[["Trainer", Any, Mapping[str, Tensor], Tensor], None]
"""``callback(trainer, inputs, targets, losses)``, called after every optimizer step (analysis
hooks such as gradient statistics or lookahead affinity); it must leave ``.grad`` and the
parameters as it found them."""


class NonFiniteLossError(RuntimeError):
    """A task's loss became NaN or infinite."""


def make_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, **options: Any
) -> torch.optim.Optimizer:
    """Any ``torch.optim`` optimizer by (case-insensitive) name."""
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


def make_scheduler(
    name: str | None, optimizer: torch.optim.Optimizer, **options: Any
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Any ``torch.optim.lr_scheduler`` class by name (stepped once per epoch), or ``None``."""
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
class History:
    """Per-epoch records: train losses per task, validation metrics per task, timings."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.nan
    stopped_early: bool = False


class Trainer:
    """Trains a :class:`MultiTaskModel`.

    Parameters
    ----------
    model, tasks:
        The model and its tasks (their ``weight`` fields are the fixed αₜ).
    weighting:
        The balancing strategy (default: equal weighting of the αₜ-weighted losses).
    optimizer, lr, optimizer_options:
        A ``torch.optim`` optimizer by name and its arguments.
    scheduler, scheduler_options:
        A ``torch.optim.lr_scheduler`` by name, stepped after every epoch.
    mode:
        ``"joint"`` or ``"alternating"`` (one task per step, round-robin).
    regularization, reg_strength, l1_ratio, reg_scope:
        The penalty λR(θ) on the shared parameters (``reg_scope="all"``: on every parameter).
    grad_clip:
        Maximum global gradient norm, or ``None``.
    param_groups:
        Optimizer parameter groups (e.g. per-group learning rates for fine-tuning); default:
        every trainable parameter of the model at ``lr``.
    monitor:
        What early stopping and model selection watch: ``"loss"`` (mean validation loss) or
        ``"TASK:METRIC"``.
    distributed:
        A :class:`~mtlkit.distributed.DistContext` for data-parallel training (each rank gets
        its shard of every global batch from a sharded :class:`BatchLoader`); ``None``: one
        process. Rank 0's model and strategy state are broadcast to every rank at construction.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Sequence[Task],
        weighting: Weighting | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        optimizer_options: Mapping[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
        mode: str = "joint",
        regularization: str = "none",
        reg_strength: float = 0.0,
        l1_ratio: float = 0.5,
        reg_scope: str = "shared",
        grad_clip: float | None = None,
        monitor: str = "loss",
        device: str | torch.device = "cpu",
        engine: GradientEngine | None = None,
        target_scaling: Mapping[str, tuple[float, float]] | None = None,
        progress: bool = True,
        eval_batch_size: int = 1024,
        on_nonfinite: str = "stop",
        step_callbacks: Sequence[StepCallback] = (),
        param_groups: list[dict[str, Any]] | None = None,
        distributed: DistContext | None = None,
    ) -> None:
        if mode not in TRAINING_MODES:
            raise ValueError(
                f"training.mode must be one of {', '.join(TRAINING_MODES)}, got {mode!r}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tasks = list(tasks)
        self.weighting = (weighting or make_weighting("ew", len(self.tasks))).to(self.device)
        if mode == "alternating" and not self.weighting.sums_losses:
            raise ValueError(
                "training.mode: alternating updates train one task per step; "
                f"{type(self.weighting).__name__} combines tasks and needs training.mode: joint"
            )
        # The parameter split is fixed for the trainer's life (freeze before building it).
        self.shared_params = [p for p in self.model.shared_parameters() if p.requires_grad]
        self.task_params = [p for p in self.model.task_specific_parameters() if p.requires_grad]
        self.last_shared_params = self._last_shared_params()
        self.mode = mode
        self.regularization, self.reg_strength, self.l1_ratio = (
            regularization,
            reg_strength,
            l1_ratio,
        )
        self.reg_scope = reg_scope
        self.grad_clip = grad_clip
        self.monitor = monitor
        self._monitor_sign = self._check_monitor(monitor)
        self.engine = engine or GradientEngine()
        if any(getattr(m, "uses_gradients", False) for m in self.weighting.modules()):
            self.engine.watch(self.model, self.shared_params)  # enables the layerwise Jacobian
        self.distributed = distributed
        self.dist: DistributedStep | None = None
        if distributed is not None:
            self._setup_distributed(distributed)
        self.target_scaling = dict(target_scaling or {})
        self.progress = progress and (distributed is None or distributed.is_main)
        self.eval_batch_size = eval_batch_size
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"training.on_nonfinite must be stop or skip, got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.step_callbacks = list(step_callbacks)
        self.skipped_batches = 0
        groups: list[dict[str, Any]] = param_groups or [
            {"params": [p for p in model.parameters() if p.requires_grad]}
        ]
        strategy_params = [p for p in self.weighting.parameters() if p.requires_grad]
        if strategy_params:
            groups.append({"params": strategy_params})
        self.optimizer = make_optimizer(optimizer, groups, lr, **dict(optimizer_options or {}))
        self.scheduler = make_scheduler(scheduler, self.optimizer, **dict(scheduler_options or {}))
        self.step = 0
        self.epoch = 0
        self.history = History()
        self.best_state: dict[str, Tensor] | None = None
        self._patience_left: int | None = None

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
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> list[Tensor | None]:
        """αₜLₜ per task, ``None`` for a task with no labelled row in the batch."""
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
        bad = ~torch.isfinite(losses.detach())
        if not bool(bad.any()):
            return True
        if self.on_nonfinite == "skip":
            self.skipped_batches += 1
            return False
        name = self.tasks[int(bad.nonzero()[0])].name
        raise NonFiniteLossError(
            f"task {name!r}: non-finite loss at epoch {self.epoch + 1}, step {self.step}"
        )

    def _penalty_backward(self) -> None:
        params = self.model.parameters() if self.reg_scope == "all" else self.shared_params
        value = penalty(params, self.regularization, self.reg_strength, self.l1_ratio)
        if value is not None:
            value.backward()

    def _global_losses(self, parts: Sequence[Tensor | None], targets) -> Tensor:
        """The loss vector (0 for absent tasks); global values when distributed."""
        zero = torch.zeros((), device=self.device)
        losses = torch.stack([zero if loss is None else loss for loss in parts])
        if self.dist is not None:
            losses = self.dist.global_losses(losses, label_counts(self.tasks, targets))
        return losses

    def _after_step(self, inputs, targets, parts: Sequence[Tensor | None], losses: Tensor) -> None:
        """The strategy's ``after_step`` hook: the same batch's losses at the new parameters."""
        with torch.no_grad():
            outputs, _ = self._forward(inputs)
            after = self._global_losses(self._loss_parts(outputs, targets), targets)
        absent = torch.tensor([p is None for p in parts], device=losses.device)
        nan = torch.full_like(losses, float("nan"))
        self.weighting.after_step(
            torch.where(absent, nan, losses.detach()), torch.where(absent, nan, after)
        )

    def train_step(self, inputs, targets: Mapping[str, Tensor]) -> Tensor | None:
        """One update; returns the detached task losses (``None`` for a skipped batch)."""
        self.model.train()
        inputs, targets = move(inputs, self.device), move(targets, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        self.engine.new_step()
        outputs, representation = self._forward(inputs)
        parts = self._loss_parts(outputs, targets)
        losses = self._global_losses(parts, targets)
        if self.dist is not None:  # global values, local gradients (see mtlkit.distributed)
            present = self.dist.present.tolist()
            parts = [loss if ok else None for loss, ok in zip(losses.unbind(), present)]
        if not self._is_finite(losses):
            return None
        self.engine.reduced_params.clear()
        if self.mode == "alternating":
            part = parts[self.step % len(self.tasks)]
            if part is not None:
                part.backward()
        else:
            mtl_backward(
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
        self._penalty_backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.weighting.wants_losses_after_step:
            self._after_step(inputs, targets, parts, losses)
        self.step += 1
        for callback in self.step_callbacks:
            callback(self, inputs, targets, losses.detach())
        return losses.detach()

    # ----------------------------------------------------------------------------------- epochs
    def train_epoch(self, loader: BatchLoader) -> dict[str, float]:
        totals = torch.zeros(len(self.tasks))
        counts = torch.zeros(len(self.tasks))
        skipped_before = self.skipped_batches
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=None if self.progress else True,  # None: off when not a terminal
            dynamic_ncols=True,
        )
        for inputs, targets in bar:
            losses = self.train_step(inputs, targets)
            if losses is None:
                continue
            losses = losses.cpu()
            present = torch.tensor([t.name in targets for t in self.tasks], dtype=torch.float)
            totals += losses * present
            counts += present
            if self.progress:
                running = totals / counts.clamp(min=1)
                bar.set_postfix({t.name: f"{v:.3f}" for t, v in zip(self.tasks, running)})
        if not counts.any() and self.skipped_batches > skipped_before:
            raise NonFiniteLossError(
                f"every batch of epoch {self.epoch + 1} had a non-finite loss "
                f"({self.skipped_batches - skipped_before} skipped); lower optim.lr or check "
                "the data"
            )
        means = totals / counts.clamp(min=1)
        self.weighting.on_epoch_end(means.to(self.device))
        return {t.name: float(v) for t, v in zip(self.tasks, means)}

    def score(self, val_results: Mapping[str, Mapping[str, float]]) -> float:
        """The monitored validation value, signed so that higher is better."""
        if self.monitor == "loss":
            return -mean_loss(val_results)
        task_name, _, metric = self.monitor.partition(":")
        return self._monitor_sign * val_results[task_name][metric]

    def evaluate(
        self, dataset: MultiTaskDataset | MultiInputDataset
    ) -> dict[str, dict[str, float]]:
        return evaluate(
            self.model,
            self.tasks,
            dataset,
            batch_size=self.eval_batch_size,
            device=self.device,
            target_scaling=self.target_scaling,
            distributed=self.distributed,
        )

    def fit(
        self,
        train_loader: BatchLoader,
        val_dataset: MultiTaskDataset | MultiInputDataset | None = None,
        epochs: int = 10,
        patience: int | None = None,
        on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None = None,
    ) -> History:
        """Train for up to ``epochs`` epochs (counting those already done), keeping the best model.

        With ``patience`` set, stops when the monitored validation value has not improved for
        that many epochs. ``on_epoch_end(trainer, record)`` runs after every epoch (logging,
        checkpoints).
        """
        if self._patience_left is None:
            self._patience_left = patience
        while self.epoch < epochs:
            start = time.perf_counter()
            train_losses = self.train_epoch(train_loader)
            record: dict[str, Any] = {
                "epoch": self.epoch + 1,
                "step": self.step,
                "train_loss": train_losses,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start,
            }
            if self.skipped_batches:
                record["skipped_batches"] = self.skipped_batches
            if val_dataset is not None:
                val = self.evaluate(val_dataset)
                record["val"] = val
                score = self.score(val)
                record["score"] = score
                improved = math.isnan(self.history.best_score) or score > self.history.best_score
                if improved:
                    self.history.best_score, self.history.best_epoch = score, self.epoch + 1
                    self.best_state = copy.deepcopy(self.model.state_dict())
                    self._patience_left = patience
                elif self._patience_left is not None:
                    self._patience_left -= 1
            self._step_scheduler(record.get("score"))
            self.epoch += 1
            self.history.epochs.append(record)
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
        """Everything needed to continue training exactly (references, as ``nn.Module``'s)."""
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
