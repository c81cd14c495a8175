"""Evaluation metrics, each with its direction (higher or lower is better) and task kinds.

Metrics are computed on the labelled rows of a whole split: the label metrics with
scikit-learn from predicted labels, the probability metrics (``roc_auc``, ``log_loss``,
``brier``) from the predicted probabilities. For ``multilabel`` tasks every metric is computed
per label and averaged over labels; the per-label values are returned too, as
``"<metric>/<label>"``.

An undefined metric is NaN, never 0: precision with no row predicted positive, recall with no
positive row, f1 with neither, r2 of constant targets, roc_auc with one class, any metric with
no labelled row (:attr:`Metric.undefined_when` says when). Averages over classes (macro), labels
(multilabel) and target columns (r2) leave undefined parts out and are NaN only when every part
is. :func:`compute_metrics` logs a warning with the reason (logger ``mtlkit.tasks.metrics``;
the command line prints it); run files store NaN as ``null``, tables print ``-``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sklearn
from scipy.stats import rankdata
from sklearn import metrics as skm

if TYPE_CHECKING:
    from mtlkit.tasks.task import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """A named metric ``fn(y_true, y) -> float``, its direction and the task kinds it applies to.

    ``kinds`` names the task kinds (:mod:`mtlkit.tasks.kinds`) it applies to. ``y`` is the
    predicted labels, or with ``needs_probabilities`` the predicted probabilities:
    of class 1 for a binary task (or each label of a multilabel one), ``(n, classes)`` for a
    multiclass task. ``fn`` returns NaN where the metric is undefined; ``undefined_when`` says
    when that is (every metric is undefined on no labelled row).
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    kinds: tuple[str, ...]
    needs_probabilities: bool = False
    undefined_when: str = "no labelled row"


# zero_division=NaN: an undefined score is NaN, and a macro average leaves such classes out
def _macro(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(fn(y_true, y_pred, average="macro", zero_division=np.nan))

    return wrapped


def _binary(fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(fn(y_true, y_pred, average="binary", zero_division=np.nan))

    return wrapped


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination ``R² = 1 − Σᵢ (yᵢ − ŷᵢ)² / Σᵢ (yᵢ − ȳ)²`` per target
    column, averaged over the columns whose labelled targets are not all equal (scikit-learn's
    ``r2_score``, which instead gives such a column 1 or 0); NaN when every column is constant.
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    varies = y_true.max(axis=0) > y_true.min(axis=0)
    if not varies.any():
        return float("nan")
    y_true, y_pred = y_true[:, varies], y_pred[:, varies]
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / total))


