import logging

import numpy as np
import pytest
from sklearn import metrics as skm

from mtlkit.tasks import (
    IGNORE_INDEX,
    KINDS,
    METRICS,
    Task,
    compute_metrics,
    get_kind,
    higher_is_better,
)


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


def test_no_labelled_rows_gives_nan(caplog):
    got, message = _scores(caplog, Task("a", "binary"), np.full(3, IGNORE_INDEX), np.zeros(3))
    assert all(np.isnan(v) for v in got.values())
    assert "accuracy undefined (no labelled row)" in message


# --- probability metrics: reference values from scikit-learn -------------------------------


def _probabilities(rng, n, classes):
    logits = rng.normal(size=(n, classes))
    prob = np.exp(logits)
    return prob / prob.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(3))
def test_binary_probability_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=40)
    p = rng.uniform(size=40).round(1)  # rounding makes ties, which the AUC counts as ½
    got = compute_metrics(
        Task("b", "binary", metrics=["roc_auc", "log_loss", "brier"]), y, (p > 0.5) * 1, p
    )
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_probability_metrics_match_sklearn_one_vs_rest_macro(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=60)
    prob = _probabilities(rng, 60, 4)
    task = Task("m", "multiclass", 4, metrics=["roc_auc", "log_loss", "brier"])
    got = compute_metrics(task, y, prob.argmax(1), prob)
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, prob, labels=range(4)), abs=1e-12)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, prob, labels=range(4)), abs=1e-12)


def test_multiclass_roc_auc_averages_the_classes_present():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=30)  # class 2 never occurs
    prob = _probabilities(rng, 30, 3)
    got = compute_metrics(Task("m", "multiclass", 3, metrics=["roc_auc"]), y, y, prob)
    expected = np.mean([skm.roc_auc_score(y == k, prob[:, k]) for k in (0, 1)])
    assert got["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_multilabel_probability_metrics_are_per_label_on_labelled_entries():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(50, 3))
    y[::7, 1] = IGNORE_INDEX
    prob = rng.uniform(size=(50, 3))
    task = Task("t", "multilabel", 3, metrics=["roc_auc", "brier", "log_loss"])
    got = compute_metrics(task, y, (prob > 0.5) * 1, prob)
    for name, fn in [
        ("roc_auc", skm.roc_auc_score),
        ("brier", skm.brier_score_loss),
        ("log_loss", skm.log_loss),
    ]:
        per_label = []
        for j in range(3):
            keep = y[:, j] != IGNORE_INDEX
            per_label.append(fn(y[keep, j], prob[keep, j]))
            assert got[f"{name}/{j}"] == pytest.approx(per_label[-1], abs=1e-12)
        assert got[name] == pytest.approx(np.mean(per_label), abs=1e-12)


def test_probability_metrics_skip_missing_labels_and_declare_direction():
    y = np.array([1, 0, IGNORE_INDEX, 1, 0])
    p = np.array([0.9, 0.2, 0.0, 0.4, 0.6])
    task = Task("b", "binary", metrics=["roc_auc", "log_loss", "brier"])
    got = compute_metrics(task, y, (p > 0.5) * 1, p)
    keep = y != IGNORE_INDEX
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y[keep], p[keep]))
    assert got["brier"] == pytest.approx(np.mean((p[keep] - y[keep]) ** 2))
    assert higher_is_better("roc_auc")
    assert not higher_is_better("log_loss") and not higher_is_better("brier")


def test_log_loss_of_a_certain_mistake_is_finite():
    got = compute_metrics(
        Task("b", "binary", metrics=["log_loss"]),
        np.array([1, 0]),
        np.array([0, 1]),
        np.array([0.0, 1.0], dtype=np.float32),
    )
    assert got["log_loss"] == pytest.approx(-np.log(np.finfo(np.float32).eps))


def test_roc_auc_of_a_single_class_is_nan(caplog):
    task = Task("b", "binary", metrics=["roc_auc"])
    got, message = _scores(caplog, task, np.ones(4), np.ones(4), np.linspace(0, 1, 4))
    assert "roc_auc undefined (the labelled rows hold fewer than two classes)" in message
    assert np.isnan(got["roc_auc"])


def test_probability_metric_without_probabilities_is_an_error_naming_the_task():
    with pytest.raises(ValueError, match="task 'b': metric 'roc_auc' needs the predicted"):
        compute_metrics(Task("b", "binary", metrics=["roc_auc"]), np.ones(2), np.ones(2))


