"""Plots (Agg backend): training curves, task-relation heatmaps, gradient cosine over training.

Every axis is labelled; figure sizes grow with the number of tasks so that labels and cell
annotations stay readable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtlkit.analysis.report import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour_limits(
    matrix, symmetric: bool = True, include_diagonal: bool = False
) -> tuple[float, float]:
    """``(vmin, vmax)`` of a heatmap's colour scale, from its finite off-diagonal entries.

    The diagonal (a task with itself: cosine 1, self-affinity) is usually far larger than
    the relations between tasks and would wash them out, so it is left out unless
    ``include_diagonal``. ``symmetric`` centres the scale on 0: ``(−b, b)``, ``b = max |mᵢⱼ|``.
    """
    m = np.asarray(matrix, dtype=float)
    keep = np.isfinite(m)
    if not include_diagonal and m.shape[0] > 1:
        keep &= ~np.eye(m.shape[0], dtype=bool)
    values = m[keep]
    if values.size == 0:
        return (-1.0, 1.0)
    if symmetric:
        bound = float(np.abs(values).max()) or 1.0
        return (-bound, bound)
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low - 1.0, high + 1.0)


def plot_matrix(
    matrix,
    names: Sequence[str],
    path: str | Path,
    title: str = "",
    fmt: str = "+.2g",
    xlabel: str = "target task j",
    ylabel: str = "source task i",
    symmetric_scale: bool = True,
    scale_diagonal: bool = False,
    colorbar_label: str = "",
) -> Path:
    """A heatmap PNG of a T × T matrix, each cell annotated (up to 16 tasks).

    Diverging colours centred on 0 (``symmetric_scale``); the colour scale comes from the
    off-diagonal cells (:func:`colour_limits`) and the diagonal is drawn grey, with its value
    written, unless ``scale_diagonal``.
    """
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    t = len(names)
    vmin, vmax = colour_limits(m, symmetric_scale, include_diagonal=scale_diagonal)
    hidden = ~np.isfinite(m)
    if not scale_diagonal and t > 1:
        hidden |= np.eye(t, dtype=bool)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#d9d9d9")
    side = max(4.0, 0.6 * t + 2.2)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(np.ma.masked_where(hidden, m), cmap=cmap, vmin=vmin, vmax=vmax)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if colorbar_label:
        bar.set_label(colorbar_label)
    ax.set_xticks(range(t), names, rotation=45, ha="right")
    ax.set_yticks(range(t), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if t <= 16:
        fontsize = 10 if t <= 6 else 8
        for i, j in itertools.product(range(t), repeat=2):
            v = m[i, j]
            text = "-" if math.isnan(v) else format(v, fmt)
            dark = not hidden[i, j] and abs(v) > 0.6 * max(abs(vmin), abs(vmax))
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else "black",
            )
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_cosine_over_training(
    steps: Sequence[int],
    series: Sequence,
    names: Sequence[str],
    path: str | Path,
    title: str = "gradient cosine over training",
    max_pairs: int = 15,
) -> Path:
    """One line per task pair: its gradient cosine at each recorded step.

    ``series[r]`` is the T × T cosine matrix of recorded step ``steps[r]``. With more than
    ``max_pairs`` pairs, the pairs with the largest mean |cosine| are drawn.
    """
    plt = _pyplot()
    stack = np.asarray([np.asarray(s, dtype=float) for s in series]).reshape(
        len(series), len(names), len(names)
    )
    pairs = list(itertools.combinations(range(len(names)), 2))
    if len(pairs) > max_pairs:
        strength = [np.nanmean(np.abs(stack[:, i, j])) for i, j in pairs]
        order = np.argsort(strength)[::-1][:max_pairs]
        pairs = [pairs[k] for k in sorted(order)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, j in pairs:
        ax.plot(list(steps), stack[:, i, j], label=f"{names[i]} ~ {names[j]}", linewidth=1.2)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylim(-1.05, 1.05)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel("cosine(gᵢ, gⱼ)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def plot_training_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Mapping[str, str],
    path: str | Path,
    title: str = "",
    columns: int = 3,
) -> Path:
    """Training curves: the summed training loss, then each task's validation main metric
    (with its direction) per epoch; one line per model, panels on a grid of ``columns``."""
    from matplotlib.ticker import MaxNLocator

    from mtlkit.tasks import higher_is_better

    plt = _pyplot()
    tasks = list(metrics)
    panels = len(tasks) + 1
    ncols = min(columns, panels)
    nrows = math.ceil(panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    flat = list(axes.flat)
    for model, records in histories.items():
        epochs = [r["epoch"] for r in records]
        train = [sum(r["train_loss"].values()) for r in records]
        flat[0].plot(epochs, train, marker="o", markersize=3, label=model)
        for ax, task in zip(flat[1:], tasks):
            values = [r["val"][task][metrics[task]] for r in records if "val" in r]
            ax.plot(epochs[: len(values)], values, marker="o", markersize=3, label=model)
    flat[0].set_title("training loss")
    flat[0].set_ylabel("loss (sum over tasks)")
    for ax, task in zip(flat[1:], tasks):
        direction = "higher" if higher_is_better(metrics[task]) else "lower"
        ax.set_title(task)
        ax.set_ylabel(f"validation {metrics[task]} ({direction} is better)")
    for ax in flat[:panels]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in flat[panels:]:
        ax.set_visible(False)
    flat[0].legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
