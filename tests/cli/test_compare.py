"""``mtlkit compare`` shows its progress: a line per run (i/N, method, seed) and one when it is
done (time, ETA); ``--quiet`` hides them, ``--verbose`` adds each run's line per epoch."""

from __future__ import annotations

import re

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