# --- metrics are validated against the task kind -----------------------------------------


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("regression", "accuracy"), ("regression", "roc_auc"), ("multiclass", "mse")],
)
def test_a_metric_of_another_kind_is_an_error_naming_task_and_metric(kind, metric):
    outputs = 1 if kind == "regression" else 3
    with pytest.raises(ValueError) as err:
        Task("t", kind, outputs, metrics=[metric])
    message = str(err.value)
    assert f"task 't': metric {metric!r} does not apply to a {kind} task" in message
    assert all(name in message for name in get_kind(kind).metrics())


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_default_metrics_that_apply_to_it(kind):
    spec = get_kind(kind)
    assert spec.default_metrics and set(spec.default_metrics) <= set(spec.metrics())
    for name in spec.default_metrics:
        assert spec.check_metric(name) is METRICS[name]


# --- undefined metrics are NaN with a reason, never 0 ----------------------------------------


def _scores(caplog, task, y, p, prob=None):
    """The metrics and the warnings logged while computing them."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtlkit.tasks.metrics"):
        got = compute_metrics(task, np.asarray(y), np.asarray(p), prob)
    return got, " ".join(record.getMessage() for record in caplog.records)


def test_binary_scores_without_any_positive_are_nan_with_the_reason(caplog):
    got, message = _scores(caplog, Task("b", "binary"), [0, 0, 0], [0, 0, 0])
    assert got["accuracy"] == 1.0
    assert all(np.isnan(got[m]) for m in ("f1", "precision", "recall"))
    assert message.startswith("task 'b': f1 undefined (no labelled row is positive or predicted")
    assert "precision undefined (no labelled row is predicted positive)" in message
    assert "recall undefined (no labelled row is positive)" in message
    assert message.endswith("reported as NaN (missing)")


def test_binary_precision_without_a_predicted_positive_is_nan_and_recall_is_zero(caplog):
    got, message = _scores(caplog, Task("b", "binary"), [1, 0, 1], [0, 0, 0])
    assert np.isnan(got["precision"]) and got["recall"] == 0.0 and got["f1"] == 0.0
    assert "recall" not in message


def test_binary_recall_without_a_labelled_positive_is_nan_and_precision_is_zero(caplog):
    got, _ = _scores(caplog, Task("b", "binary"), [0, 0, 0], [1, 0, 0])
    assert np.isnan(got["recall"]) and got["precision"] == 0.0 and got["f1"] == 0.0


def test_macro_averages_leave_out_the_classes_where_a_score_is_undefined(caplog):
    y, p = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])  # class 2 is never predicted
    got, message = _scores(caplog, Task("m", "multiclass", 3), y, p)
    assert message == ""  # the averages are defined
    assert got["precision"] == pytest.approx((1 + 1 / 3) / 2)  # classes 0 and 1 only
    assert got["precision"] == pytest.approx(
        skm.precision_score(y, p, average="macro", zero_division=np.nan)
    )
    assert got["recall"] == pytest.approx(skm.recall_score(y, p, average="macro"))


def test_r2_of_constant_targets_is_nan_with_the_reason(caplog):
    got, message = _scores(caplog, Task("r", "regression"), [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert np.isnan(got["r2"]) and got["mse"] == pytest.approx(2 / 3)
    assert message == (
        "task 'r': r2 undefined (fewer than two distinct labelled targets); "
        "reported as NaN (missing)"
    )


def test_r2_averages_the_target_columns_that_vary():
    y = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    p = np.array([[1.5, 4.0], [2.0, 6.0], [3.0, 5.0]])
    got = compute_metrics(Task("r", "regression", 2), y, p)
    assert got["r2"] == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]))


def test_a_multilabel_label_without_positives_is_nan_and_left_out_of_the_mean(caplog):
    task = Task("m", "multilabel", 2, class_names=["x", "y"], metrics=["recall"])
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[1, 1], [1, 0], [0, 0]])
    got, message = _scores(caplog, task, y, p)
    assert np.isnan(got["recall/y"]) and got["recall/x"] == pytest.approx(1 / 2)
    assert got["recall"] == pytest.approx(1 / 2)
    assert "recall/y undefined (no labelled row is positive)" in message
