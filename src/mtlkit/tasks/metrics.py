"""Evaluation metrics, each with its direction (higher or lower is better).

Metrics are computed with scikit-learn on the labelled rows of a whole split. For ``multilabel``
tasks every metric is computed per label and averaged over labels; the per-label values are
returned too, as ``"<metric>/<label>"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sklearn
from sklearn import metrics as skm

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task


@dataclass(frozen=True)
class Metric:
    """A named metric ``fn(y_true, y_pred) -> float`` and whether higher values are better."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    kinds: tuple[str, ...]


def _macro(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(fn(y_true, y_pred, average="macro", zero_division=0))

    return wrapped


def _binary(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(fn(y_true, y_pred, average="binary", zero_division=0))

    return wrapped


_CLASSIFICATION = ("multiclass", "binary", "multilabel")

METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", skm.accuracy_score, True, _CLASSIFICATION),
    "f1": Metric("f1", _macro(skm.f1_score), True, _CLASSIFICATION),
    "precision": Metric("precision", _macro(skm.precision_score), True, _CLASSIFICATION),
    "recall": Metric("recall", _macro(skm.recall_score), True, _CLASSIFICATION),
    "mse": Metric("mse", skm.mean_squared_error, False, ("regression",)),
    "mae": Metric("mae", skm.mean_absolute_error, False, ("regression",)),
    "r2": Metric("r2", skm.r2_score, True, ("regression",)),
}
"""The metric registry. ``f1``/``precision``/``recall`` are macro averages over classes for
multiclass tasks and the positive-class scores for binary tasks (per label for multilabel)."""

_BINARY_OVERRIDES = {
    "f1": _binary(skm.f1_score),
    "precision": _binary(skm.precision_score),
    "recall": _binary(skm.recall_score),
}

DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "multiclass": ("accuracy", "f1", "precision", "recall"),
    "binary": ("accuracy", "f1", "precision", "recall"),
    "multilabel": ("f1", "accuracy", "precision", "recall"),
    "regression": ("mse", "mae", "r2"),
}


def get_metric(name: str, task: str | None = None) -> Metric:
    """Look a metric up by name, with an error that names the task and lists valid names."""
    try:
        return METRICS[name]
    except KeyError:
        where = f"task {task!r}: " if task else ""
        raise ValueError(
            f"{where}unknown metric {name!r}; choose from {', '.join(sorted(METRICS))}"
        ) from None


def higher_is_better(name: str) -> bool:
    return get_metric(name).higher_is_better


def _score(metric: Metric, kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # Inputs are already validated here; skipping sklearn's checks makes per-epoch evaluation cheap.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        if kind in ("binary", "multilabel") and metric.name in _BINARY_OVERRIDES:
            return _BINARY_OVERRIDES[metric.name](y_true, y_pred)
        return float(metric.fn(y_true, y_pred))


def compute_metrics(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every metric of ``task`` on the labelled rows of ``y_true``/``y_pred``.

    Returns NaN for each metric when no row is labelled.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    results: dict[str, float] = {}
    if task.kind == "multilabel":
        y_true = y_true.reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        names = task.class_names or [str(j) for j in range(y_true.shape[1])]
        per_label: dict[str, list[float]] = {m: [] for m in task.metrics}
        for j, label in enumerate(names):
            keep = y_true[:, j] != task.ignore_index
            for m in task.metrics:
                value = (
                    _score(get_metric(m), "multilabel", y_true[keep, j], y_pred[keep, j])
                    if keep.any()
                    else float("nan")
                )
                per_label[m].append(value)
                results[f"{m}/{label}"] = value
        for m in task.metrics:
            values = [v for v in per_label[m] if not np.isnan(v)]
            results[m] = float(np.mean(values)) if values else float("nan")
        return {m: results[m] for m in task.metrics} | {
            k: v for k, v in results.items() if "/" in k
        }
    if task.kind == "regression":
        y_true = y_true.reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        keep = ~np.isnan(y_true).any(axis=1)
    else:
        keep = y_true != task.ignore_index
    for m in task.metrics:
        results[m] = (
            _score(get_metric(m), task.kind, y_true[keep], y_pred[keep])
            if keep.any()
            else float("nan")
        )
    return results
