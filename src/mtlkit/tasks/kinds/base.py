"""What a task kind decides: target dtype, missing labels, how a target column is encoded, loss,
predictions, probabilities, default metrics and how metrics read the labelled rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mtlkit.cells import DataError, labels, location, natural_key
from mtlkit.tasks.metrics import METRICS, Metric, score

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task

IGNORE_INDEX = -100
"""Class label that marks a missing label in ``multiclass``/``binary``/``multilabel`` targets."""


def loss_on_labelled_rows(
    task: Task, prediction: Tensor, target: Tensor, loss: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """``loss`` of the rows with at least one label (:meth:`Task.row_mask`), selected by a
    boolean index; exactly 0 with a zero gradient when there is none. The host reads whether
    there is one, a sync on CUDA."""
    rows = task.row_mask(target)
    if not bool(rows.any()):
        return prediction.sum() * 0.0
    return loss(prediction[rows], target[rows])


def masked_mean(values: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """``Σᵢ mᵢ wᵢ vᵢ / Σᵢ mᵢ wᵢ`` (``w = 1`` by default), 0 where ``Σᵢ mᵢ wᵢ = 0``: the mean of
    ``values`` over the entries where ``mask`` is true, with no data-dependent shape (no host
    read). Masked entries count as exactly 0 (``torch.where``, so a NaN there reaches neither the
    value nor the gradient); compute ``values`` on targets made safe where masked (see
    :func:`safe_target`), or its gradient there is NaN too."""
    if weight is None:
        total, count = torch.where(mask, values, 0).sum(), mask.sum()
    else:
        total = torch.where(mask, values * weight, 0).sum()
        count = torch.where(mask, weight, 0).sum()
    return total / torch.where(count > 0, count, 1)


def safe_target(target: Tensor, mask: Tensor, fill: float = 0) -> Tensor:
    """``target`` with ``fill`` (a valid label or value) where ``mask`` is false, so that a
    per-entry loss has a finite value and gradient on every entry, masked ones included."""
    return torch.where(mask, target, fill)


@dataclass(frozen=True)
class EncodedTargets:
    """A task's target column(s) encoded by its kind: ``values`` (``(n,)`` or ``(n, k)``, the
    kind's :attr:`TaskKind.missing_label` where a cell is missing), the head's ``num_outputs`` and
    the ``class_names`` (``None`` for a kind without classes)."""

    values: np.ndarray
    num_outputs: int
    class_names: list[str] | None = None


class TaskKind:
    """One kind of task, registered by :attr:`name` (see :mod:`mtlkit.tasks.kinds`).

    A subclass sets the class attributes and implements :meth:`loss`, :meth:`predict` and
    :meth:`probabilities`; the rest has defaults for class-label kinds.
    """

    name: ClassVar[str]
    default_metrics: ClassVar[tuple[str, ...]]
    target_dtype: ClassVar[torch.dtype] = torch.long
    missing_label: ClassVar[float] = IGNORE_INDEX
    """The value that marks a missing label (a task's ``ignore_index`` may differ)."""
    scaled: ClassVar[bool] = False
    """Targets are standardized for training (metrics are reported in the original units)."""
    class_weight: ClassVar[bool] = False
    """Accepts per-class loss weights (``Task.class_weight``)."""
    pos_weight: ClassVar[bool] = False
    """Accepts a weight of the positive term of the binary cross-entropy (``Task.pos_weight``)."""
    one_class_per_row: ClassVar[bool] = False
    """Each row holds one class id (a split can be stratified on it; it needs 2 classes)."""
    average: ClassVar[str] = "macro"
    """How f1/precision/recall combine classes: ``macro`` or ``binary`` (the positive class)."""
    max_classes: ClassVar[int | None] = None
    """The most classes a target column may hold (``None``: no limit)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------------------ outputs
    def num_outputs(self, requested: int, task: str) -> int:
        """The head's output size for a task asking for ``requested``."""
        if int(requested) < 1:
            raise ValueError(f"task {task!r}: num_outputs must be >= 1")
        return int(requested)

    def num_classes(self, num_outputs: int) -> int:
        """Number of classes a per-class weight list has."""
        return num_outputs

    # ------------------------------------------------------------------------------ targets
    def targets(self, values) -> Tensor:
        """Targets as the dtype the loss expects."""
        return torch.as_tensor(values).to(self.target_dtype)

    def is_missing(self, values: np.ndarray) -> np.ndarray:
        """Which of ``values`` are :attr:`missing_label` (NumPy; NaN compares as missing)."""
        if np.isnan(self.missing_label):
            return np.isnan(values)
        return values == self.missing_label

    def encode(
        self, task: str, columns: Sequence[pd.Series], classes: Sequence[str] | None = None
    ) -> EncodedTargets:
        """Raw target column(s) → :class:`EncodedTargets` (errors name ``task``, the column and
        the row). Class-label kinds: one column of labels (read by :func:`mtlkit.cells.labels`);
        class ``c`` → its index in ``classes`` (the training run's; by default the column's
        distinct labels, numbers first in numeric order), a missing cell → :attr:`missing_label`."""
        (column,) = columns
        values = labels(column)
        present = values.notna().to_numpy()
        if classes is None:
            classes = sorted(values[present].unique().tolist(), key=natural_key)
        classes = list(classes)
        if self.max_classes is not None and len(classes) > self.max_classes:
            raise DataError(
                f"task {task!r}: a {self.name} task needs at most {self.max_classes} classes in "
                f"column {column.name!r}, found {len(classes)} ({', '.join(classes[:5])}...)"
            )
        codes = pd.Index(classes, dtype=object).get_indexer(values.to_numpy(object))
        unknown = present & (codes == -1)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise DataError(
                f"task {task!r}: column {column.name!r}, {location(column, column.index[i])}: "
                f"class {values.iloc[i]!r} was not seen in training (the run knows "
                f"{', '.join(classes[:10])}); {int(unknown.sum())} such row(s)"
            )
        codes = np.where(present, codes, int(self.missing_label))
        return EncodedTargets(codes, self.num_outputs(max(len(classes), 2), task), classes)

    def decode(self, values: np.ndarray, class_names: Sequence[str] | None) -> np.ndarray:
        """Encoded targets (or predicted ids) back to labels: the class name (or id without
        names), ``None`` where missing; the inverse of :meth:`encode` on a column of labels, and
        the labels of the prediction table (:meth:`columns`)."""
        values = np.asarray(values)
        missing = self.is_missing(values.astype(float))
        ids = np.where(missing, 0, values).astype(np.int64)
        out = np.asarray(class_names, dtype=object)[ids] if class_names else ids.astype(object)
        out[missing] = None
        return out

    def label_mask(self, target: Tensor, ignore_index: int) -> Tensor:
        """Boolean mask of the labelled rows (or, per label, entries)."""
        return target != ignore_index

    # ------------------------------------------------------------------------- the model's side
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "loss" in vars(cls) and "masked_loss" not in vars(cls):
            # its own loss is its default loss, not a masked loss inherited from a built-in kind
            cls.masked_loss = TaskKind.masked_loss  # type: ignore[method-assign]

    def loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        """The default loss on labelled rows (a kind defines this or :meth:`masked_loss`; by
        default the nearest masked loss the kind defines or inherits, every row being
        labelled: ``super().loss`` in a subclass of a built-in kind is the built-in loss)."""
        for klass in type(self).__mro__:
            masked = vars(klass).get("masked_loss")
            if masked is not None and masked is not TaskKind.masked_loss:
                return masked(self, task, prediction, target)
        raise NotImplementedError(f"{type(self).__name__} must define loss or masked_loss")

    def masked_loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        """The default loss of a whole batch, averaged over its labelled rows (or entries);
        exactly 0 with a zero gradient when none is labelled.

        By default it selects the rows with a label (:meth:`Task.row_mask`) and calls
        :meth:`loss` on them: a boolean index, whose size the host reads (a sync on CUDA). The
        built-in kinds override it with a masked mean of fixed shape (:func:`masked_mean`).
        """
        return loss_on_labelled_rows(task, prediction, target, partial(self.loss, task))

    def predict(self, output: Tensor) -> Tensor:
        """The head's raw output as predictions (class ids, 0/1 labels or values)."""
        raise NotImplementedError

    def probabilities(self, output: Tensor) -> Tensor | None:
        """Class probabilities, or ``None`` when the kind has none."""
        return None

    def class_probabilities(self, probabilities: Tensor) -> Tensor:
        """``(n, classes)``: the probability of every class (binary: of 0 and of 1)."""
        return probabilities

    def summary(self, task: Task, target: Tensor, scaling: tuple[float, float] | None) -> str:
        """The labelled training targets in a few words (the label report): class counts, and
        the classes with no training row (seen in val/test only)."""
        values, freq = torch.unique(target[task.row_mask(target)], return_counts=True)
        names = task.class_names or [str(i) for i in range(task.num_outputs + 1)]
        text = "classes " + ", ".join(
            f"{names[int(v)] if int(v) < len(names) else int(v)}={int(f)}"
            for v, f in zip(values, freq)
        )
        seen = set(values.tolist())
        untrained = [name for k, name in enumerate(task.class_names or []) if k not in seen]
        return text + (f"; no training row: {', '.join(untrained)}" if untrained else "")

    # ------------------------------------------------------------------------- output columns
    def columns(
        self,
        task: Task,
        output: Tensor,
        scaling: tuple[float, float] | None = None,
        all_probabilities: bool = False,
    ) -> dict[str, Any]:
        """A prediction table's columns for one task's raw ``output``: ``TASK`` (the predicted
        class decoded by :meth:`decode`: its name, or id) and ``TASK_probability`` (of that
        class); with ``all_probabilities`` also ``TASK_probability=CLASS`` for every class.
        (``scaling`` is for scaled kinds.)"""
        pred = self.predict(output)
        probabilities = self.probabilities(output)
        if probabilities is None:
            raise NotImplementedError(f"{type(self).__name__} must define its columns")
        full = self.class_probabilities(probabilities)
        names = list(task.class_names) if task.class_names else None
        columns: dict[str, Any] = {
            task.name: self.decode(pred.numpy(), names).tolist(),
            f"{task.name}_probability": full.gather(1, pred[:, None]).squeeze(1).numpy(),
        }
        if all_probabilities:
            labels = names or [str(j) for j in range(full.shape[1])]
            for j, label in enumerate(labels):
                columns[f"{task.name}_probability={label}"] = full[:, j].numpy()
        return columns

    # ------------------------------------------------------------------------------- metrics
    def check_metric(self, name: str, task: str | None = None) -> Metric:
        """The metric ``name``, if it applies to this kind; else an error listing those that do."""
        where = f"task {task!r}: " if task else ""
        choices = ", ".join(self.metrics())
        metric = METRICS.get(name)
        if metric is None:
            raise ValueError(f"{where}unknown metric {name!r}; choose from {choices}")
        if name not in self.metrics():
            raise ValueError(
                f"{where}metric {name!r} does not apply to a {self.name} task; "
                f"choose from {choices}"
            )
        return metric

    def metrics(self) -> list[str]:
        """The names of the metrics that apply to this kind (by default those whose
        ``Metric.kinds`` name it; a kind defined elsewhere overrides this)."""
        return [name for name, metric in METRICS.items() if self.name in metric.kinds]

    def labelled(self, task: Task, y_true: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows metrics are computed on."""
        return y_true != task.ignore_index

    def compute_metrics(
        self,
        task: Task,
        metrics: list[Metric],
        y_true: np.ndarray,
        y_pred: np.ndarray,
        y_prob: np.ndarray | None,
    ) -> dict[str, float]:
        """``{metric: value}`` over the labelled rows (NaN when none is)."""
        keep = self.labelled(task, y_true)
        if not keep.any():
            return {m.name: float("nan") for m in metrics}
        prob = y_prob[keep] if y_prob is not None else None
        return {m.name: score(m, y_true[keep], y_pred[keep], prob, self.average) for m in metrics}
