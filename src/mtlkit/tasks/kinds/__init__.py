"""Task kinds, one object each, registered by name.

A kind decides the target dtype and missing-label marker, the default loss, how raw outputs
become predictions and probabilities, the default metrics and which metrics apply. Built in:
``regression``, ``binary``, ``multiclass``, ``multilabel``; :func:`register_kind` adds one.
"""

from __future__ import annotations

from mtlkit.tasks.kinds.base import IGNORE_INDEX, TaskKind
from mtlkit.tasks.kinds.binary import Binary
from mtlkit.tasks.kinds.multiclass import Multiclass
from mtlkit.tasks.kinds.multilabel import Multilabel
from mtlkit.tasks.kinds.regression import Regression

KINDS: dict[str, TaskKind] = {}
"""The registry: ``{name: kind}``."""


def register_kind(kind: TaskKind) -> TaskKind:
    """Add ``kind`` to the registry under ``kind.name`` (an existing name is an error)."""
    if not isinstance(kind, TaskKind):
        raise TypeError(f"register_kind: expected a TaskKind instance, got {type(kind).__name__}")
    if kind.name in KINDS:
        raise ValueError(f"register_kind: a task kind named {kind.name!r} exists already")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str, task: str | None = None) -> TaskKind:
    """The kind registered as ``name``; an error naming the task and the kinds otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        where = f"task {task!r}: " if task else ""
        raise ValueError(f"{where}kind must be one of {', '.join(KINDS)}, got {name!r}")
    return kind


for _kind in (Multiclass(), Binary(), Multilabel(), Regression()):
    register_kind(_kind)

__all__ = [
    "IGNORE_INDEX",
    "KINDS",
    "Binary",
    "Multiclass",
    "Multilabel",
    "Regression",
    "TaskKind",
    "get_kind",
    "register_kind",
]
