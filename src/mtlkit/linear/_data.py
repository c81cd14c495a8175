"""Input validation and the two data layouts: a shared design and per-task designs.

Both layouts expose the same small interface to the losses: ``forward(W)`` returns the linear
predictions of every task in a "target container" (an ``n × T`` array for the shared design, one
concatenated vector for per-task designs), ``backward(G)`` applies the adjoint and returns a
``T × d`` array, ``task_sum`` reduces a container to one number per task and ``broadcast`` spreads
one number per task over a container.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array


def is_per_task(X) -> bool:
    """True when ``X`` is a sequence of 2-D designs (one per task) rather than one design."""
    if not isinstance(X, list | tuple) or len(X) == 0:
        return False
    return all(sp.issparse(x) or np.ndim(x) == 2 for x in X)


def as_design(x, *, name: str, n_features: int | None = None):
    x = check_array(
        x,
        accept_sparse=("csr", "csc"),
        dtype=np.float64,
        ensure_all_finite=True,
        input_name=name,
    )
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features, expected {n_features}.")
    return x


class SharedDesign:
    """One design ``X`` (n × d, dense or sparse) for all tasks; ``mask`` (n × T) marks labels."""

    def __init__(self, X, mask: np.ndarray):
        self.X = X
        self.mask = mask
        self.n_tasks = mask.shape[1]
        self.n_features = X.shape[1]
        self.counts = mask.sum(axis=0)
        self.full = bool(mask.all())
        self.size = X.nnz if hasattr(X, "nnz") else X.size

    def forward(self, W: np.ndarray) -> np.ndarray:
        return np.asarray(self.X @ W.T)

    def backward(self, G: np.ndarray) -> np.ndarray:
        return np.asarray(self.X.T @ G).T

    def task_sum(self, V: np.ndarray) -> np.ndarray:
        return V.sum(axis=0)

    def broadcast(self, b: np.ndarray) -> np.ndarray:
        return b[None, :]


class TaskDesign:
    """One design ``X_t`` (n_t × d) per task; containers are the concatenation over tasks."""

    def __init__(self, Xs: Sequence):
        self.Xs = list(Xs)
        self.n_tasks = len(self.Xs)
        self.n_features = self.Xs[0].shape[1]
        self.counts = np.array([x.shape[0] for x in self.Xs])
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.slices = [slice(s, s + c) for s, c in zip(self.starts, self.counts, strict=True)]
        self.full = True
        self.size = sum(x.nnz if hasattr(x, "nnz") else x.size for x in self.Xs)

    def forward(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(x @ w) for x, w in zip(self.Xs, W, strict=True)])

    def backward(self, g: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(x.T @ g[s]) for x, s in zip(self.Xs, self.slices, strict=True)])

    def task_sum(self, v: np.ndarray) -> np.ndarray:
        return np.add.reduceat(v, self.starts)

    def broadcast(self, b: np.ndarray) -> np.ndarray:
        return np.repeat(b, self.counts)


def check_task_lists(Xs, ys, *, n_features: int | None = None):
    """Validate per-task designs ``Xs`` and targets ``ys`` (lists of equal length)."""
    if not isinstance(ys, list | tuple):
        raise ValueError("With per-task designs (a list of X_t), y must be a list of y_t too.")
    if len(Xs) != len(ys):
        raise ValueError(f"Got {len(Xs)} designs but {len(ys)} targets: one y_t per X_t is needed.")
    for t, y in enumerate(ys):
        if np.shape(y)[0] == 0 or np.shape(Xs[t])[0] == 0:
            raise ValueError(f"Task {t} has no labelled rows.")
    Xs = [as_design(x, name=f"X[{t}]", n_features=n_features) for t, x in enumerate(Xs)]
    d = Xs[0].shape[1]
    out = []
    for t, (x, y) in enumerate(zip(Xs, ys, strict=True)):
        if x.shape[1] != d:
            raise ValueError(f"X[{t}] has {x.shape[1]} features, X[0] has {d}.")
        y = np.asarray(y).ravel() if np.ndim(y) == 2 and np.shape(y)[1] == 1 else np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y[{t}] must be 1-D, got shape {y.shape}.")
        if y.shape[0] != x.shape[0]:
            raise ValueError(
                f"Task {t}: X[{t}] has {x.shape[0]} rows but y[{t}] has {y.shape[0]} "
                "(mismatched lengths)."
            )
        if y.shape[0] == 0:
            raise ValueError(f"Task {t} has no labelled rows.")
        out.append(y)
    return Xs, out
