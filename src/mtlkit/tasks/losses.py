"""Default per-kind losses, applied to labelled rows only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


def default_loss(task: Task, prediction: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy, binary cross-entropy with logits, or mean squared error, by task kind."""
    if task.kind == "multiclass":
        return F.cross_entropy(prediction, target.long())
    if task.kind == "binary":
        return F.binary_cross_entropy_with_logits(
            prediction.reshape(-1), target.float().reshape(-1)
        )
    if task.kind == "multilabel":
        mask = target != task.ignore_index
        per_label = F.binary_cross_entropy_with_logits(
            prediction, target.float().clamp(min=0), reduction="none"
        )
        return (per_label * mask).sum() / mask.sum()
    prediction = prediction.reshape(target.shape)
    mask = ~target.isnan()
    return F.mse_loss(prediction[mask], target[mask])
