"""Real signals to a real ``mtlkit train`` process: one line, exit 128+N, a resumable run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src"
TRAIN = ["-m", "mtlkit", "train", "--dataset", "penguins", "--no-progress", "--batch-size", "64"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _interrupt_after_first_epoch(out: Path, signum: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        [sys.executable, *TRAIN, "--epochs", "100000", "--out", str(out)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = out / "checkpoint.pt"  # renamed into place whole
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.is_file():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no epoch finished"
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _assert_resumable(out: Path, result: subprocess.CompletedProcess, signum: int) -> int:
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("mtlkit train: interrupted at epoch ")
    assert lines[0].endswith(f"; resume with mtlkit train --resume {out}")
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=False)  # whole
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records][: state["epoch"]] == list(range(1, state["epoch"] + 1))
    return state["epoch"]


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path):
    out = tmp_path / "run"
    result = _interrupt_after_first_epoch(out, signal.SIGINT)
    _assert_resumable(out, result, signal.SIGINT)


@pytest.mark.slow
def test_sigterm_ends_with_exit_143_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    result = _interrupt_after_first_epoch(out, signal.SIGTERM)
    done = _assert_resumable(out, result, signal.SIGTERM)
    resumed = subprocess.run(
        [sys.executable, "-m", "mtlkit", "train", "--resume", str(out), "--epochs", str(done + 1)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, done + 2))
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == done + 1
