"""``mtlkit train`` under torchrun: two loopback "nodes", a killed rank, a one-process resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from dist_helpers import describe, free_port, run_together, subprocess_env, torchrun_command

EPOCHS = 6
CONFIG = {
    "data": {
        "dataset": "synthetic",
        "batch_size": 32,
        "options": {"n_samples": 400, "num_tasks": 3},
    },
    "model": {"arch": "hps"},
    "weighting": {"name": "upgrad"},
    "training": {"epochs": EPOCHS, "progress": False},
    "optim": {"name": "sgd", "lr": 0.05},
    "device": "cpu",
    "seed": 0,
}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def two_node_run(tmp_path_factory, config_file):
    """Two torchrun launches, ``--nnodes=2``, node ranks 0 and 1, one process each, with the
    single-task baselines."""
    out = tmp_path_factory.mktemp("runs") / "two-nodes"
    port = free_port()
    commands = [
        torchrun_command(
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={node}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            "-m",
            "mtlkit",
            "train",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--baselines",
        )
        for node in (0, 1)
    ]
    results = run_together(commands, subprocess_env(MTLKIT_DIST_TIMEOUT="60"), timeout=240)
    assert [r.returncode for r in results] == [0, 0], describe(results)
    return out, results


def test_two_nodes_on_loopback_produce_one_run_directory(two_node_run):
    out, results = two_node_run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))  # written once, by rank 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == EPOCHS
    assert set(summary["test"]) == {"task0", "task1", "task2"}
    # --baselines: both ranks trained the single-task models, rank 0 added Δm to the summary
    assert set(summary["baseline_test"]) == set(summary["test"]) and "delta_m" in summary
    assert json.loads((out / "stl" / "summary.json").read_text())["epochs_run"] == EPOCHS
    assert (out / "model.pt").is_file() and (out / "checkpoint.pt").is_file()
    assert not list(out.glob(".*.tmp"))  # no leftovers of the atomic writes
    # only rank 0 prints the report
    assert "test metrics" in results[0].stdout and "test metrics" not in results[1].stdout


def _rank_process(rank: int, port: int, config_file, out) -> subprocess.Popen:
    env = subprocess_env(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        MTLKIT_DIST_TIMEOUT="60",
    )
    command = [sys.executable, "-m", "mtlkit", "train", "--config", str(config_file)]
    return subprocess.Popen(
        [*command, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_rank_gives_clear_error_and_one_process_resume_continues(
    tmp_path, config_file, two_node_run
):
    out = tmp_path / "killed"
    port = free_port()
    ranks = [_rank_process(rank, port, config_file, out) for rank in (0, 1)]
    log = out / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (log.is_file() and log.read_text().strip()):  # a checkpoint exists from here on
        assert time.monotonic() < deadline, "no epoch finished"
        assert all(p.poll() is None for p in ranks), ranks[0].communicate()[1][-3000:]
        time.sleep(0.02)
    ranks[1].send_signal(signal.SIGKILL)
    _, stderr = ranks[0].communicate(timeout=120)
    ranks[1].communicate(timeout=30)
    assert ranks[1].returncode == -signal.SIGKILL
    assert ranks[0].returncode == 1, stderr[-3000:]
    assert "distributed training failed" in stderr, stderr[-3000:]
    assert "another process died" in stderr and "--resume" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    done = len(log.read_text().splitlines())
    assert 1 <= done < EPOCHS, "the run finished before the rank was killed"
    state = torch.load(out / "checkpoint.pt", weights_only=False)  # intact
    assert state["epoch"] >= 1

    # resume in ONE process: same data order (the loader state is global), same updates
    resumed = subprocess.run(
        [sys.executable, "-m", "mtlkit", "train", "--resume", str(out)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    reference_dir, _ = two_node_run
    reference = torch.load(reference_dir / "model.pt", weights_only=True)
    model = torch.load(out / "model.pt", weights_only=True)
    for name, value in reference.items():
        torch.testing.assert_close(model[name], value, atol=1e-5, rtol=0)
    ref_records = [json.loads(line) for line in (reference_dir / "metrics.jsonl").open()]
    for mine, theirs in zip(records, ref_records, strict=True):
        for task, loss in theirs["train_loss"].items():
            assert mine["train_loss"][task] == pytest.approx(loss, abs=1e-5)
