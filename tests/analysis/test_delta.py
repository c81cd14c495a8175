import pytest

from mtlkit.analysis import delta_m


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


def test_delta_m_rejects_zero_baseline():
    with pytest.raises(ValueError, match="task 'a'"):
        delta_m({"a": {"mse": 1.0}}, {"a": {"mse": 0.0}}, {"a": ["mse"]})
