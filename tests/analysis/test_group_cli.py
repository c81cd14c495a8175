import argparse
import json

import numpy as np
import pandas as pd
import pytest

from mtlkit.cli.group import add_group_parser, group
from mtlkit.config import ConfigError

FAST = ["--no-progress", "--device", "cpu", "--epochs", "1", "--batch-size", "64"]
SYNTH = [
    "--dataset",
    "synthetic",
    "--set",
    "data.options={num_tasks: 4, clusters: [0, 0, 1, 1], n_samples: 400}",
]


def run(argv):
    parser = argparse.ArgumentParser(prog="mtlkit")
    add_group_parser(parser.add_subparsers(dest="command", required=True))
    return group(parser.parse_args(["group", *argv]))


def test_group_writes_groups_json_and_plots_and_trains_groups(tmp_path, capsys):
    out = tmp_path / "g"
    code = run([*SYNTH, *FAST, "--groups", "2", "--out", str(out), "--train-groups"])
    assert code == 0
    result = json.loads((out / "groups.json").read_text())
    names = ["task0", "task1", "task2", "task3"]
    assert result["tasks"] == names and len(result["groups"]) <= 2
    assert sorted(n for g in result["groups"] for n in g) == names
    assert np.asarray(result["affinity"], dtype=float).shape == (4, 4)
    assert len(result["verdicts"]) == 6 and result["measurement"]["steps_recorded"] == 4
    assert result["measurement"]["overhead"] > 0
    assert {"stl", "all", "grouped"} == set(result["training"]["test"])
    assert set(result["training"]["delta_m"]) == {"stl", "all", "grouped"}
    for png in ("affinity.png", "cosine.png", "cosine_over_training.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "affinity Z(i→j)" in printed and "group 1:" in printed and "Δm" in printed
    assert "overhead" in printed and "verdict" in printed


def test_group_on_a_csv_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["y1"] = x[:, 0] + 0.1 * rng.normal(size=300)
    frame["y2"] = x[:, 0] - x[:, 1]
    frame["cls"] = (x[:, 2] > 0).astype(int)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "csv"
    tasks = ["--task", "y1:regression:y1", "--task", "y2:regression:y2", "--task", "cls:binary:cls"]
    assert run(["--data", str(path), *tasks, *FAST, "--groups", "2", "--out", str(out)]) == 0
    assert json.loads((out / "groups.json").read_text())["tasks"] == ["y1", "y2", "cls"]


def test_group_errors(tmp_path):
    with pytest.raises(ConfigError, match="stl"):
        run([*SYNTH, *FAST, "--arch", "stl", "--out", str(tmp_path / "a")])
    with pytest.raises(ConfigError, match="--groups"):
        run([*SYNTH, *FAST, "--groups", "5", "--out", str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="--every"):
        run([*SYNTH, *FAST, "--every", "0", "--out", str(tmp_path / "c")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    with pytest.raises(ConfigError, match="not a run directory"):
        run([*SYNTH, *FAST, "--out", str(tmp_path / "d")])


def test_main_wiring(tmp_path, capsys):
    from mtlkit.cli import main as cli

    assert cli.main(["group", *SYNTH, *FAST, "--groups", "9", "--out", str(tmp_path)]) == 2
    assert "mtlkit group: error: --groups" in capsys.readouterr().err
