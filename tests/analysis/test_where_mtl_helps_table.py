"""benchmarks/helps/where_mtl_helps.py: the table of seeds' mean ± std, undefined values left out
(as ``mtlkit compare`` does, with :func:`mtlkit.analysis.report.mean_std`)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from mtlkit.analysis.report import mean_std

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "helps" / "where_mtl_helps.py"


def _script(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("where_mtl_helps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _record(seed: int, digit: tuple[float, float], delta: float) -> dict:
    """One seed of a case: each model's test accuracy of ``digit``, and Δm."""
    test = {arch: {"digit": {"accuracy": value}} for arch, value in zip(("stl", "hps"), digit)}
    return {"seed": seed, "test": test, "main": {"digit": "accuracy"}, "delta_m": delta}


def test_mean_std_rounds_to_the_digits_asked():
    assert mean_std([1.0, 2.0], digits=2) == "1.50 ± 0.71"
    assert mean_std([1.0, math.nan], digits=1) == "1.0 (1/2 seeds)"
    assert mean_std([0.5, 0.7]) == "0.6000 ± 0.1414"  # 4 by default


def test_undefined_seeds_are_left_out_of_the_table_and_counted(tmp_path, monkeypatch, capsys):
    script = _script(monkeypatch)
    records = [
        _record(0, (0.80, 0.90), 1.0),
        _record(1, (math.nan, 0.70), math.nan),  # e.g. a metric undefined for STL on this seed
        _record(2, (0.60, 0.50), 2.0),
    ]
    monkeypatch.setattr(script, "compare_case", lambda case, seed: records[seed])
    out = tmp_path / "helps"
    monkeypatch.setattr(sys, "argv", ["x", "--cases", "digits-50", "--out", str(out)])
    script.main()
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[2] == (
        f"| digits-50: {script.CASES['digits-50'][0]} | digit (accuracy) "
        "| 0.7000 ± 0.1414 (2/3 seeds) | 0.7000 ± 0.2000 | 1.50 ± 0.71 (2/3 seeds) | 2/3 |"
    )
    assert "digits-50: Δm 1.50 ± 0.71 (2/3 seeds) %, hps wins 2/3" in capsys.readouterr().out
