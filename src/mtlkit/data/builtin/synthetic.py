"""Synthetic tasks from shared latent factors with planted relatedness.

Inputs ``x ~ N(0, I_d)``. Task ``t`` belongs to cluster ``c(t)`` with direction ``u_c``; its
weight vector is ``w_t = √ρ u_c + √(1−ρ) v_t`` with a private direction ``v_t`` (all unit
Gaussian directions), so ``ρ`` ∈ [0, 1] sets the relatedness inside a cluster (ρ = 1: identical
tasks, ρ = 0: unrelated). With the score ``s_t = x·w_t``, targets are
``y = 2 tanh(s_t) + ε`` (``regression``) or ``1[s_t + ε > 0]`` (``binary``), ``ε ~ N(0, noise²)``.
Any registered task kind works that has real targets (``scaled``, as ``regression``) or two
classes (``max_classes == 2``, as ``binary``).

Tasks listed in ``conflicting`` pull against the others, in one of two ways (``conflict``):

- ``"sign"`` (default): ``s_t = −x·w_t``, the task's targets are negated. A task head absorbs a
  sign flip (the same features serve y and −y), so such a task need not conflict in gradient;
  for a task merely unrelated to the rest, give it a cluster of its own.
- ``"curvature"``: the task is defined on the *shared directions of the other tasks* with a
  nonlinearity of opposite curvature. With ``C`` the clusters that hold at least one
  non-conflicting task (in increasing order, signs ``σ = +1, −1, +1, …``) and
  ``q_c = x·u_c``, its score is

      s_t = Σ_{c∈C} σ_c (q_c² − 1) / √(2|C|)

  (zero mean, unit variance), and its targets are ``y = 2 s_t + ε`` (``regression``; no tanh)
  or ``1[s_t + ε > 0]`` (``binary``); its own ``clusters`` entry is not used. The clustered
  tasks are odd and saturating (concave for ``s > 0``) in ``q_c``, this task is even and convex
  in the same ``q_c``: both need the trunk's units along ``u_c``, but shaped in opposite ways
  (thresholds, tails), which a linear task head cannot reconcile. Measured with HPS (MLP [32])
  it has a negative mean gradient cosine and negative lookahead affinity with every cluster
  (``benchmarks/analysis/planted.py``, docs/relatedness.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.tasks import KINDS, Task


def load_synthetic(
    num_tasks: int = 4,
    kind: str = "regression",
    n_samples: int = 2000,
    n_features: int = 20,
    relatedness: float = 0.8,
    clusters: Sequence[int] | None = None,
    conflicting: Sequence[int] = (),
    conflict: str = "sign",
    noise: float = 0.1,
    seed: int = 0,
) -> DatasetBundle:
    spec = KINDS.get(kind)
    if spec is None or not (spec.scaled or spec.max_classes == 2):
        fitting = [k.name for k in KINDS.values() if k.scaled or k.max_classes == 2]
        raise ValueError(
            "synthetic: kind must be a task kind with real targets or two classes "
            f"({', '.join(fitting)}), got {kind!r}"
        )
    if not 0.0 <= relatedness <= 1.0:
        raise ValueError(f"synthetic: relatedness must be in [0, 1], got {relatedness}")
    clusters = list(clusters) if clusters is not None else [0] * num_tasks
    if len(clusters) != num_tasks:
        raise ValueError(f"synthetic: clusters has {len(clusters)} entries for {num_tasks} tasks")
    for t in conflicting:
        if not 0 <= t < num_tasks:
            raise ValueError(f"synthetic: conflicting task index {t} is out of range")
    if conflict not in ("sign", "curvature"):
        raise ValueError(f"synthetic: conflict must be 'sign' or 'curvature', got {conflict!r}")
    against = sorted({c for t, c in enumerate(clusters) if t not in conflicting})
    if conflict == "curvature" and conflicting and not against:
        raise ValueError("synthetic: conflict='curvature' needs at least one task not conflicting")
    rng = np.random.default_rng(seed)

    def direction() -> np.ndarray:
        v = rng.standard_normal(n_features)
        return v / np.linalg.norm(v)

    shared = {c: direction() for c in sorted(set(clusters))}
    x = rng.standard_normal((n_samples, n_features)).astype("float32")
    tasks, targets = [], {}
    for t in range(num_tasks):
        private = direction()  # drawn for every task: the other tasks do not depend on `conflict`
        w = np.sqrt(relatedness) * shared[clusters[t]] + np.sqrt(1 - relatedness) * private
        curved = t in conflicting and conflict == "curvature"
        if curved:
            signs = [(-1.0) ** i for i in range(len(against))]
            score = sum(
                s * ((x @ shared[c]) ** 2 - 1) for s, c in zip(signs, against, strict=True)
            ) / np.sqrt(2 * len(against))
        else:
            score = (-1.0 if t in conflicting else 1.0) * (x @ w)
        name = f"task{t}"
        if spec.scaled:
            clean = 2.0 * score if curved else 2.0 * np.tanh(score)
            targets[name] = clean + noise * rng.standard_normal(n_samples)
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
