"""Interleaved timing for the benchmarks: every configuration once per round, in a freshly
shuffled order, so that a change of machine load (or a step that warms the caches for the
next) affects no configuration systematically; ratios are taken within a round."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def time_rounds(
    steps: dict[str, Callable[[], None]],
    rounds: int,
    *,
    warmup: int = 0,
    steps_per_round: int = 1,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """Seconds per step, one entry per round: after ``warmup`` steps of each configuration,
    each round runs every configuration's ``steps_per_round`` steps between two clock reads,
    ``sync()`` (e.g. ``torch.cuda.synchronize``) before each read."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    order = random.Random(seed)
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(rounds):
        labels = list(steps)
        order.shuffle(labels)
        for label in labels:
            step = steps[label]
            sync()
            start = clock()
            for _ in range(steps_per_round):
                step()
            sync()
            times[label].append((clock() - start) / steps_per_round)
    return times


def per_round_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """``numerator[r] / denominator[r]`` for every round ``r`` (both timed in the same round)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]
