"""``benchmarks/timing.py``'s interleaved timer, and the scripts that time with it."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from timing import per_round_ratios, time_rounds  # noqa: E402


def test_each_round_times_every_configuration_per_step_with_syncs_around_the_clock_reads():
    now = [0.0]
    calls: list[str] = []
    cost = {"a": 1.0, "b": 3.0}

    def step(label: str):
        def run() -> None:
            calls.append(label)
            now[0] += cost[label]

        return run

    syncs = []
    times = time_rounds(
        {label: step(label) for label in cost},
        3,
        warmup=2,
        steps_per_round=4,
        clock=lambda: now[0],
        sync=lambda: syncs.append(now[0]),
    )
    assert times == {"a": [1.0] * 3, "b": [3.0] * 3}
    assert calls[:4] == ["a", "a", "b", "b"]  # the warm-up, before any timed round
    assert len(calls) == 4 + 3 * 2 * 4 and len(syncs) == 3 * 2 * 2
    assert per_round_ratios(times["b"], times["a"]) == [3.0] * 3


def test_jacobian_methods_times_every_row_against_the_loop(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "weighting"))
    import jacobian_methods

    argv = ["jacobian_methods.py", "--tasks", "2", "--batch", "4", "--warmup", "0"]
    monkeypatch.setattr(sys, "argv", [*argv, "--rounds", "1", "--threads", "1"])
    jacobian_methods.main()
    rows = {line[:36].strip(): line[36:].split() for line in capsys.readouterr().out.splitlines()}
    assert rows["loop"][1] == "1.00"  # the loop against itself, in the same round
    assert {"forward", "batched", "layerwise"} <= rows.keys()
