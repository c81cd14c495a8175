"""Δm: the average relative gain of a multi-task model over single-task baselines.

Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019:

    Δm = (100 / T) Σₜ (1 / Mₜ) Σₘ (−1)^{lₘ} (M_mtl,m − M_stl,m) / M_stl,m

with lₘ = 1 when lower is better for metric m and 0 when higher is better, so a positive Δm
means that the multi-task model beats the single-task ones.

A metric undefined (NaN or ``None``, e.g. recall with no positive row) for either model is
left out of its task's mean, and a task left without a metric out of the mean over tasks, with
a logged warning naming them: an undefined value is never a gain or a loss. Δm is NaN (missing)
when nothing is left.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from mtlkit.tasks import higher_is_better

logger = logging.getLogger(__name__)

Results = Mapping[str, Mapping[str, float]]
"""``{task: {metric: value}}``."""


def _undefined(value: float | None) -> bool:
    return value is None or math.isnan(value)


def delta_m(mtl: Results, stl: Results, metrics: Mapping[str, Sequence[str]]) -> float:
    """Δm in percent over ``metrics[task]`` (metric names, whose direction is looked up);
    undefined metrics are left out (see the module's docstring)."""
    if not metrics:
        raise ValueError("delta_m needs at least one task")
    task_gains, left_out = [], []
    for task, names in metrics.items():
        if not names:
            raise ValueError(f"task {task!r}: delta_m needs at least one metric")
        gains = []
        for m in names:
            base, value = stl[task][m], mtl[task][m]
            if _undefined(base) or _undefined(value):
                left_out.append(f"{task} {m}")
                continue
            if base == 0:
                raise ValueError(f"task {task!r}: single-task {m} is 0; relative change undefined")
            sign = 1.0 if higher_is_better(m) else -1.0
            gains.append(sign * (value - base) / abs(base))
        if gains:
            task_gains.append(sum(gains) / len(gains))
    if left_out:
        logger.warning("Δm leaves out %s: undefined (NaN) for a model", ", ".join(left_out))
    return 100.0 * sum(task_gains) / len(task_gains) if task_gains else math.nan
