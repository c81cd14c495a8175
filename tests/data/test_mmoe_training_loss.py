"""benchmarks/mmoe/training_loss.py: the stream of Ma et al.'s task pairs and the stacked runs."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlkit.data import load_dataset
from mtlkit.data.builtin.mmoe_synthetic import mmoe_label, sine_parameters

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "mmoe"))

from correlation import ARCHS  # noqa: E402
from training_loss import (  # noqa: E402
    StackedRuns,
    Stream,
    report_steps,
    train_arch,
    training_curves,
)


def _batch(stream: Stream, batch_size: int, seed: int = 0):
    return next(stream.batches(batch_size, steps=1, seed=seed))


@pytest.mark.parametrize("correlation", [1.0, 0.5, 0.1])
def test_stream_labels_have_the_set_cosine_and_scale(correlation):
    stream = Stream.draw(correlation, [3, 4], n_features=12, scale=2.5, num_sines=0, noise=0.0)
    x, y = _batch(stream, 200)
    for run in range(2):
        w = np.linalg.lstsq(x[run].numpy(), y[run].numpy(), rcond=None)[0]  # (d, 2)
        assert np.linalg.norm(w, axis=0) == pytest.approx([2.5, 2.5], abs=1e-4)
        assert w[:, 0] @ w[:, 1] / 2.5**2 == pytest.approx(correlation, abs=1e-4)


def test_stream_run_has_the_task_pair_of_the_dataset_with_its_seed():
    options = {"correlation": 0.5, "n_features": 8, "num_sines": 0, "noise": 0.0}
    bundle = load_dataset("mmoe_synthetic", n_samples=100, seed=7, **options)
    x = bundle.train.inputs.numpy().astype(float)
    scaling = bundle.target_scaling
    raw = {t: bundle.train.targets[t].numpy() * s + m for t, (m, s) in scaling.items()}
    dataset_w = np.stack([np.linalg.lstsq(x, raw[t], rcond=None)[0] for t in ("y1", "y2")], 1)
    stream = Stream.draw(0.5, [7], n_features=8, num_sines=0, noise=0.0)
    np.testing.assert_allclose(stream.directions[0].numpy(), dataset_w, atol=1e-4)


def test_stream_adds_the_sines_and_fresh_noise():
    stream = Stream.draw(0.9, [0], n_features=6, num_sines=3, noise=0.0)
    x, y = _batch(stream, 50)
    score = (x[0] @ stream.directions[0]).numpy()
    alpha, beta = sine_parameters(3, "reference")
    np.testing.assert_allclose(y[0].numpy(), mmoe_label(score, alpha, beta), atol=1e-4)
    first, second = stream.batches(50, steps=2, seed=0)
    assert not torch.equal(first[0], second[0])  # a new batch every step


@pytest.mark.parametrize("arch", ["hps", "omoe", "mmoe"])
def test_stacked_runs_train_exactly_as_separate_runs(arch):
    seeds = [0, 1]
    stream = Stream.draw(0.5, seeds, num_sines=2)
    batches = list(stream.batches(8, steps=6, seed=0))
    together = training_curves(StackedRuns.build(arch, seeds), batches, lr=1e-2, window=1)
    for r, seed in enumerate(seeds):
        own = [(x[r : r + 1], y[r : r + 1]) for x, y in batches]
        alone = training_curves(StackedRuns.build(arch, [seed]), own, lr=1e-2, window=1)
        torch.testing.assert_close(together[r], alone[0], atol=1e-5, rtol=1e-4)
    assert together.shape == (2, 6)
    repeated = training_curves(StackedRuns.build(arch, seeds), batches[:1] * 6, 1e-2, 1)
    assert (repeated[:, -1] < repeated[:, 0]).all()  # Adam steps fit a batch seen again


def test_correlations_stack_as_runs_that_share_inputs_noise_and_directions_per_seed():
    seeds = [3, 4]
    stream = Stream.draw([1.0, 0.5, 0.1], seeds, n_features=10, num_sines=2)
    x, y = _batch(stream, 16)
    assert x.shape == (6, 16, 10) and y.shape == (6, 16, 2)
    for c, p in enumerate([1.0, 0.5, 0.1]):
        alone = Stream.draw(p, seeds, n_features=10, num_sines=2)
        torch.testing.assert_close(stream.directions[2 * c : 2 * c + 2], alone.directions)
        torch.testing.assert_close(x[2 * c : 2 * c + 2], x[:2])  # paired inputs
    # at correlation 1.0 both tasks have one direction, so the noiseless labels agree
    w = stream.directions[0]
    torch.testing.assert_close(w[:, 0], w[:, 1])
    assert (y[0, :, 0] - y[0, :, 1]).abs().max() < 1.0  # only the noise (std 0.1) differs


def test_curves_average_windows_and_drop_a_partial_one():
    stream = Stream.draw(1.0, [0], num_sines=0)
    batches = list(stream.batches(4, steps=7, seed=0))
    per_step = training_curves(StackedRuns.build("hps", [0]), batches, lr=1e-3, window=1)
    windows = training_curves(StackedRuns.build("hps", [0]), batches, lr=1e-3, window=3)
    expected = per_step[0, :6].reshape(2, 3).mean(dim=1)
    torch.testing.assert_close(windows[0], expected)


def test_reported_windows_end_at_a_quarter_half_and_all_of_the_steps():
    assert report_steps(30, 100) == [6, 14, 29]
    assert report_steps(2, 100) == [0, 1]


def _late_loss(runs: int, steps: int) -> dict[tuple[str, float], np.ndarray]:
    """Each run's mean training loss over the last fifth of ``steps``, per model at correlations
    1.0 and 0.1 (docs/results.md's protocol: lr 1e-2, batch 128, paired data and initialisation),
    the three models trained in two processes."""
    options = {"seeds": list(range(runs)), "steps": steps, "batch_size": 128, "window": 100}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {a: pool.submit(train_arch, a, (1.0, 0.1), 1e-2, **options) for a in ARCHS}
        curves = {(a, p): c for a in ARCHS for p, c in futures[a].result().items()}
    return {cell: curve[:, -curve.shape[1] // 5 :].mean(axis=1) for cell, curve in curves.items()}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 8.4 min on this 2-core machine at load 2-3, 14 at load 4.5
def test_mmoe_is_robust_to_task_correlation_and_lowest_at_both_ends():
    """docs/results.md, 200 runs of 20,000 steps: MMoE's loss barely rises from correlation 1.0
    to 0.1, OMoE's rises most, and MMoE is below the shared bottom at 1.0 and below both other
    models at 0.1. Here 16 runs (seeds 0-15) of 10,000 steps on the CPU; each assertion held in
    each of the 12 disjoint blocks of 16 of the 200 documented runs cut at 10,000 steps
    (``benchmarks/results/mmoe_training_loss_gpu_lr1e-2.json``); the mean margin over the blocks
    is 2.1 (OMoE's rise against the shared bottom's) to 5.5 of its standard deviations. The
    paper's shared-bottom degradation (a rise above OMoE's) does not appear; the last assertion
    is the opposite, as measured."""
    loss = {cell: values.mean() for cell, values in _late_loss(runs=16, steps=10_000).items()}
    rise = {a: loss[a, 0.1] - loss[a, 1.0] for a in ARCHS}
    assert loss["mmoe", 1.0] < loss["hps", 1.0]
    assert loss["mmoe", 0.1] < loss["hps", 0.1]
    assert loss["mmoe", 0.1] < loss["omoe", 0.1]
    assert rise["omoe"] > rise["mmoe"]
    assert rise["omoe"] > rise["hps"]
