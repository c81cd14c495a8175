"""Binary classification: 0/1 labels, one logit, binary cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit.tasks.class_weights import as_weight_tensor, loss_dtype
from mtlkit.tasks.kinds.base import TaskKind, masked_mean, safe_target

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


class Binary(TaskKind):
    """Labels 0/1, one logit ``z``; ``P(1) = σ(z)``, prediction ``z > 0``. Loss: the binary
    cross-entropy, ``pos_weight`` weighing its positive term, or with ``class_weight`` the
    weighted mean ``Σᵢ w_{yᵢ} ℓᵢ / Σᵢ w_{yᵢ}``. f1/precision/recall score the positive class."""

    name = "binary"
    default_metrics = ("accuracy", "f1", "precision", "recall")
    class_weight = True
    pos_weight = True
    average = "binary"
    one_class_per_row = True
    max_classes = 2

    def num_outputs(self, requested: int, task: str) -> int:
        return 1

    def num_classes(self, num_outputs: int) -> int:
        return 2

    def masked_loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        class_weight = as_weight_tensor(task.class_weight, prediction, "class_weight", task.name)
        pos_weight = as_weight_tensor(task.pos_weight, prediction, "pos_weight", task.name)
        mask = task.label_mask(target.reshape(-1))
        label = safe_target(target.reshape(-1), mask)  # a float (soft) label is kept as given
        per_row = F.binary_cross_entropy_with_logits(
            prediction.reshape(-1).to(loss_dtype(prediction)),
            label.float(),
            reduction="none",
            pos_weight=pos_weight,
        )
        row_weight = None if class_weight is None else class_weight[label.long()]
        return masked_mean(per_row, mask, row_weight)

    def predict(self, output: Tensor) -> Tensor:
        return (output > 0).long().squeeze(-1)

    def probabilities(self, output: Tensor) -> Tensor:
        return output.sigmoid().squeeze(-1)

    def class_probabilities(self, probabilities: Tensor) -> Tensor:
        return torch.stack([1 - probabilities, probabilities], dim=1)
