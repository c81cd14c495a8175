"""A verdict per task pair — "helps", "neutral" or "hurts" — with the numbers behind it.

The verdict is read from the *transfer ratio* ``τ(i→j) = Z(i→j) / Z(j→j)``: how much a lookahead
step on task i lowers task j's loss, as a fraction of what a step on j itself does (to first
order ``τ(i→j) ≈ cos(gᵢ, gⱼ) ‖gᵢ‖ / ‖gⱼ‖``, so it does not depend on the lookahead step size).
A pair's score is the mean of its two directions, ``τ̄ = (τ(i→j) + τ(j→i)) / 2``, and

- ``helps`` when ``τ̄ ≥ threshold`` (default 0.1: each step on one task does at least a tenth of
  the other task's own progress, on average over both directions),
- ``hurts`` when ``τ̄ ≤ −threshold``,
- ``neutral`` otherwise.

Each verdict carries both affinities, both transfer ratios, and, when given, the mean gradient
cosine, the conflict rate and the directly measured pairwise transfer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtlkit.analysis.report import format_table

DEFAULT_THRESHOLD = 0.1


def transfer_ratio(affinity) -> np.ndarray:
    """``τ[i, j] = Z(i→j) / Z(j→j)`` (``nan`` where task j's own step did not lower its loss)."""
    a = np.asarray(affinity, dtype=float)
    own = np.diag(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = a / own[None, :]
    ratio[:, ~(own > 0)] = np.nan
    return ratio


def _value(matrix, i: int, j: int) -> float | None:
    if matrix is None:
        return None
    v = float(np.asarray(matrix, dtype=float)[i, j])
    return None if math.isnan(v) else v


def pair_verdicts(
    affinity,
    names: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    cosine=None,
    conflict_rate=None,
    pairwise: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """One record per unordered pair ``(i < j)``: the verdict and its numbers.

    ``pairwise[(a, b)]``: optional directly measured transfer (e.g. from
    :func:`mtlkit.runs.pairwise_transfer`), stored as is.
    """
    if threshold < 0:
        raise ValueError(f"threshold: expected a value >= 0, got {threshold}")
    a = np.asarray(affinity, dtype=float)
    tau = transfer_ratio(a)
    records = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = [tau[i, j], tau[j, i]]
            finite = [v for v in both if math.isfinite(v)]
            score = sum(finite) / len(finite) if finite else math.nan
            if math.isnan(score):
                verdict = "unknown"
            elif score >= threshold:
                verdict = "helps"
            elif score <= -threshold:
                verdict = "hurts"
            else:
                verdict = "neutral"
            record: dict[str, Any] = {
                "tasks": [names[i], names[j]],
                "verdict": verdict,
                "score": None if math.isnan(score) else score,
                "affinity": [_value(a, i, j), _value(a, j, i)],
                "transfer_ratio": [_value(tau, i, j), _value(tau, j, i)],
                "cosine": _value(cosine, i, j),
                "conflict_rate": _value(conflict_rate, i, j),
            }
            if pairwise is not None:
                key = (names[i], names[j])
                record["pairwise"] = dict(pairwise.get(key) or pairwise.get(key[::-1]) or {})
            records.append(record)
    return records


def verdict_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The verdicts as a plain-text table."""

    def num(v, fmt="+.3f"):
        return "-" if v is None else format(v, fmt)

    rows = []
    for r in records:
        i, j = r["tasks"]
        rows.append(
            [
                f"{i} ~ {j}",
                r["verdict"],
                num(r["score"]),
                num(r["transfer_ratio"][0]),
                num(r["transfer_ratio"][1]),
                num(r["affinity"][0], "+.3g"),
                num(r["affinity"][1], "+.3g"),
                num(r["cosine"]),
                num(r["conflict_rate"], ".2f"),
            ]
        )
    headers = ["pair", "verdict", "τ̄", "τ(i→j)", "τ(j→i)", "Z(i→j)", "Z(j→i)", "cos", "conflict"]
    return format_table(headers, rows)


def matrix_table(matrix, names: Sequence[str], fmt: str = "+.3g", corner: str = "") -> str:
    """A T × T matrix as a plain-text table (row = source task i, column = target task j)."""
    m = np.asarray(matrix, dtype=float)
    rows = [
        [names[i], *("-" if math.isnan(v) else format(v, fmt) for v in m[i])]
        for i in range(len(names))
    ]
    return format_table([corner, *names], rows)
