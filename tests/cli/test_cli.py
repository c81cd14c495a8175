import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from mtlkit.cli.main import main

FAST = ["--no-progress", "--epochs", "2", "--batch-size", "32"]


def test_train_from_flags_writes_a_complete_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--dataset", "penguins", "--arch", "hps", "--out", str(out), *FAST, "--baselines"]
    )
    assert code == 0
    for name in (
        "config.yaml",
        "tasks.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "model.pt",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["epoch"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"species", "sex", "body_mass"}
    assert "delta_m" in summary and (out / "stl" / "summary.json").is_file()
    printed = capsys.readouterr().out
    assert "Δm" in printed and "labelled train" in printed and "classes female=" in printed


def test_train_from_yaml_with_flag_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"dataset": "digits", "batch_size": 64},
                "model": {"arch": "stl", "encoder_options": {"hidden": [16]}},
                "training": {"epochs": 5, "progress": False},
                "tasks": {"parity": {"weight": 0.5}},
            }
        )
    )
    out = tmp_path / "r"
    assert main(["train", "--config", str(config), "--epochs", "1", "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["training"]["epochs"] == 1 and saved["model"]["arch"] == "stl"
    assert json.loads((out / "tasks.json").read_text())["tasks"][1]["weight"] == 0.5


def test_existing_run_dir_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--dataset", "penguins", "--out", str(out), *FAST]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_evaluate_and_predict(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "penguins", "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    assert "species accuracy" in capsys.readouterr().out

    rows = pd.DataFrame(
        {
            "id": [10, 11, 12],
            "bill_length_mm": [39.1, 46.5, None],
            "bill_depth_mm": [18.7, 17.9, 15.0],
            "flipper_length_mm": [181, 192, 220],
            "island": ["Torgersen", "Dream", "Biscoe"],
        }
    )
    rows.to_csv(tmp_path / "in.csv", index=False)
    pred = tmp_path / "pred.csv"
    assert (
        main(
            [
                "predict",
                str(out),
                "--input",
                str(tmp_path / "in.csv"),
                "--output",
                str(pred),
                "--id-column",
                "id",
                "--all-probabilities",
            ]
        )
        == 0
    )
    table = pd.read_csv(pred)
    assert table["id"].tolist() == [10, 11, 12]
    assert set(table["species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert set(table["sex"]) <= {"female", "male"}
    assert table["body_mass"].between(1000, 10000).all()
    probs = table[[c for c in table.columns if c.startswith("species_probability=")]]
    assert probs.shape[1] == 3 and (probs.sum(axis=1) - 1).abs().max() < 1e-5
    assert (table["species_probability"] >= 1 / 3 - 1e-6).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "pengiuns"], "did you mean 'penguins'"),
        (["--arch", "hsp"], "did you mean 'hps'"),
        (["--weighting", "ee"], "unknown strategy 'ee'"),
        (["--set", "optim.lr=abc"], "optim.lr: expected a number"),
        (["--set", "nonsense"], "expected KEY=VALUE"),
        (["--set", "training.monitor=species:mse"], "training.monitor"),
        (["--set", "tasks.nope.weight=1"], "tasks.nope: unknown task"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    code = main(["train", "--out", str(tmp_path / "x"), *FAST, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_demo_quick_prints_tables_and_writes_plots(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mtlkit", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.count("Δm % vs stl") == 2
    for dataset in ("digits-50", "multimnist-1k"):
        assert (tmp_path / "demo" / dataset / "curves.png").stat().st_size > 1000
        assert (tmp_path / "demo" / dataset / "hps" / "summary.json").is_file()
