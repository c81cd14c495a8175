"""Tasks: what each task predicts, its loss, its metrics and its weight."""

from mtlkit.tasks.metrics import (
    DEFAULT_METRICS,
    METRICS,
    Metric,
    compute_metrics,
    get_metric,
    higher_is_better,
    metrics_for_kind,
)
from mtlkit.tasks.task import IGNORE_INDEX, TASK_KINDS, Task

__all__ = [
    "DEFAULT_METRICS",
    "IGNORE_INDEX",
    "METRICS",
    "TASK_KINDS",
    "Metric",
    "Task",
    "compute_metrics",
    "get_metric",
    "higher_is_better",
    "metrics_for_kind",
]
