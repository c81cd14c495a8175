"""Task grouping: split T tasks into at most k groups (one model each) maximizing total affinity.

Objective (TAG's formulation, Fifty et al. 2021, restricted to partitions: every task is served
by exactly one group, the one it belongs to). With ``A[i, j]`` the affinity of task i onto
task j (``Z(i→j)``), a group ``G`` serves each member ``j`` with the mean affinity onto ``j``
from the other members,

    s(j, G) = (1 / (|G| − 1)) Σ_{i ∈ G, i ≠ j} A[i, j]        (s = 0 for a singleton group),

and a partition ``P`` scores ``S(P) = Σ_{G ∈ P} Σ_{j ∈ G} s(j, G)``. A singleton scores 0: a
task trained alone neither gains nor loses from others. The diagonal of ``A`` is never used.

``best_partition`` maximizes ``S`` over partitions into at most ``k`` groups (``exactly=True``:
exactly ``k``). Search:

- ``exact`` (default up to :data:`EXACT_LIMIT` tasks): dynamic programming over subsets, the
  group holding the lowest remaining task chosen first, O(k·3ᵀ) time and O(k·2ᵀ) memory — it
  returns a maximizer of ``S`` (ties: the first found);
- ``heuristic`` (beyond): agglomerative merging (join the two groups whose union raises ``S``
  most, until ``k`` groups remain and, for "at most k", no merge raises ``S``), then local
  search over single-task moves and pairwise swaps until no move improves ``S``, repeated from
  ``restarts`` random partitions as well; the best partition found is returned. Its gap to the
  exact optimum is measured on small cases (``benchmarks/analysis/grouping_gap.py``,
  ``tests/analysis/test_grouping.py``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 12
"""Largest number of tasks searched exactly by default (3¹² ≈ 531k subset pairs per group)."""

Partition = list[list[int]]


@dataclass
class Grouping:
    """A chosen partition: ``groups`` (task indices, sorted), its ``score`` and how it was found."""

    groups: Partition
    score: float
    method: str

    def named(self, names: Sequence[str]) -> list[list[str]]:
        return [[names[i] for i in group] for group in self.groups]


def _check(affinity) -> np.ndarray:
    a = np.asarray(affinity, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"affinity: expected a square T × T matrix, got shape {a.shape}")
    off = ~np.eye(len(a), dtype=bool)
    if not np.isfinite(a[off]).all():
        raise ValueError("affinity: off-diagonal entries must be finite (was every pair measured?)")
    return a


OBJECTIVES = ("mean", "sum")


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")


def group_score(affinity, group: Sequence[int], objective: str = "mean") -> float:
    """``Σ_{j ∈ G} s(j, G)`` for one group (0 for a singleton).

    ``objective="sum"``: ``Σ_{i≠j ∈ G} A[i, j]``, total pairwise affinity inside the group."""
    a = np.asarray(affinity, dtype=float)
    group = list(group)
    if len(group) < 2:
        return 0.0
    sub = a[np.ix_(group, group)]
    total = sub.sum() - np.trace(sub)
    return float(total / (len(group) - 1) if objective == "mean" else total)


def partition_score(affinity, groups: Sequence[Sequence[int]], objective: str = "mean") -> float:
    """``S(P)``, the total affinity of a partition."""
    _check_objective(objective)
    return float(sum(group_score(affinity, g, objective) for g in groups))


def _normalize(groups: Sequence[Sequence[int]]) -> Partition:
    return sorted((sorted(int(i) for i in g) for g in groups if len(g)), key=lambda g: g[0])


def _check_k(n: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"groups: expected k >= 1, got {k}")
    if k > n:
        raise ValueError(f"groups: k = {k} groups for only {n} tasks")


# -------------------------------------------------------------------------------- exact search
def _subset_scores(a: np.ndarray, objective: str) -> np.ndarray:
    n = len(a)
    size = 1 << n
    off = a - np.diag(np.diag(a))
    total = np.zeros(size)  # Σ_{i≠j ∈ S} A[i, j], built by adding one task at a time
    count = np.zeros(size, dtype=int)
    for s in range(1, size):
        low = (s & -s).bit_length() - 1
        rest = s & (s - 1)
        members = [i for i in range(n) if rest >> i & 1]
        total[s] = total[rest] + off[low, members].sum() + off[members, low].sum()
        count[s] = count[rest] + 1
    if objective == "sum":
        return total
    return np.where(count > 1, total / np.maximum(count - 1, 1), 0.0)


def exact_partition(affinity, k: int, exactly: bool = False, objective: str = "mean") -> Grouping:
    """A partition into at most (``exactly``: exactly) ``k`` groups maximizing ``S``."""
    a = _check(affinity)
    n = len(a)
    _check_k(n, k)
    if n > 20:
        raise ValueError(f"exact search over {n} tasks is too large; use the heuristic")
    _check_objective(objective)
    f = _subset_scores(a, objective).tolist()
    full = (1 << n) - 1
    ninf = -math.inf
    # best[m][S]: best score of S split into exactly m groups; choice[m][S]: the group of lowbit
    best = [[ninf] * (full + 1) for _ in range(k + 1)]
    choice = [[0] * (full + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for s in range(1, full + 1):
        best[1][s] = f[s]
        choice[1][s] = s
    for m in range(2, k + 1):
        prev, cur, pick = best[m - 1], best[m], choice[m]
        for s in range(1, full + 1):
            low = s & -s
            rest = s ^ low
            top, arg = ninf, 0
            sub = rest  # the group of ``low`` is low | sub, sub ⊊ rest (something left over)
            while True:
                if sub != rest:
                    value = f[low | sub] + prev[rest ^ sub]
                    if value > top:
                        top, arg = value, low | sub
                if sub == 0:
                    break
                sub = (sub - 1) & rest
            cur[s], pick[s] = top, arg
    sizes = [k] if exactly else range(1, k + 1)
    m = max(sizes, key=lambda c: (best[c][full], -c))
    if best[m][full] == ninf:
        raise ValueError(f"groups: cannot split {n} tasks into exactly {k} groups")
    groups, s = [], full
    while m > 0:
        g = choice[m][s]
        groups.append([i for i in range(n) if g >> i & 1])
        s ^= g
        m -= 1
    groups = _normalize(groups)
    return Grouping(groups, partition_score(a, groups, objective), "exact")


def set_partitions(n: int, k: int | None = None) -> Iterator[Partition]:
    """Every partition of ``range(n)`` (into at most ``k`` groups): for brute-force checks."""

    def rec(i: int, groups: Partition) -> Iterator[Partition]:
        if i == n:
            yield [list(g) for g in groups]
            return
        for g in groups:
            g.append(i)
            yield from rec(i + 1, groups)
            g.pop()
        if k is None or len(groups) < k:
            groups.append([i])
            yield from rec(i + 1, groups)
            groups.pop()

    yield from rec(0, [])


# ---------------------------------------------------------------------------------- heuristic
def _local_search(
    a: np.ndarray, groups: Partition, k: int, exactly: bool, objective: str
) -> Partition:
    groups = [list(g) for g in groups if g]
    scores = [group_score(a, g, objective) for g in groups]
    improved = True
    while improved:
        improved = False
        # moves: one task to another group (or to a new group while fewer than k)
        for gi in range(len(groups)):
            for task in list(groups[gi]):
                if task not in groups[gi]:
                    continue
                source = [t for t in groups[gi] if t != task]
                if not source and exactly:
                    continue
                source_score = group_score(a, source, objective)
                targets = list(range(len(groups)))
                if len(groups) < k:
                    targets.append(-1)
                for gj in targets:
                    if gj == gi or (gj == -1 and not source):
                        continue
                    dest = [task] if gj == -1 else groups[gj] + [task]
                    old = scores[gi] + (0.0 if gj == -1 else scores[gj])
                    new = source_score + group_score(a, dest, objective)
                    if new > old + 1e-12:
                        groups[gi], scores[gi] = source, source_score
                        if gj == -1:
                            groups.append(dest)
                            scores.append(group_score(a, dest, objective))
                        else:
                            groups[gj], scores[gj] = dest, group_score(a, dest, objective)
                        improved = True
                        break
                if not groups[gi]:
                    break
            if improved:
                break
        if improved:
            keep = [i for i, g in enumerate(groups) if g]
            groups, scores = [groups[i] for i in keep], [scores[i] for i in keep]
            continue
        # swaps: exchange two tasks of different groups
        for gi, gj in itertools.combinations(range(len(groups)), 2):
            for ti in groups[gi]:
                for tj in groups[gj]:
                    new_i = [t for t in groups[gi] if t != ti] + [tj]
                    new_j = [t for t in groups[gj] if t != tj] + [ti]
                    si, sj = group_score(a, new_i, objective), group_score(a, new_j, objective)
                    if si + sj > scores[gi] + scores[gj] + 1e-12:
                        groups[gi], groups[gj], scores[gi], scores[gj] = new_i, new_j, si, sj
                        improved = True
                        break
                if improved:
                    break
            if improved:
                break
    return groups


def _agglomerative(a: np.ndarray, k: int, exactly: bool, objective: str) -> Partition:
    groups: Partition = [[i] for i in range(len(a))]
    while len(groups) > 1:
        best, pair = -math.inf, None
        for x, y in itertools.combinations(range(len(groups)), 2):
            gain = (
                group_score(a, groups[x] + groups[y], objective)
                - group_score(a, groups[x], objective)
                - group_score(a, groups[y], objective)
            )
            if gain > best:
                best, pair = gain, (x, y)
        must = len(groups) > k
        if not must and (exactly or best <= 0):
            break
        x, y = pair
        groups[x] = groups[x] + groups[y]
        del groups[y]
    return groups


def heuristic_partition(
    affinity,
    k: int,
    exactly: bool = False,
    objective: str = "mean",
    restarts: int = 20,
    seed: int = 0,
) -> Grouping:
    """Agglomerative merging + local search, plus ``restarts`` random starts; best found."""
    a = _check(affinity)
    n = len(a)
    _check_k(n, k)
    _check_objective(objective)
    rng = random.Random(seed)
    starts = [_agglomerative(a, k, exactly, objective)]
    for _ in range(restarts):
        size = k if exactly else rng.randint(1, k)
        labels = list(range(size)) + [rng.randrange(size) for _ in range(n - size)]
        rng.shuffle(labels)
        starts.append([[i for i in range(n) if labels[i] == g] for g in range(size)])
    best: Partition | None = None
    best_score = -math.inf
    for start in starts:
        groups = _local_search(a, start, k, exactly, objective)
        score = partition_score(a, groups, objective)
        if score > best_score + 1e-12:
            best, best_score = groups, score
    groups = _normalize(best)
    return Grouping(groups, partition_score(a, groups, objective), "heuristic")


def best_partition(
    affinity,
    k: int,
    exactly: bool = False,
    objective: str = "mean",
    method: str = "auto",
    exact_limit: int = EXACT_LIMIT,
    seed: int = 0,
) -> Grouping:
    """Maximize ``S`` over partitions into at most ``k`` (``exactly``: exactly ``k``) groups.

    ``method``: ``"exact"``, ``"heuristic"`` or ``"auto"`` (exact up to ``exact_limit`` tasks).
    """
    if method not in ("auto", "exact", "heuristic"):
        raise ValueError(f"method: expected auto, exact or heuristic, got {method!r}")
    n = len(_check(affinity))
    if method == "exact" or (method == "auto" and n <= exact_limit):
        return exact_partition(affinity, k, exactly, objective)
    return heuristic_partition(affinity, k, exactly, objective, seed=seed)


def optimality_gap(
    affinity, k: int, exactly: bool = False, objective: str = "mean", seed: int = 0
) -> float:
    """``(S_exact − S_heuristic) / max(|S_exact|, tiny)`` on one matrix (0: optimal)."""
    exact = exact_partition(affinity, k, exactly, objective).score
    heuristic = heuristic_partition(affinity, k, exactly, objective, seed=seed).score
    return (exact - heuristic) / max(abs(exact), 1e-12)
