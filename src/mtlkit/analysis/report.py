"""Tables of training runs, and writing figures (the plots are in :mod:`mtlkit.analysis.plots`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (numbers to 4 significant decimals; an undefined
    value, NaN, as ``-``)."""

    def cell(value: Any) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    rule = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in text
    ]
    return "\n".join([line, rule, *body])


def comparison_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Mapping[str, Sequence[str]],
    delta: Mapping[str, float] | None = None,
) -> str:
    """Rows = ``task/metric``, columns = models (e.g. ``stl``, ``hps``), plus a Δm row."""
    models = list(results)
    rows: list[list[Any]] = []
    for task, names in metrics.items():
        for m in names:
            rows.append([f"{task} {m}", *(results[model][task][m] for model in models)])
    if delta:
        rows.append(["Δm % vs stl", *(signed(delta.get(m)) for m in models)])
    return format_table(["task metric", *models], rows)


def signed(value: float | None) -> str:
    """``+1.23``; ``-`` when missing or undefined (NaN)."""
    return "-" if value is None or math.isnan(value) else f"{value:+.2f}"


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± std`` over seeds with ``digits`` decimals; undefined (NaN) values are left out
    and the count of the rest is shown (``0.6000 ± 0.1414 (2/3 seeds)``); ``-`` when none is
    defined."""
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return "-"
    text = f"{defined[0]:.{digits}f}"
    if len(defined) > 1:
        text = f"{statistics.mean(defined):.{digits}f} ± {statistics.stdev(defined):.{digits}f}"
    return text if len(defined) == len(values) else f"{text} ({len(defined)}/{len(values)} seeds)"


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write as a PNG (creating folders) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
