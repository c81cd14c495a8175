"""Synthetic tasks from shared latent factors with planted relatedness.

Inputs ``x ~ N(0, I_d)``. Task ``t`` belongs to cluster ``c(t)`` with direction ``u_c``; its
weight vector is ``w_t = sign_t (√ρ u_c + √(1−ρ) v_t)`` with a private direction ``v_t`` (all unit
Gaussian directions), so ``ρ`` ∈ [0, 1] sets the relatedness inside a cluster (ρ = 1: identical
tasks, ρ = 0: unrelated). Tasks listed in ``conflicting`` get ``sign_t = −1``: they pull against
their cluster — in the targets; a task head can absorb a sign flip, so such a task need not
conflict in gradient (for a task unrelated to the rest, give it a cluster of its own).
Targets are ``y = tanh(x·w_t) · 2 + ε`` (``regression``) or ``1[x·w_t + ε > 0]`` (``binary``),
with ``ε ~ N(0, noise²)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.tasks import Task


def load_synthetic(
    num_tasks: int = 4,
    kind: str = "regression",
    n_samples: int = 2000,
    n_features: int = 20,
    relatedness: float = 0.8,
    clusters: Sequence[int] | None = None,
    conflicting: Sequence[int] = (),
    noise: float = 0.1,
    seed: int = 0,
) -> DatasetBundle:
    if kind not in ("regression", "binary"):
        raise ValueError(f"synthetic: kind must be 'regression' or 'binary', got {kind!r}")
    if not 0.0 <= relatedness <= 1.0:
        raise ValueError(f"synthetic: relatedness must be in [0, 1], got {relatedness}")
    clusters = list(clusters) if clusters is not None else [0] * num_tasks
    if len(clusters) != num_tasks:
        raise ValueError(f"synthetic: clusters has {len(clusters)} entries for {num_tasks} tasks")
    for t in conflicting:
        if not 0 <= t < num_tasks:
            raise ValueError(f"synthetic: conflicting task index {t} is out of range")
    rng = np.random.default_rng(seed)

    def direction() -> np.ndarray:
        v = rng.standard_normal(n_features)
        return v / np.linalg.norm(v)

    shared = {c: direction() for c in sorted(set(clusters))}
    x = rng.standard_normal((n_samples, n_features)).astype("float32")
    tasks, targets = [], {}
    for t in range(num_tasks):
        sign = -1.0 if t in conflicting else 1.0
        w = sign * (
            np.sqrt(relatedness) * shared[clusters[t]] + np.sqrt(1 - relatedness) * direction()
        )
        score = x @ w
        name = f"task{t}"
        if kind == "regression":
            targets[name] = 2.0 * np.tanh(score) + noise * rng.standard_normal(n_samples)
        else:
            targets[name] = (score + noise * rng.standard_normal(n_samples) > 0).astype(int)
        tasks.append(Task(name, kind))
    train, val, test = split_indices(n_samples, 0.2, 0.2, seed=seed)
    return tabular_bundle(
        "synthetic",
        tasks,
        x,
        targets,
        (train, val, test),
        description=f"{num_tasks} synthetic {kind} tasks, relatedness {relatedness}",
    )