def _binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)  # ties get their average rank, i.e. count ½
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Area under the ROC curve.

    Binary: ``AUC = P(s₊ > s₋) + ½ P(s₊ = s₋)`` over pairs of a positive and a negative row,
    computed as the Mann–Whitney statistic ``(R₊ − n₊(n₊+1)/2) / (n₊ n₋)`` with ``R₊`` the sum of
    the positives' ranks (Hanley & McNeil, 1982). Multiclass: the macro average of the
    one-vs-rest AUCs of ``P(class k)``, over the classes that occur and do not make up every
    row (scikit-learn's ``multi_class="ovr"``, which instead fails when a class is absent).
    NaN when no class qualifies.
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob)
    if y_prob.ndim == 1:
        return _binary_roc_auc(y_true == 1, y_prob)
    aucs = [_binary_roc_auc(y_true == k, y_prob[:, k]) for k in range(y_prob.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def _one_hot_probabilities(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Y, P)``, both ``(n, classes)``: one-hot labels and probabilities (binary: 2 columns)."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim == 1:
        y_prob = np.stack([1 - y_prob, y_prob], axis=1)
    return np.eye(y_prob.shape[1])[np.asarray(y_true, dtype=np.int64)], y_prob


def log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Cross-entropy ``−(1/n) Σᵢ log p̂ᵢ(yᵢ)`` of the probability given to the true class.

    Probabilities are clipped to ``[ε, 1 − ε]`` (``ε`` the machine epsilon of their dtype, as
    scikit-learn's ``log_loss``), so a confident mistake costs ``−log ε`` rather than infinity.
    """
    dtype = np.asarray(y_prob).dtype
    eps = np.finfo(dtype if dtype.kind == "f" else np.float64).eps
    onehot, prob = _one_hot_probabilities(y_true, y_prob)
    true_class = np.clip((onehot * prob).sum(axis=1), eps, 1 - eps)
    return float(-np.log(true_class).mean())


def brier(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Brier score (Brier, 1950): mean squared error of the probabilities.

    Binary (and per label): ``(1/n) Σᵢ (p̂ᵢ − yᵢ)²`` in ``[0, 1]``. Multiclass:
    ``(1/n) Σᵢ Σₖ (p̂ᵢₖ − [yᵢ = k])²`` in ``[0, 2]``. Equals scikit-learn's
    ``brier_score_loss`` (``scale_by_half="auto"``).
    """
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim == 1:
        return float(((y_prob - np.asarray(y_true)) ** 2).mean())
    onehot, prob = _one_hot_probabilities(y_true, y_prob)
    return float(((prob - onehot) ** 2).sum(axis=1).mean())


_CLASSIFICATION = ("multiclass", "binary", "multilabel")

_NO_POSITIVE = "no labelled row is positive"

METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", skm.accuracy_score, True, _CLASSIFICATION),
    "f1": Metric(
        "f1",
        _macro(skm.f1_score),
        True,
        _CLASSIFICATION,
        undefined_when=f"{_NO_POSITIVE} or predicted positive",
    ),
    "precision": Metric(
        "precision",
        _macro(skm.precision_score),
        True,
        _CLASSIFICATION,
        undefined_when="no labelled row is predicted positive",
    ),
    "recall": Metric(
        "recall",
        _macro(skm.recall_score),
        True,
        _CLASSIFICATION,
        undefined_when=_NO_POSITIVE,
    ),
    "mse": Metric("mse", skm.mean_squared_error, False, ("regression",)),
    "mae": Metric("mae", skm.mean_absolute_error, False, ("regression",)),
    "r2": Metric(
        "r2", r2, True, ("regression",), undefined_when="fewer than two distinct labelled targets"
    ),
    "roc_auc": Metric(
        "roc_auc",
        roc_auc,
        True,
        _CLASSIFICATION,
        needs_probabilities=True,
        undefined_when="the labelled rows hold fewer than two classes",
    ),
    "log_loss": Metric("log_loss", log_loss, False, _CLASSIFICATION, needs_probabilities=True),
    "brier": Metric("brier", brier, False, _CLASSIFICATION, needs_probabilities=True),
}
"""The metric registry. ``f1``/``precision``/``recall`` are macro averages over classes for
multiclass tasks (over the classes where the score is defined) and the positive-class scores for
binary tasks (per label for multilabel);
``roc_auc``, ``log_loss`` and ``brier`` score the predicted probabilities."""

_BINARY_OVERRIDES = {
    "f1": _binary(skm.f1_score),
    "precision": _binary(skm.precision_score),
    "recall": _binary(skm.recall_score),
}


def get_metric(name: str, task: str | None = None) -> Metric:
    """Look a metric up by name, with an error that names the task and lists the valid names
    (whether it applies to a task's kind: ``TaskKind.check_metric``)."""
    metric = METRICS.get(name)
    if metric is None:
        where = f"task {task!r}: " if task else ""
        raise ValueError(
            f"{where}unknown metric {name!r}; choose from {', '.join(sorted(METRICS))}"
        )
    return metric


def higher_is_better(name: str) -> bool:
    return get_metric(name).higher_is_better


def score(
    metric: Metric,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_prob: np.ndarray | None,
    average: str = "macro",
) -> float:
    """``metric`` on labelled rows; ``average="binary"``: f1/precision/recall of class 1."""
    if metric.needs_probabilities:
        return metric.fn(y_true, y_prob)
    # Inputs are already validated here; skipping sklearn's checks makes per-epoch evaluation cheap.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        if average == "binary" and metric.name in _BINARY_OVERRIDES:
            return _BINARY_OVERRIDES[metric.name](y_true, y_pred)
        return float(metric.fn(y_true, y_pred))


def compute_metrics(
    task: Task, y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric of ``task`` on the labelled rows of ``y_true``/``y_pred`` (which rows, and
    per label or not, is the task kind's: ``TaskKind.compute_metrics``).

    ``y_prob`` (``task.probabilities(output)``) is needed by the probability metrics
    (``roc_auc``, ``log_loss``, ``brier``). A metric undefined on these rows (NaN; every metric
    when no row is labelled) is logged as a warning giving the reason.
    """
    metrics = [get_metric(m) for m in task.metrics]
    if y_prob is None:
        wanting = [m.name for m in metrics if m.needs_probabilities]
        if wanting:
            raise ValueError(
                f"task {task.name!r}: metric {wanting[0]!r} needs the predicted probabilities"
            )
    else:
        y_prob = np.asarray(y_prob)
    results = task.spec.compute_metrics(
        task, metrics, np.asarray(y_true), np.asarray(y_pred), y_prob
    )
    undefined = [name for name, value in results.items() if math.isnan(value)]
    if undefined:
        reasons = ", ".join(f"{name} undefined ({_undefined_when(name)})" for name in undefined)
        logger.warning("task %r: %s; reported as NaN (missing)", task.name, reasons)
    return results


def _undefined_when(name: str) -> str:
    """The reason a result key (``metric`` or ``metric/label``) can be NaN."""
    metric = METRICS.get(name.partition("/")[0])
    return metric.undefined_when if metric else "undefined"
