"""``mtlkit compare`` shows its progress: a line per run (i/N, method, seed) and one when it is
done (time, ETA); ``--quiet`` hides them, ``--verbose`` adds each run's line per epoch."""

from __future__ import annotations

import re

import pytest

from mtlkit.cli.main import main

COMPARE = ["compare", "--dataset", "penguins", "--epochs", "2", "--archs", "hps"]
COMPARE += ["--weightings", "ew", "--seeds", "0,1", "--no-progress"]


def _run(tmp_path, capsys, *flags: str) -> list[str]:
    assert main([*COMPARE, *flags, "--out", str(tmp_path)]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_line_before_and_after_each_run_with_time_and_eta(tmp_path, capsys):
    lines = _run(tmp_path / "default", capsys)
    starts = [line for line in lines if re.fullmatch(r"run \d/4: .+, seed \d", line)]
    assert starts == ["run 1/4: stl, seed 0", "run 2/4: hps + ew, seed 0"] + [
        "run 3/4: stl, seed 1",
        "run 4/4: hps + ew, seed 1",
    ]
    done = [re.fullmatch(r"run (\d)/4 done in [\d.]+ s; ETA (\d+) s", line) for line in lines]
    done = [m for m in done if m]
    assert [int(m[1]) for m in done] == [1, 2, 3, 4]
    assert done[-1][2] == "0"  # nothing left after the last run
    assert not any(line.startswith("epoch ") for line in lines)
    assert any("Δm %" in line for line in lines)  # the table


def test_quiet_hides_the_progress_and_verbose_adds_the_epoch_lines(tmp_path, capsys):
    quiet = _run(tmp_path / "quiet", capsys, "--quiet")
    assert not any(line.startswith(("run ", "epoch ")) for line in quiet)
    assert any("Δm %" in line for line in quiet)
    verbose = _run(tmp_path / "verbose", capsys, "--verbose", "--seeds", "0")
    epochs = [line.split(" · ")[0] for line in verbose if line.startswith("epoch ")]
    assert epochs == ["epoch 1/2", "epoch 2/2"] * 2  # two runs (stl, hps + ew) of two epochs
    assert "run 2/2: hps + ew, seed 0" in verbose


def test_undefined_values_are_left_out_of_the_seed_mean():
    import math

    from mtlkit.analysis.report import mean_std, signed

    nan = math.nan
    assert mean_std([nan, nan]) == "-"
    assert mean_std([0.5, nan, 0.7]) == "0.6000 ± 0.1414 (2/3 seeds)"
    assert mean_std([0.5]) == "0.5000"
    assert signed(nan) == "-" and signed(None) == "-" and signed(1.234) == "+1.23"


def test_a_zero_single_task_metric_is_left_out_of_delta_m_with_a_note(
    tmp_path, capsys, monkeypatch
):
    """A single-task metric of exactly 0 has no relative change: compare still finishes, the task
    is left out of Δm, the Δm cell is marked and a note under the table names the task and why."""
    import json
    from types import SimpleNamespace

    import mtlkit.runs

    def fake_train_run(config, bundle):
        stl = config.model.arch == "stl"
        test = {
            "species": dict.fromkeys(
                ("accuracy", "f1", "precision", "recall"), 0.5 if stl else 0.6
            ),
            "sex": dict.fromkeys(("accuracy", "f1", "precision", "recall"), 0.0 if stl else 0.6),
            "body_mass": {"mse": 2.0 if stl else 1.0, "mae": 2.0 if stl else 1.0},
        }
        test["body_mass"]["r2"] = 0.5 if stl else 0.6
        model = SimpleNamespace(num_parameters=lambda: 10)
        return SimpleNamespace(test=test, model=model, seconds_per_epoch=0.1)

    monkeypatch.setattr(mtlkit.runs, "train_run", fake_train_run)
    args = ["compare", "--dataset", "penguins", "--archs", "hps", "--seeds", "0,1", "--quiet"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # species +20 %, sex left out, body_mass (50 + 50 + 20) / 3 = 40 %: Δm = 30 %
    hps = next(line for line in out.splitlines() if line.startswith("hps + ew"))
    assert "30.0000 ± 0.0000 *" in hps
    why = "single-task value is 0, so the relative change is undefined"
    assert f"* Δm leaves out sex accuracy: {why} (seeds 0, 1)" in out
    assert f"sex recall: {why} (seeds 0, 1)" in out
    assert "* Δm leaves out sex: no metric left, so Δm is the mean over the other tasks" in out
    assert out.strip().endswith((tmp_path / "table.txt").read_text().strip().splitlines()[-1])
    record = json.loads((tmp_path / "results.json").read_text())["hps+ew"][0]
    assert record["delta_m"] == 30.0 and record["delta_m_tasks"]["sex"] is None
    assert record["delta_m_left_out"]["sex f1"] == why


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (",", "--seeds: expected at least one seed, got ','"),
        ("0,1,0", "--seeds: 0 is given twice"),
        ("0,x", "--seeds: expected comma-separated integers, got '0,x'"),
    ],
)
def test_seeds_without_a_seed_or_with_a_repeated_one_are_refused(tmp_path, capsys, seeds, message):
    """No seed crashed (IndexError) after loading the data; a repeated seed trains the same run
    twice and its std over seeds understates the spread."""
    args = ["compare", "--dataset", "penguins", "--seeds", seeds, "--out", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"mtlkit compare: error: {message}"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--archs", "", "--archs: expected at least one architecture, got ''"),
        ("--archs", "hps,mmoe,hps", "--archs: 'hps' is given twice"),
        ("--weightings", " , ", "--weightings: expected at least one strategy, got ' , '"),
        ("--weightings", "ew,uw,ew", "--weightings: 'ew' is given twice"),
    ],
)
def test_empty_or_repeated_methods_are_refused(tmp_path, capsys, flag, value, message):
    """An empty list ran only the single-task baseline with exit 0; a repeated method trained
    every seed twice into one row, whose std over seeds then counted each seed twice."""
    args = ["compare", "--dataset", "penguins", flag, value, "--out", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"mtlkit compare: error: {message}"
    assert not any(tmp_path.iterdir())
