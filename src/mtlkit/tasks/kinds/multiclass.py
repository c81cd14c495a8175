"""Multiclass classification: one class id per row, softmax cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from mtlkit.tasks.class_weights import as_weight_tensor, loss_dtype
from mtlkit.tasks.kinds.base import TaskKind, masked_mean, safe_target

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


class Multiclass(TaskKind):
    """Class ids ``0…K−1``, ``K ≥ 2`` logits; ``P = softmax(z)``, prediction ``argmax z``. Loss:
    the cross-entropy, with ``class_weight`` the weighted mean ``Σᵢ w_{yᵢ} ℓᵢ / Σᵢ w_{yᵢ}``.
    f1/precision/recall are macro averages over classes."""

    name = "multiclass"
    default_metrics = ("accuracy", "f1", "precision", "recall")
    class_weight = True
    one_class_per_row = True

    def num_outputs(self, requested: int, task: str) -> int:
        if int(requested) < 2:
            raise ValueError(f"task {task!r}: a multiclass task needs num_outputs >= 2")
        return int(requested)

    def masked_loss(self, task: Task, prediction: Tensor, target: Tensor) -> Tensor:
        class_weight = as_weight_tensor(task.class_weight, prediction, "class_weight", task.name)
        mask = task.label_mask(target)
        label = safe_target(target, mask).long()
        per_row = F.cross_entropy(prediction.to(loss_dtype(prediction)), label, reduction="none")
        row_weight = None if class_weight is None else class_weight[label]
        return masked_mean(per_row, mask, row_weight)

    def predict(self, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)

    def probabilities(self, output: Tensor) -> Tensor:
        return output.softmax(dim=-1)
