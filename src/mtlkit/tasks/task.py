"""The :class:`Task`: one prediction problem of a multi-task model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from torch import Tensor

from mtlkit.tasks.class_weights import (
    BALANCED,
    ClassWeight,
    PosWeight,
    balanced_class_weight,
    balanced_pos_weight,
    class_weight_list,
    pos_weight_list,
)
from mtlkit.tasks.kinds import IGNORE_INDEX, KINDS, TaskKind, get_kind
from mtlkit.tasks.kinds.base import loss_on_labelled_rows

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Task:
    """One task of a multi-task problem.

    Parameters
    ----------
    name:
        Unique name; the key of the task's targets, outputs and metrics.
    kind:
        The name of a registered :class:`~mtlkit.tasks.kinds.TaskKind` (or the object):
        ``multiclass`` (integer class ids, softmax cross-entropy), ``binary`` (0/1, one logit),
        ``multilabel`` (0/1 per label, one logit per label) or ``regression`` (real values).
        The object is :attr:`spec`.
    num_outputs:
        Size of the task head's output: number of classes, 1, number of labels, or number of
        regression targets.
    loss:
        ``loss(prediction, target) -> scalar`` on *labelled rows only*; defaults per kind.
        (Selecting those rows reads the batch on the host: a sync per step on CUDA, which the
        default losses, masked means, avoid.)
    metrics:
        Metric names (see :mod:`mtlkit.tasks.metrics`); the first one is the task's main metric.
    weight:
        Fixed weight αₜ of the task in the joint loss Σₜ αₜ Lₜ.
    ignore_index:
        Class label that marks a missing label. Missing regression targets are NaN.
    class_weight:
        Multiclass and binary tasks: per-class loss weights, ``"balanced"``
        (``n / (K · n_k)``), ``{label: w}`` or one weight per class; see
        :mod:`mtlkit.tasks.class_weights`. ``"balanced"`` is resolved from the training targets
        by :meth:`fit_class_weights`.
    pos_weight:
        Binary and multilabel tasks: weight of the positive term of the binary cross-entropy,
        a number, one per label, or ``"balanced"`` (``n₋ / n₊``).

    A missing label is masked everywhere: the loss averages over labelled rows only, and a batch
    without any label for the task contributes a zero loss with a zero (not NaN) gradient.
    """

    name: str
    kind: str
    num_outputs: int = 1
    loss: LossFn | None = None
    metrics: Sequence[str] | None = None
    weight: float = 1.0
    ignore_index: int = IGNORE_INDEX
    class_names: Sequence[str] | None = field(default=None, repr=False)
    class_weight: ClassWeight | None = None
    pos_weight: PosWeight | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        if isinstance(self.kind, TaskKind):
            self.kind = self.kind.name
        spec = get_kind(self.kind, task=self.name)
        self.num_outputs = spec.num_outputs(self.num_outputs, self.name)
        if self.weight < 0:
            raise ValueError(f"task {self.name!r}: weight must be >= 0, got {self.weight}")
        if self.metrics is None:
            self.metrics = spec.default_metrics
        for metric in self.metrics:
            spec.check_metric(metric, task=self.name)
        self.metrics = tuple(self.metrics)
        self._check_loss_weights()

    @property
    def spec(self) -> TaskKind:
        """The :class:`~mtlkit.tasks.kinds.TaskKind` object of :attr:`kind`."""
        return KINDS[self.kind]

    def _check_loss_weights(self) -> None:
        for option in ("class_weight", "pos_weight"):
            kinds = [kind.name for kind in KINDS.values() if getattr(kind, option)]
            if getattr(self, option) is not None and self.kind not in kinds:
                raise ValueError(
                    f"task {self.name!r}: {option} applies to {' and '.join(kinds)} tasks, "
                    f"not to a {self.kind} task"
                )
        if self.class_weight is not None and self.pos_weight is not None:
            raise ValueError(f"task {self.name!r}: give class_weight or pos_weight, not both")
        if (self.class_weight is not None or self.pos_weight is not None) and self.loss:
            raise ValueError(
                f"task {self.name!r}: class_weight and pos_weight weigh the default loss; "
                "a custom loss takes its own weights"
            )
        if self.class_weight is not None:
            classes = self.spec.num_classes(self.num_outputs)
            self.class_weight = class_weight_list(
                self.class_weight, classes, self.class_names, self.name
            )
        if self.pos_weight is not None:
            self.pos_weight = pos_weight_list(self.pos_weight, self.num_outputs, self.name)

    def fit_class_weights(self, target: Tensor) -> Task:
        """This task with ``"balanced"`` weights computed from the training ``target``.

        Returns the task itself when it has no ``"balanced"`` option.
        """
        if self.class_weight == BALANCED:
            labels = target[self.label_mask(target)]
            classes = self.spec.num_classes(self.num_outputs)
            weights = balanced_class_weight(labels, classes, self.class_names, self.name)
            return replace(self, class_weight=weights)
        if self.pos_weight == BALANCED:
            return replace(
                self, pos_weight=balanced_pos_weight(target, self.ignore_index, self.name)
            )
        return self

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def label_mask(self, target: Tensor) -> Tensor:
        """Boolean mask of the rows (or, for multilabel, entries) that carry a label."""
        return self.spec.label_mask(target, self.ignore_index)

    def row_mask(self, target: Tensor) -> Tensor:
        """Boolean mask of the rows with at least one label."""
        mask = self.label_mask(target)
        return mask if mask.dim() == 1 else mask.flatten(start_dim=1).any(dim=1)

    def compute_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The task loss over labelled rows; exactly zero (with zero gradient) if there are none.

        The default loss is the kind's :meth:`~mtlkit.tasks.kinds.TaskKind.masked_loss`: for the
        built-in kinds a masked mean of fixed shape, which reads nothing on the host. A custom
        :attr:`loss` receives the labelled rows only, selected by a boolean index (whose size the
        host reads: a sync per call on CUDA).
        """
        if self.loss is None:
            return self.spec.masked_loss(self, prediction, target)
        return loss_on_labelled_rows(self, prediction, target, self.loss)

    def predict(self, output: Tensor) -> Tensor:
        """Turn the head's raw output into predictions (class ids, 0/1 labels or values)."""
        return self.spec.predict(output)

    def probabilities(self, output: Tensor) -> Tensor | None:
        """Class probabilities for classification tasks, ``None`` for regression."""
        return self.spec.probabilities(output)

    def to_dict(self) -> dict:
        """A JSON-serializable description (custom loss callables are not serialized)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "num_outputs": self.num_outputs,
            "metrics": list(self.metrics),
            "weight": self.weight,
            "ignore_index": self.ignore_index,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "class_weight": self.class_weight,
            "pos_weight": self.pos_weight,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Task:
        from mtlkit.cells import legacy_label

        names = data.get("class_names")
        if names is not None:
            data = {**data, "class_names": [legacy_label(n) for n in names]}
        return cls(**data)


class NamedTasks:
    """``task_names`` and ``task(name)`` for anything holding a ``tasks`` list (data bundles)."""

    tasks: Sequence[Task]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(self.task_names)}")
