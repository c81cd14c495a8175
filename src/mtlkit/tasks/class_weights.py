"""Class weights and ``pos_weight``: re-weighting the loss of imbalanced classification tasks.

``class_weight`` (multiclass and binary tasks) weighs each labelled row by the weight
``w_k`` of its class; the loss is the weighted mean ``Σᵢ w_{yᵢ} ℓᵢ / Σᵢ w_{yᵢ}``, as torch's
``F.cross_entropy(weight=w)`` (a binary task is the two-class case). It is given as

- ``"balanced"``: ``w_k = n / (K · n_k)`` with ``n`` labelled training rows, ``K`` classes and
  ``n_k`` rows of class ``k`` (King & Zeng, 2001; scikit-learn's ``class_weight="balanced"``),
  so that every class carries the same total weight;
- a mapping ``{label: w}`` by class name or class index (unlisted classes weigh 1);
- a list of ``K`` weights.

``pos_weight`` (binary and multilabel tasks) multiplies the positive term of the binary
cross-entropy, ``ℓ = −[p · y log σ(z) + (1 − y) log(1 − σ(z))]`` (torch's ``pos_weight``),
one ``p`` per label: a number, a list with one per label, or ``"balanced"``:
``p = n₋ / n₊``, the negatives per positive among the labelled training rows.

A weighted loss is computed in float32 at least (:func:`loss_dtype`): under bf16/fp16 autocast
the logits are upcast and the weights are never rounded to 8 or 11 significant bits. Each weight
tensor is built once per device and dtype (:func:`as_weight_tensor`), not at every step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

BALANCED = "balanced"

ClassWeight = Literal["balanced"] | Mapping[str | int, float] | Sequence[float]
PosWeight = Literal["balanced"] | float | Sequence[float]


def _check_weights(weights: Sequence[float], field: str, task: str) -> list[float]:
    values = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0:
            raise ValueError(f"task {task!r}: {field} weights must be numbers > 0, got {w!r}")
        values.append(float(w))
    return values


def _class_index(label: str | int, class_names: Sequence[str] | None, n: int, task: str) -> int:
    if class_names is not None and str(label) in class_names:
        return list(class_names).index(str(label))
    index = int(label) if isinstance(label, int) or str(label).isdigit() else -1
    if 0 <= index < n:
        return index
    known = ", ".join(class_names) if class_names is not None else f"0 to {n - 1}"
    hint = ""
    if str(label) in ("True", "False"):
        hint = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the label)"
    raise ValueError(
        f"task {task!r}: class_weight names unknown class {label!r}; classes: {known}{hint}"
    )


def class_weight_list(
    spec: ClassWeight, num_classes: int, class_names: Sequence[str] | None, task: str
) -> ClassWeight:
    """An explicit ``class_weight`` as one weight per class (``"balanced"`` is kept as is)."""
    if isinstance(spec, str):
        if spec != BALANCED:
            raise ValueError(
                f"task {task!r}: class_weight must be 'balanced', a mapping or a list, got {spec!r}"
            )
        return spec
    if isinstance(spec, Mapping):
        weights = [1.0] * num_classes
        for label, w in spec.items():
            weights[_class_index(label, class_names, num_classes, task)] = w
        return _check_weights(weights, "class_weight", task)
    weights = list(spec)
    if len(weights) != num_classes:
        raise ValueError(
            f"task {task!r}: class_weight needs {num_classes} weights (one per class), "
            f"got {len(weights)}"
        )
    return _check_weights(weights, "class_weight", task)


def pos_weight_list(spec: PosWeight, num_labels: int, task: str) -> PosWeight:
    """An explicit ``pos_weight`` as one weight per label (``"balanced"`` is kept as is)."""
    if isinstance(spec, str):
        if spec != BALANCED:
            raise ValueError(
                f"task {task!r}: pos_weight must be 'balanced', a number or a list, got {spec!r}"
            )
        return spec
    weights = [spec] * num_labels if isinstance(spec, int | float) else list(spec)
    if len(weights) != num_labels:
        raise ValueError(
            f"task {task!r}: pos_weight needs {num_labels} weights (one per label), "
            f"got {len(weights)}"
        )
    return _check_weights(weights, "pos_weight", task)


def balanced_class_weight(
    labels: Tensor, num_classes: int, class_names: Sequence[str] | None, task: str
) -> list[float]:
    """``w_k = n / (K · n_k)`` over the labelled rows ``labels`` (class ids)."""
    counts = torch.bincount(labels.long(), minlength=num_classes).tolist()
    return balanced_class_weight_from_counts(counts, class_names, task)


def balanced_class_weight_from_counts(
    counts: Sequence[int], class_names: Sequence[str] | None, task: str
) -> list[float]:
    """``w_k = n / (K · n_k)`` from ``n_k``, the labelled training rows of each class (a
    streamed table counts them without keeping the labels)."""
    num_classes = len(counts)
    counts = [int(c) for c in counts]
    empty = [k for k, c in enumerate(counts) if c == 0]
    if empty:
        name = class_names[empty[0]] if class_names is not None else empty[0]
        raise ValueError(
            f"task {task!r}: class_weight 'balanced': class {name!r} has no labelled "
            "training row; give the weights explicitly"
        )
    n = sum(counts)
    return [n / (num_classes * c) for c in counts]


def balanced_pos_weight(target: Tensor, ignore_index: int, task: str) -> list[float]:
    """``p = n₋ / n₊`` per label over the labelled entries of ``target`` (0/1 per label)."""
    target = target.reshape(len(target), -1)
    labelled = target != ignore_index
    positives = ((target == 1) & labelled).sum(dim=0).tolist()
    negatives = ((target == 0) & labelled).sum(dim=0).tolist()
    return balanced_pos_weight_from_counts(negatives, positives, task)


def balanced_pos_weight_from_counts(
    negatives: Sequence[int], positives: Sequence[int], task: str
) -> list[float]:
    """``p = n₋ / n₊`` per label from the labelled training entries' counts."""
    negatives, positives = [int(n) for n in negatives], [int(p) for p in positives]
    if 0 in positives:
        label = positives.index(0)
        raise ValueError(
            f"task {task!r}: pos_weight 'balanced': label {label} has no positive training "
            "row; give the weights explicitly"
        )
    return [neg / pos for neg, pos in zip(negatives, positives)]


def as_weight_tensor(weights: object, like: Tensor, field: str, task: str) -> Tensor | None:
    """``weights`` on the device of ``like``, in :func:`loss_dtype` (float32 for bf16/fp16
    logits, so autocast never rounds a weight); an error if still ``"balanced"``. One tensor
    per weights, device and dtype, built on first use."""
    if weights is None:
        return None
    if weights == BALANCED:
        raise ValueError(
            f"task {task!r}: {field} 'balanced' is computed from the training targets first: "
            "call task.fit_class_weights(train_targets)"
        )
    values = tuple(weights) if isinstance(weights, Sequence) else weights
    return _weight_tensor(values, like.device, loss_dtype(like))


def loss_dtype(like: Tensor) -> torch.dtype:
    """The dtype a weighted loss is computed in: at least float32 (float64 stays float64)."""
    return torch.promote_types(like.dtype, torch.float32)


@functools.lru_cache(maxsize=256)
def _weight_tensor(
    values: tuple[float, ...] | float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    # an ordinary tensor even when first asked for under torch.inference_mode()
    with torch.inference_mode(False):
        return torch.tensor(values, dtype=dtype, device=device)
