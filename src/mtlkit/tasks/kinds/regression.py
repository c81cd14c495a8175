"""Regression: real-valued targets (one or several per row), mean squared error."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit.cells import numbers
from mtlkit.tasks.kinds.base import EncodedTargets, TaskKind, masked_mean, safe_target

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


class Regression(TaskKind):
    """Real targets, NaN when missing; loss ``(1/n) Σ (ŷ − y)²`` over the labelled entries;
    standardized for training (``scaled``), scored in the original units."""

    name = "regression"
    default_metrics = ("mse", "mae", "r2")
    target_dtype = torch.float32
    missing_label = float("nan")
    scaled = True

    def encode(self, task, columns, classes=None):
        """Numeric column(s) as float64 (NaN where missing): ``(n,)`` for one, ``(n, k)`` for
        ``k`` columns, one output each."""
        values = np.stack([numbers(c, f"task {task!r}: column {c.name!r}") for c in columns], 1)
        return EncodedTargets(values[:, 0] if len(columns) == 1 else values, len(columns))

    def decode(self, values, class_names=None):
        """The values themselves (NaN where missing)."""
        return np.asarray(values, dtype=float)

    def label_mask(self, target: Tensor, ignore_index: int) -> Tensor:
        return ~torch.isnan(target)

    def masked_loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        mask = task.label_mask(target)
        squared = F.mse_loss(
            prediction.reshape(target.shape), safe_target(target, mask), reduction="none"
        )
        return masked_mean(squared, mask)

    def predict(self, output: Tensor) -> Tensor:
        return output.squeeze(-1) if output.shape[-1] == 1 else output

    def summary(self, task, target, scaling):
        """The range of the labelled targets in the original units."""
        mask = task.row_mask(target)
        if not mask.any():
            return ""
        mean, std = scaling or (0.0, 1.0)
        values = target[mask] * std + mean
        return f"range [{float(values.min()):.4g}, {float(values.max()):.4g}]"

    def columns(self, task, output, scaling=None, all_probabilities=False):
        """``TASK``: the predicted value in the original units (``scaling = (mean, std)``)."""
        value = self.predict(output)
        if scaling is not None:
            mean, std = scaling
            value = value * std + mean
        return {task.name: value.numpy()}

    def labelled(self, task: Task, y_true: np.ndarray) -> np.ndarray:
        return ~np.isnan(y_true.reshape(len(y_true), -1)).any(axis=1)

    def compute_metrics(self, task, metrics, y_true, y_pred, y_prob):
        y_true = y_true.reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        return super().compute_metrics(task, metrics, y_true, y_pred, y_prob)
