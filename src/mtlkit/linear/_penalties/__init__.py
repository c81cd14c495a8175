"""Penalties ``R(W)`` of the linear multi-task module, one per file; see :func:`make_penalty`."""

from __future__ import annotations

from ._base import Penalty
from ._clustered import ClusteredConvex
from ._elasticnet import ElasticNet
from ._l21 import GroupElasticNet
from ._quadratic import GraphRegularization, MeanRegularization
from ._trace import TraceNorm

PENALTIES = ("l2", "l1", "elasticnet", "l21", "trace", "mean", "graph", "clustered")

#: Default of the mixing parameter per penalty (``l1_ratio`` for the first, ``rho`` for the rest).
DEFAULT_L1_RATIO = {"elasticnet": 0.5, "l21": 1.0}
DEFAULT_RHO = {"mean": 0.1, "graph": 0.1, "clustered": 1.0}


def make_penalty(
    name: str,
    n_tasks: int,
    *,
    l1_ratio: float | None = None,
    rho: float | None = None,
    edges=None,
    n_clusters: int | None = None,
) -> Penalty:
    """Build the penalty called ``name`` for ``n_tasks`` tasks."""
    if name in ("l1", "l2", "elasticnet"):
        ratio = {"l1": 1.0, "l2": 0.0}.get(name)
        if ratio is None:
            ratio = DEFAULT_L1_RATIO[name] if l1_ratio is None else l1_ratio
        return ElasticNet(ratio)
    if name == "l21":
        return GroupElasticNet(DEFAULT_L1_RATIO[name] if l1_ratio is None else l1_ratio)
    if name == "trace":
        return TraceNorm()
    rho = DEFAULT_RHO[name] if rho is None else rho
    if name == "mean":
        return MeanRegularization(n_tasks, rho)
    if name == "graph":
        if edges is None:
            raise ValueError("penalty='graph' needs edges: (s, t) task pairs or a T × T matrix.")
        return GraphRegularization(edges, n_tasks, rho)
    if name == "clustered":
        if rho <= 0:
            raise ValueError(f"penalty='clustered' needs rho (η) > 0, got {rho}.")
        k = 1 if n_clusters is None else n_clusters
        if not 1 <= k <= n_tasks:
            raise ValueError(f"n_clusters must lie in [1, n_tasks={n_tasks}], got {k}.")
        return ClusteredConvex(k, rho)
    raise ValueError(f"Unknown penalty {name!r}; choose one of {PENALTIES}.")


__all__ = [
    "PENALTIES",
    "ClusteredConvex",
    "ElasticNet",
    "GraphRegularization",
    "GroupElasticNet",
    "MeanRegularization",
    "Penalty",
    "TraceNorm",
    "make_penalty",
]
