"""Multilabel classification: 0/1 per label, one logit per label, binary cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from mtlkit.cells import DataError, location, numbers
from mtlkit.tasks.class_weights import as_weight_tensor, loss_dtype
from mtlkit.tasks.kinds.base import EncodedTargets, TaskKind, masked_mean, safe_target

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


class Multilabel(TaskKind):
    """0/1 per label (``ignore_index`` per entry when missing), one logit per label. Loss: the
    binary cross-entropy averaged over labelled entries, ``pos_weight`` per label. Every metric
    is computed per label and averaged over labels; the per-label values are returned too, as
    ``"<metric>/<label>"``."""

    name = "multilabel"
    default_metrics = ("f1", "accuracy", "precision", "recall")
    pos_weight = True
    average = "binary"

    def encode(self, task, columns, classes=None):
        """One 0/1 column per label (the column names are the labels): ``(n, k)`` ints,
        :attr:`missing_label` where a cell is missing."""
        encoded = []
        for column in columns:
            where = f"task {task!r}: column {column.name!r}"
            v = numbers(column, where)
            wrong = ~np.isnan(v) & ~np.isin(v, (0, 1))
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise DataError(
                    f"{where}, {location(column, column.index[i])}: must hold 0/1 labels, "
                    f"found {column.iloc[i]!r}"
                )
            encoded.append(np.where(np.isnan(v), int(self.missing_label), v).astype(int))
        names = [str(c.name) for c in columns]
        return EncodedTargets(np.stack(encoded, 1), len(columns), names)

    def decode(self, values, class_names=None):
        """0/1 per label, ``None`` where missing."""
        values = np.asarray(values)
        return np.where(self.is_missing(values), None, values.astype(object))

    def masked_loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        pos_weight = as_weight_tensor(task.pos_weight, prediction, "pos_weight", task.name)
        mask = task.label_mask(target)
        per_label = F.binary_cross_entropy_with_logits(
            prediction.to(loss_dtype(prediction)),
            safe_target(target, mask).float(),
            reduction="none",
            pos_weight=pos_weight,
        )
        return masked_mean(per_label, mask)

    def predict(self, output: Tensor) -> Tensor:
        return (output > 0).long()

    def probabilities(self, output: Tensor) -> Tensor:
        return output.sigmoid()

    def summary(self, task, target, scaling):
        """Positives per label."""
        positives = (target == 1).sum(0).tolist()
        return "positives " + ", ".join(
            f"{n}={p}" for n, p in zip(task.class_names or [], positives)
        )

    def columns(self, task, output, scaling=None, all_probabilities=False):
        """``TASK=LABEL`` (0/1) and ``TASK=LABEL_probability`` for every label."""
        pred, prob = self.predict(output).numpy(), self.probabilities(output).numpy()
        labels = list(task.class_names or [str(j) for j in range(task.num_outputs)])
        columns = {}
        for j, label in enumerate(labels):
            columns[f"{task.name}={label}"] = pred[:, j]
            columns[f"{task.name}={label}_probability"] = prob[:, j]
        return columns

    def compute_metrics(self, task, metrics, y_true, y_pred, y_prob):
        y_true = y_true.reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        if y_prob is not None:
            y_prob = y_prob.reshape(len(y_prob), -1)
        names = task.class_names or [str(j) for j in range(y_true.shape[1])]
        results: dict[str, float] = {}
        per_label: dict[str, list[float]] = {m.name: [] for m in metrics}
        for j, label in enumerate(names):
            column = super().compute_metrics(
                task,
                metrics,
                y_true[:, j],
                y_pred[:, j],
                None if y_prob is None else y_prob[:, j],
            )
            for name, value in column.items():
                per_label[name].append(value)
                results[f"{name}/{label}"] = value
        means = {}
        for name, values in per_label.items():
            values = [v for v in values if not np.isnan(v)]
            means[name] = float(np.mean(values)) if values else float("nan")
        return means | results
