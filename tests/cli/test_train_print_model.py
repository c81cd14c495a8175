"""``mtlkit train --print-model`` describes the model that trains: the input layer of a table
with code columns (its tables and their sizes), then the architecture with its owners, with the
parameter counts of the trained model."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

import mtlkit
from mtlkit.cli.main import main
from mtlkit.models.architectures import describe

USERS = 20  # more values than data.onehot_max (10): an embedding code column
DIM = 6  # data.embedding_dim.user
TABLE = (USERS + 1) * DIM  # the kept values and row 0 ("other")


def _table(path, n: int = 300):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    pd.DataFrame(
        {
            "a": a,
            "b": b,
            "city": np.array(["x", "y", "z"])[np.arange(n) % 3],  # one-hot
            "user": [f"u{i % USERS}" for i in range(n)],
            "passed": np.where(a > 0, "yes", "no"),
            "score": 2 * a - b,
        }
    ).to_csv(path, index=False)
    return path


def _train_args(data, arch: str, out) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--task",
        "passed:binary:passed",
        "--task",
        "score:regression:score",
        "--arch",
        arch,
        "--epochs",
        "1",
        "--no-progress",
        "--set",
        f"data.embedding_dim.user={DIM}",
        "--out",
        str(out),
    ]


def _print_model(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main([*args, "--print-model"]) == 0
    return capsys.readouterr().out


def _total(text: str) -> int:
    return int(re.match(r"\w+: ([\d,]+) parameters", text).group(1).replace(",", ""))


def test_input_layer_and_the_architectures_owners_are_shown(tmp_path, capsys):
    text = _print_model(capsys, *_train_args(_table(tmp_path / "d.csv"), "mmoe", tmp_path / "r"))
    lines = text.splitlines()
    assert lines[0].startswith("WithInputLayer: ")
    assert f"  input_layer: TabularInput, {TABLE:,} parameters, shared by every task" in lines
    # a, b and the 3 one-hot columns of city; the codes of user
    assert "    5 dense features + 1 code column -> 11 features" in lines
    assert f"      user: {USERS + 1} rows × {DIM} = {TABLE}" in lines
    start = lines.index(next(line for line in lines if line.startswith("  model: MMoE: ")))
    inner = "\n".join(line[2:] for line in lines[start:]).removeprefix("model: ")
    # the architecture as it prints alone, with its owners and its own module names
    assert "own parameters per task: passed " in inner and "score " in inner
    assert re.search(r"^ +heads\.passed +Linear +65  passed$", inner, re.M)
    assert _total(text) == _total(inner) + TABLE
    assert not (tmp_path / "r").exists()


def test_each_task_encoders_tables_are_shown_when_tasks_share_nothing(tmp_path, capsys):
    text = _print_model(capsys, *_train_args(_table(tmp_path / "d.csv"), "stl", tmp_path / "r"))
    assert text.startswith("SingleTaskModels: ")
    summary = "input_layer: 5 dense features + 1 code column -> 11 features"
    for task in ("passed", "score"):
        assert f"  encoders.{task}.{summary}" in text.splitlines()
    assert text.count(f"    user: {USERS + 1} rows × {DIM} = {TABLE}") == 2


@pytest.mark.parametrize("arch", ["mmoe", "stl"])
def test_printed_counts_are_the_trained_models(tmp_path, capsys, arch):
    data = _table(tmp_path / "d.csv")
    text = _print_model(capsys, *_train_args(data, arch, tmp_path / "p"))
    assert main(_train_args(data, arch, tmp_path / "run")) == 0
    weights = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    model = mtlkit.load(tmp_path / "run").model
    params = dict(model.named_parameters())
    assert _total(text) == sum(weights[name].numel() for name in params)
    assert text.rstrip("\n") == describe(model)


def test_a_plain_dataset_prints_the_bare_architecture(tmp_path, capsys):
    args = ["train", "--dataset", "penguins", "--arch", "mmoe", "--out", str(tmp_path / "p")]
    text = _print_model(capsys, *args)
    assert text.startswith("MMoE: ") and "input_layer" not in text
    assert "own parameters per task: " in text
