"""Default per-kind losses, applied to labelled rows only, with optional class weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from mtlkit.tasks.class_weights import as_weight_tensor

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


def default_loss(task: Task, prediction: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy, binary cross-entropy with logits, or mean squared error, by task kind.

    ``task.class_weight`` makes the classification losses weighted means
    ``Σᵢ w_{yᵢ} ℓᵢ / Σᵢ w_{yᵢ}``; ``task.pos_weight`` weighs the positive term of the binary
    cross-entropy (see :mod:`mtlkit.tasks.class_weights`).
    """
    class_weight = as_weight_tensor(task.class_weight, prediction, "class_weight", task.name)
    pos_weight = as_weight_tensor(task.pos_weight, prediction, "pos_weight", task.name)
    if task.kind == "multiclass":
        return F.cross_entropy(prediction, target.long(), weight=class_weight)
    if task.kind == "binary":
        logit, label = prediction.reshape(-1), target.reshape(-1)
        if class_weight is None:
            return F.binary_cross_entropy_with_logits(logit, label.float(), pos_weight=pos_weight)
        row_weight = class_weight[label.long()]
        per_row = F.binary_cross_entropy_with_logits(logit, label.float(), reduction="none")
        return (row_weight * per_row).sum() / row_weight.sum()
    if task.kind == "multilabel":
        mask = target != task.ignore_index
        per_label = F.binary_cross_entropy_with_logits(
            prediction, target.float().clamp(min=0), reduction="none", pos_weight=pos_weight
        )
        return (per_label * mask).sum() / mask.sum()
    prediction = prediction.reshape(target.shape)
    mask = ~target.isnan()
    return F.mse_loss(prediction[mask], target[mask])
