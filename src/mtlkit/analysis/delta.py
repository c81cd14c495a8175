"""Δm: the average relative gain of a multi-task model over single-task baselines.

Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019:

    Δm = (100 / T) Σₜ (1 / Mₜ) Σₘ (−1)^{lₘ} (M_mtl,m − M_stl,m) / |M_stl,m|

with lₘ = 1 when lower is better for metric m and 0 when higher is better, so a positive Δm
means that the multi-task model beats the single-task ones.

A metric whose relative change is undefined is left out of its task's mean, and a task left
without a metric out of the mean over tasks: an undefined value is never a gain or a loss.
The change is undefined when the metric is undefined (NaN or ``None``, e.g. recall with no
positive row) for either model, or when the single-task value is exactly 0 (no relative change
from 0; e.g. an F1 of 0 for a single-task model that never predicts the positive class). Δm is
NaN (undefined) when nothing is left. :func:`delta_m_terms` says what was left out and why;
:func:`delta_m` logs it as a warning naming the task and metric.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mtlkit.tasks import higher_is_better

logger = logging.getLogger(__name__)

Results = Mapping[str, Mapping[str, float]]
"""``{task: {metric: value}}``."""

UNDEFINED_METRIC = "undefined (NaN) for a model"
ZERO_BASELINE = "single-task value is 0, so the relative change is undefined"


@dataclass(frozen=True)
class DeltaM:
    """Δm with its terms.

    ``value``: Δm in percent (NaN when no term is defined); ``task_gains``: each task's mean
    relative gain in percent (NaN for a task none of whose metrics is defined);
    ``left_out``: ``{"task metric": why}`` for each metric left out.
    """

    value: float
    task_gains: Mapping[str, float]
    left_out: Mapping[str, str]

    def note(self) -> str:
        """``Δm leaves out TASK METRIC: WHY; ...`` (empty when nothing is left out)."""
        if not self.left_out:
            return ""
        return "Δm leaves out " + "; ".join(f"{k}: {why}" for k, why in self.left_out.items())


def _undefined(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _why_undefined(base: float | None, value: float | None) -> str | None:
    if _undefined(base) or _undefined(value):
        return UNDEFINED_METRIC
    if base == 0:
        return ZERO_BASELINE
    return None


def delta_m_terms(mtl: Results, stl: Results, metrics: Mapping[str, Sequence[str]]) -> DeltaM:
    """Δm in percent over ``metrics[task]`` (metric names, whose direction is looked up), with
    each task's gain and the metrics left out (see the module's docstring)."""
    if not metrics:
        raise ValueError("delta_m needs at least one task")
    task_gains: dict[str, float] = {}
    left_out: dict[str, str] = {}
    for task, names in metrics.items():
        if not names:
            raise ValueError(f"task {task!r}: delta_m needs at least one metric")
        gains = []
        for m in names:
            base, value = stl[task][m], mtl[task][m]
            why = _why_undefined(base, value)
            if why is not None:
                left_out[f"{task} {m}"] = why
                continue
            sign = 1.0 if higher_is_better(m) else -1.0
            gains.append(sign * (value - base) / abs(base))
        task_gains[task] = 100.0 * sum(gains) / len(gains) if gains else math.nan
    defined = [g for g in task_gains.values() if not math.isnan(g)]
    value = sum(defined) / len(defined) if defined else math.nan
    return DeltaM(value, task_gains, left_out)


def delta_m(mtl: Results, stl: Results, metrics: Mapping[str, Sequence[str]]) -> float:
    """Δm in percent (NaN when undefined); what it leaves out is logged as a warning (see
    :func:`delta_m_terms`)."""
    terms = delta_m_terms(mtl, stl, metrics)
    if terms.left_out:
        logger.warning(terms.note())
    return terms.value
