import numpy as np
import pytest
from sklearn import metrics as skm

from mtlkit.tasks import IGNORE_INDEX, METRICS, Task, compute_metrics, higher_is_better


def test_every_metric_declares_its_direction():
    for name, metric in METRICS.items():
        assert isinstance(metric.higher_is_better, bool), name
    assert higher_is_better("accuracy") and not higher_is_better("mse")


def test_multiclass_metrics_match_sklearn_and_skip_missing():
    task = Task("a", "multiclass", 3)
    y = np.array([0, 1, 2, 2, IGNORE_INDEX, 1])
    p = np.array([0, 2, 2, 1, 0, 1])
    keep = y != IGNORE_INDEX
    got = compute_metrics(task, y, p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y[keep], p[keep]))
    assert got["f1"] == pytest.approx(skm.f1_score(y[keep], p[keep], average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y[keep], p[keep], average="macro"))


def test_binary_metrics_use_the_positive_class():
    task = Task("b", "binary")
    y, p = np.array([1, 0, 1, 1]), np.array([1, 1, 0, 1])
    got = compute_metrics(task, y, p)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)


def test_regression_metrics_match_sklearn():
    task = Task("r", "regression")
    y = np.array([1.0, 2.0, np.nan, 4.0])
    p = np.array([1.5, 2.0, 9.0, 3.0])
    keep = ~np.isnan(y)
    got = compute_metrics(task, y, p)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y[keep], p[keep]))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y[keep], p[keep]))
    assert got["r2"] == pytest.approx(skm.r2_score(y[keep], p[keep]))


def test_multilabel_metrics_are_per_label_and_averaged():
    task = Task("m", "multilabel", 2, class_names=["x", "y"], metrics=["accuracy"])
    y = np.array([[1, 0], [0, IGNORE_INDEX], [1, 1]])
    p = np.array([[1, 1], [1, 0], [1, 1]])
    got = compute_metrics(task, y, p)
    assert got["accuracy/x"] == pytest.approx(2 / 3)
    assert got["accuracy/y"] == pytest.approx(1 / 2)
    assert got["accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_no_labelled_rows_gives_nan():
    got = compute_metrics(Task("a", "binary"), np.full(3, IGNORE_INDEX), np.zeros(3))
    assert all(np.isnan(v) for v in got.values())
