"""Benchmark scripts refuse a count of seeds, runs, rounds or repeats below 1, and
``mmoe/training_loss.py`` a number of steps, a window, a batch size or a bottom width below 1.

``--seeds 0`` printed rows of NaN (a mean over no seed) and exited 0; ``training_loss.py
--bottom-width 0`` trained the default 113-unit bottom and exited 0. Each script's ``main``
parses its arguments first, so a refused value exits (code 2, argparse's usage error naming the
option) before anything is computed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

COUNT_OPTIONS = [
    ("linear/bench_classification.py", "--seeds"),
    ("linear/bench_school.py", "--seeds"),
    ("helps/where_mtl_helps.py", "--seeds"),
    ("analysis/planted.py", "--seeds"),
    ("mmoe/correlation.py", "--seeds"),
    ("mmoe/training_loss.py", "--runs"),
    ("mmoe/training_loss.py", "--steps"),
    ("mmoe/training_loss.py", "--window"),
    ("mmoe/training_loss.py", "--batch-size"),
    ("mmoe/training_loss.py", "--bottom-width"),
    ("weighting/jacobian_methods.py", "--rounds"),
    ("weighting/step_time.py", "--rounds"),
    ("training/step_overhead.py", "--rounds"),
    ("cli/help_time.py", "--repeats"),
    ("distributed/throughput.py", "--repeats"),
    ("analysis/overhead.py", "--repeats"),
]


def _script(relative: str, monkeypatch: pytest.MonkeyPatch):
    path = BENCHMARKS / relative
    monkeypatch.syspath_prepend(str(path.parent))  # a script may import its neighbours
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value", ["0", "-2"])
@pytest.mark.parametrize(
    ("script", "option"), COUNT_OPTIONS, ids=[" ".join(o) for o in COUNT_OPTIONS]
)
def test_a_count_below_one_is_a_usage_error_naming_the_option(
    script, option, value, monkeypatch, capsys
):
    module = _script(script, monkeypatch)
    monkeypatch.setattr(sys, "argv", [script, f"{option}={value}"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and f"expected an integer >= 1, got {value}" in err
