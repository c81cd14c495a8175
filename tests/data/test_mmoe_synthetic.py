"""Ma et al.'s (KDD 2018) synthetic pair of tasks: the generator, and the figure's ordering."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from mtlkit.config import load_config
from mtlkit.data import load_dataset
from mtlkit.data.builtin.mmoe_synthetic import mmoe_label, sine_parameters
from mtlkit.runs import load_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "mmoe"))

from correlation import (  # noqa: E402
    budget_epochs,
    mmoe_config,
    paper_bottom_width,
    seed_wins,
    train_curve,
)


def _raw(bundle, split: str = "train") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inputs and targets of a split in the generator's own units (standardization undone)."""
    data = getattr(bundle, split)
    labels = {}
    for task in bundle.task_names:
        mean, std = bundle.target_scaling[task]
        labels[task] = data.targets[task].numpy().astype(float) * std + mean
    return data.inputs.numpy().astype(float), labels


@pytest.mark.parametrize("correlation", [1.0, 0.9, 0.5, 0.1, 0.0, -0.7])
def test_linear_labels_give_weights_of_the_set_cosine_and_scale(correlation):
    bundle = load_dataset(
        "mmoe_synthetic",
        correlation=correlation,
        n_samples=400,
        n_features=12,
        scale=2.5,
        num_sines=0,
        noise=0.0,
        seed=3,
    )
    x, y = _raw(bundle)
    w1, w2 = (np.linalg.lstsq(x, y[t], rcond=None)[0] for t in ("y1", "y2"))
    assert np.linalg.norm(w1) == pytest.approx(2.5, abs=1e-4)
    assert np.linalg.norm(w2) == pytest.approx(2.5, abs=1e-4)
    assert w1 @ w2 / (2.5 * 2.5) == pytest.approx(correlation, abs=1e-5)


def test_label_adds_the_sines_of_the_score():
    alpha, beta = np.array([1.0, 2.0]), np.array([0.0, math.pi / 2])
    score = np.array([0.0, math.pi / 2])
    # s + sin(s) + sin(2s + π/2): 0 + 0 + 1 and π/2 + 1 + sin(3π/2) = π/2
    np.testing.assert_allclose(mmoe_label(score, alpha, beta), [1.0, math.pi / 2], atol=1e-12)


def test_identical_tasks_at_correlation_one_without_noise():
    bundle = load_dataset("mmoe_synthetic", correlation=1.0, n_samples=200, noise=0.0)
    for split in (bundle.train, bundle.val, bundle.test):
        np.testing.assert_allclose(split.targets["y1"].numpy(), split.targets["y2"].numpy())


def test_label_correlation_falls_with_the_set_correlation():
    pearson = []
    for correlation in (1.0, 0.9, 0.5, 0.1):
        _, y = _raw(load_dataset("mmoe_synthetic", correlation=correlation, n_samples=5000))
        pearson.append(np.corrcoef(y["y1"], y["y2"])[0, 1])
    assert pearson == sorted(pearson, reverse=True)
    assert pearson[0] > 0.98 and abs(pearson[-1]) < 0.3


def test_reference_sines_are_googles_alpha_j_beta_j_minus_one_squared():
    alpha, beta = sine_parameters(10)
    np.testing.assert_array_equal(alpha, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(beta, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81])


def test_default_labels_use_the_reference_sines():
    def labels(**options):
        return load_dataset("mmoe_synthetic", n_samples=100, **options).train.targets["y1"].numpy()

    np.testing.assert_array_equal(labels(), labels(sines="reference"))
    assert not np.allclose(labels(), labels(sines="gaussian"))


def test_gaussian_sines_are_fixed_and_seeds_change_the_data():
    np.testing.assert_array_equal(
        sine_parameters(10, "gaussian")[0], sine_parameters(10, "gaussian")[0]
    )
    assert not np.allclose(sine_parameters(10, "gaussian")[0], sine_parameters(10)[0])
    a = load_dataset("mmoe_synthetic", n_samples=50, seed=0).train.inputs
    b = load_dataset("mmoe_synthetic", n_samples=50, seed=1).train.inputs
    assert not np.allclose(a.numpy(), b.numpy())


def test_yaml_config_selects_the_dataset_and_its_correlation(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "data: {dataset: mmoe_synthetic, options: {correlation: 0.5, n_samples: 100}}\n"
    )
    bundle = load_bundle(load_config(path))
    assert bundle.task_names == ["y1", "y2"] and bundle.input_shape == (100,)
    assert "correlation 0.5" in bundle.description


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"correlation": 1.5}, "correlation must be in \\[-1, 1\\]"),
        ({"n_features": 1}, "n_features must be >= 2"),
        ({"noise": -1.0}, "noise >= 0"),
        ({"sines": "normal"}, "sines must be one of reference, gaussian, got 'normal'"),
        ({"corelation": 0.5}, "has no option 'corelation'"),
    ],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("mmoe_synthetic", **options)


def test_shared_bottom_width_matches_the_papers_parameter_count():
    # Ma et al. §4.3: 100·16·8 + 16·8·2 + 8·2 = 13,056 weights; 13,056 / (100 + 8·2) → 113.
    assert paper_bottom_width(100, 16, 8, 8, 2) == 113
    for d, e, n in [(100, 16, 8), (10, 4, 3), (50, 16, 2)]:
        moe = d * e * n + 2 * (e * 8 + 8)
        h = paper_bottom_width(d, e, n, 8, 2)
        assert h * d + 2 * (h * 8 + 8) >= moe > (h - 1) * d + 2 * ((h - 1) * 8 + 8)


def test_budgets_are_a_quarter_half_and_all_of_the_epochs():
    assert budget_epochs(12) == [3, 6, 12]
    assert budget_epochs(2) == [1, 2]


def test_seed_wins_counts_seeds_where_one_test_mse_is_below_another():
    mse = {("hps", 0): 2.0, ("omoe", 0): 1.0, ("mmoe", 0): 3.0, ("hps", 1): 2.0}
    mse |= {("omoe", 1): 3.0, ("mmoe", 1): 1.0}
    runs = [{"arch": a, "correlation": 0.5, "seed": s, "test_mse": v} for (a, s), v in mse.items()]
    assert seed_wins(runs) == (
        "- correlation 0.5: test MSE mmoe < hps on 1/2, mmoe < omoe on 1/2, omoe < hps on 1/2"
    )


def _mean_area(arch: str, correlation: float, seeds: range, **sizes) -> float:
    """Seed-averaged mean validation MSE over the epochs (the paper's loss-curve average)."""
    return statistics.mean(
        train_curve(mmoe_config(arch, correlation, s, **sizes)).area for s in seeds
    )


def _assert_documented_ordering(seeds: range, **sizes) -> None:
    """docs/results.md: the shared bottom's loss curve is below MMoE's at correlation 1.0 and at
    0.1, and does not rise as the correlation falls (Ma et al.'s ordering does not appear)."""
    hps = {p: _mean_area("hps", p, seeds, **sizes) for p in (1.0, 0.1)}
    mmoe = {p: _mean_area("mmoe", p, seeds, **sizes) for p in (1.0, 0.1)}
    assert hps[1.0] < mmoe[1.0] and hps[0.1] < mmoe[0.1]
    assert hps[0.1] < 1.05 * hps[1.0]


def test_small_figure_keeps_its_documented_ordering():
    _assert_documented_ordering(range(2), n_samples=2000, epochs=4)


@pytest.mark.slow
def test_figure_keeps_its_documented_ordering():
    _assert_documented_ordering(range(3), n_samples=10000, epochs=12)
