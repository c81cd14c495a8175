"""Plots of task relations: matrix heatmaps and the gradient cosine over training (Agg)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtlkit.analysis.report import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_matrix(
    matrix,
    names: Sequence[str],
    path: str | Path,
    title: str = "",
    fmt: str = "+.2g",
    xlabel: str = "target task j",
    ylabel: str = "source task i",
    symmetric_scale: bool = True,
) -> Path:
    """A heatmap PNG of a T × T matrix, each cell annotated, diverging colours centred on 0."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    finite = m[np.isfinite(m)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    size = max(3.5, 0.55 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    kwargs = {"vmin": -bound, "vmax": bound} if symmetric_scale else {}
    image = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu", **kwargs)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(names) <= 16:
        for i, j in itertools.product(range(len(names)), repeat=2):
            v = m[i, j]
            text = "-" if math.isnan(v) else format(v, fmt)
            dark = math.isfinite(v) and abs(v) > 0.6 * bound
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black"
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
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, j in pairs:
        ax.plot(list(steps), stack[:, i, j], label=f"{names[i]} ~ {names[j]}", linewidth=1.2)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("training step")
    ax.set_ylabel("cosine(gᵢ, gⱼ)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if len(pairs) > 6 else 1)
    return save_figure(fig, path)
