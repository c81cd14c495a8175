"""The CLI's line per epoch (``--quiet`` hides it) and the Trainer settings from the config."""

from __future__ import annotations

import json

import pytest

from mtlkit.cli.main import main

QUICK = ["train", "--dataset", "penguins", "--epochs", "2", "--no-progress"]


def test_one_line_per_epoch_on_stdout_and_none_with_quiet(tmp_path, capsys):
    assert main([*QUICK, "--out", str(tmp_path / "a")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split(" · ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val loss" in line and "(best" in line and "ETA" in line for line in lines)
    assert main([*QUICK, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert "epoch 1/2" not in capsys.readouterr().out


def _records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_accumulation_warmup_precision_and_step_scheduler_come_from_the_config(tmp_path):
    overrides = [
        "training.precision=bf16",
        "optim.warmup_steps=3",
        "optim.scheduler=linearlr",
        "optim.scheduler_options={start_factor: 1.0, end_factor: 0.5, total_iters: 1000}",
        "optim.scheduler_interval=step",
        "data.batch_size=32",
    ]
    steps = {}
    for accumulate in (1, 2):
        out = tmp_path / f"accumulate{accumulate}"
        args = [*QUICK, "--quiet", "--out", str(out), "--set", f"training.accumulate={accumulate}"]
        for item in overrides:
            args += ["--set", item]
        assert main(args) == 0
        records = _records(out)
        steps[accumulate] = records[0]["step"]
        assert records[1]["step"] == 2 * steps[accumulate]
        # the linear scheduler stepped once per optimizer step: lr = 1e-3 · (1 − 0.5·steps/1000)
        assert records[-1]["lr"] == pytest.approx(1e-3 * (1 - 0.5 * records[-1]["step"] / 1000))
    assert steps[2] == -(-steps[1] // 2)  # ⌈batches / 2⌉ optimizer steps per epoch


def test_the_cli_log_writes_to_the_stdout_of_the_moment(monkeypatch):
    import io
    import logging

    from mtlkit.cli.main import configure_logging

    configure_logging(quiet=False, verbose=False)
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", first)
    logging.getLogger("mtlkit.test").info("one")
    first.close()  # as pytest closes a test's captured stdout
    monkeypatch.setattr("sys.stdout", second)
    logging.getLogger("mtlkit.test").info("two")  # was: "--- Logging error ---", I/O on closed file
    assert second.getvalue() == "two\n"
