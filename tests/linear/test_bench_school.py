"""benchmarks/linear/bench_school.py: method lists, on a small school-shaped data file."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "linear"))

import bench_school  # noqa: E402


def _school_like(path: Path, n_tasks: int = 3, rows: int = 16, seed: int = 0) -> Path:
    """A ``.mat`` file laid out as school.mat: cells ``X`` (rows × 28, last column ones), ``Y``."""
    rng = np.random.default_rng(seed)
    Xs, ys = np.empty((1, n_tasks), dtype=object), np.empty((1, n_tasks), dtype=object)
    w = rng.normal(size=27)
    for t in range(n_tasks):
        X = np.hstack([rng.normal(size=(rows, 27)), np.ones((rows, 1))])
        Xs[0, t], ys[0, t] = X, (X[:, :27] @ w + rng.normal(size=rows))[:, None]
    savemat(path, {"X": Xs, "Y": ys})
    return path


@pytest.mark.slow
def test_defaults_with_the_default_method_list_runs_every_method(tmp_path, capsys):
    data = _school_like(tmp_path / "school.mat")
    args = ["--defaults", "--data", str(data), "--seeds", "1", "--fractions", "0.5"]
    assert bench_school.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 50%")]
    assert [row.split(" | ")[1] for row in rows] == bench_school.method_names(defaults=True)


def test_default_method_lists_name_valid_methods():
    names = bench_school.method_names(defaults=True)
    assert names == ["single-task ridge", "pooled ridge", "l1", "l21", "trace", "mean", "clustered"]
    bench_school.check_methods(names, defaults=True)
    bench_school.check_methods(bench_school.method_names(defaults=False), defaults=False)


def test_an_unknown_method_is_an_error_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_school.main(["--defaults", "--methods", "l2,trace + shared"])
    assert "unknown --defaults method 'trace + shared'" in capsys.readouterr().err
