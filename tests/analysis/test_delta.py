import logging
import math

import pytest

from mtlkit.analysis import comparison_table, delta_m, delta_m_terms


def test_delta_m_hand_computed():
    # Task a: accuracy 0.80 -> 0.88 (+10%), mse 2.0 -> 1.5 (lower is better: +25%) => mean +17.5%
    # Task b: r2 0.50 -> 0.45 (-10%)                                             => -10%
    # Δm = (17.5 - 10) / 2 = 3.75
    stl = {"a": {"accuracy": 0.80, "mse": 2.0}, "b": {"r2": 0.50}}
    mtl = {"a": {"accuracy": 0.88, "mse": 1.5}, "b": {"r2": 0.45}}
    metrics = {"a": ["accuracy", "mse"], "b": ["r2"]}
    assert delta_m(mtl, stl, metrics) == pytest.approx(3.75)


def test_delta_m_is_zero_against_itself_and_antisymmetric_in_sign():
    stl = {"a": {"mae": 3.0}}
    assert delta_m(stl, stl, {"a": ["mae"]}) == 0.0
    assert delta_m({"a": {"mae": 6.0}}, stl, {"a": ["mae"]}) == pytest.approx(-100.0)


# --- a single-task value of 0: no relative change, left out and said so ---------------------


def test_a_zero_baseline_is_left_out_of_its_task_and_named_with_the_reason(caplog):
    stl = {"a": {"f1": 0.0, "accuracy": 0.5}, "b": {"f1": 0.0}, "c": {"mae": 2.0}}
    mtl = {"a": {"f1": 0.4, "accuracy": 0.6}, "b": {"f1": 0.3}, "c": {"mae": 1.0}}
    metrics = {"a": ["f1", "accuracy"], "b": ["f1"], "c": ["mae"]}
    terms = delta_m_terms(mtl, stl, metrics)
    # a: accuracy alone (+20%); b: nothing left (undefined); c: +50%; Δm over a and c
    assert terms.task_gains["a"] == pytest.approx(20.0)
    assert math.isnan(terms.task_gains["b"])
    assert terms.task_gains["c"] == pytest.approx(50.0)
    assert terms.value == pytest.approx(35.0)
    why = "single-task value is 0, so the relative change is undefined"
    assert terms.left_out == {"a f1": why, "b f1": why}
    with caplog.at_level(logging.WARNING, logger="mtlkit.analysis.delta"):
        assert delta_m(mtl, stl, metrics) == pytest.approx(35.0)
    assert [r.getMessage() for r in caplog.records] == [f"Δm leaves out a f1: {why}; b f1: {why}"]


def test_delta_m_is_undefined_when_every_baseline_is_zero():
    terms = delta_m_terms({"a": {"mse": 1.0}}, {"a": {"mse": 0.0}}, {"a": ["mse"]})
    assert math.isnan(terms.value) and list(terms.left_out) == ["a mse"]
    assert math.isnan(delta_m({"a": {"mse": 0.0}}, {"a": {"mse": 0.0}}, {"a": ["mse"]}))


def test_nothing_left_out_gives_no_note():
    terms = delta_m_terms({"a": {"mae": 1.0}}, {"a": {"mae": 2.0}}, {"a": ["mae"]})
    assert terms.left_out == {} and terms.note() == ""


# --- undefined (NaN) metrics: left out, never a gain or a loss ------------------------------


def test_a_metric_undefined_for_either_model_is_left_out_of_its_task_with_a_warning(caplog):
    nan = float("nan")
    stl = {"a": {"accuracy": 0.80, "precision": nan}, "b": {"r2": 0.50}}
    mtl = {"a": {"accuracy": 0.88, "precision": 0.9}, "b": {"r2": 0.45}}
    metrics = {"a": ["accuracy", "precision"], "b": ["r2"]}
    with caplog.at_level(logging.WARNING, logger="mtlkit.analysis.delta"):
        got = delta_m(mtl, stl, metrics)
    assert [r.getMessage() for r in caplog.records] == [
        "Δm leaves out a precision: undefined (NaN) for a model"
    ]
    assert got == pytest.approx((10.0 - 10.0) / 2)  # task a: accuracy alone


def test_a_task_with_no_defined_metric_is_left_out_and_nothing_left_is_nan():
    nan = float("nan")
    stl = {"a": {"r2": nan}, "b": {"mae": 2.0}}
    mtl = {"a": {"r2": 0.3}, "b": {"mae": 1.0}}
    assert delta_m(mtl, stl, {"a": ["r2"], "b": ["mae"]}) == pytest.approx(50.0)
    assert math.isnan(delta_m(mtl, stl, {"a": ["r2"]}))


def test_tables_print_an_undefined_value_as_missing():
    nan = float("nan")
    results = {"stl": {"a": {"r2": nan}}, "hps": {"a": {"r2": 0.25}}}
    table = comparison_table(results, {"a": ["r2"]}, {"stl": 0.0, "hps": nan})
    rows = [line.split() for line in table.splitlines()[2:]]
    assert rows == [["a", "r2", "-", "0.2500"], ["Δm", "%", "vs", "stl", "+0.00", "-"]]
