"""Tasks: what each task predicts, its loss, its metrics and its weight."""

from mtlkit.tasks.kinds import IGNORE_INDEX, KINDS, TaskKind, get_kind, register_kind
from mtlkit.tasks.metrics import (
    METRICS,
    Metric,
    compute_metrics,
    get_metric,
    higher_is_better,
)
from mtlkit.tasks.task import Task

TASK_KINDS: tuple[str, ...] = tuple(KINDS)
"""The names of the built-in kinds (``KINDS`` is the live registry)."""

__all__ = [
    "IGNORE_INDEX",
    "KINDS",
    "METRICS",
    "TASK_KINDS",
    "Metric",
    "Task",
    "TaskKind",
    "compute_metrics",
    "get_kind",
    "get_metric",
    "higher_is_better",
    "register_kind",
]
