"""Δm: the average relative gain of a multi-task model over single-task baselines.

Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019:

    Δm = (100 / T) Σₜ (1 / Mₜ) Σₘ (−1)^{lₘ} (M_mtl,m − M_stl,m) / M_stl,m

with lₘ = 1 when lower is better for metric m and 0 when higher is better, so a positive Δm
means that the multi-task model beats the single-task ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mtlkit.tasks import higher_is_better

Results = Mapping[str, Mapping[str, float]]
"""``{task: {metric: value}}``."""


def delta_m(mtl: Results, stl: Results, metrics: Mapping[str, Sequence[str]]) -> float:
    """Δm in percent over ``metrics[task]`` (metric names, whose direction is looked up)."""
    if not metrics:
        raise ValueError("delta_m needs at least one task")
    total = 0.0
    for task, names in metrics.items():
        if not names:
            raise ValueError(f"task {task!r}: delta_m needs at least one metric")
        gain = 0.0
        for m in names:
            base = stl[task][m]
            if base == 0:
                raise ValueError(f"task {task!r}: single-task {m} is 0; relative change undefined")
            sign = 1.0 if higher_is_better(m) else -1.0
            gain += sign * (mtl[task][m] - base) / abs(base)
        total += gain / len(names)
    return 100.0 * total / len(metrics)
