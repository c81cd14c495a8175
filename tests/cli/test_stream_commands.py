"""``--stream`` with the commands besides ``train``: ``group`` measures affinity on a stream,
``tune`` refuses cross-validation folds (they need the table in memory)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mtlkit.cli.main import main


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A small CSV with two binary tasks, one labelled on half of the rows."""
    folder = tmp_path_factory.mktemp("stream")
    rows = 240
    x = pd.Series(range(rows), dtype=float) / rows
    frame = pd.DataFrame(
        {
            "x": x,
            "shop": [f"s{i % 13}" for i in range(rows)],
            "a": (x > 0.5).astype(int),
            "b": [(i // 3) % 2 if i % 2 else None for i in range(rows)],
        }
    )
    frame.to_csv(folder / "t.csv", index=False)
    return folder / "t.csv"


FLAGS = ["--stream", "--task", "a:binary:a", "--task", "b:binary:b", "--no-progress"]


def test_group_measures_affinity_on_a_stream(table, tmp_path, capsys):
    out = tmp_path / "group"
    flags = ["--data", str(table), *FLAGS, "--epochs", "1", "--batch-size", "32"]
    assert main(["group", *flags, "--out", str(out)]) == 0
    groups = json.loads((out / "groups.json").read_text())
    assert groups["dataset"] and "a ~ b" in capsys.readouterr().out


def test_tune_refuses_cross_validation_folds_on_a_stream(table, tmp_path, capsys):
    flags = ["--data", str(table), *FLAGS, "--set", "tune.cv_folds=2", "--out", str(tmp_path)]
    assert main(["tune", *flags]) == 2
    assert "tune.cv_folds: cross-validation folds need the table in memory" in (
        capsys.readouterr().err
    )
