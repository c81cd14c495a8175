"""Two processes killed (SIGKILL) inside an epoch, resumed by two processes: bit-identical.

In memory: the training rows (1,815) leave a last batch of 7 rows, split 4 / 3: the ranks'
dropout draws differ from there on, so each rank's random state must come back as its own.
Streamed (``data.stream``, two Parquet files): the loader's buffer and position come back too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from dist_helpers import free_port, subprocess_env

CONFIG = {
    "data": {"dataset": "synthetic", "batch_size": 16, "options": {"n_samples": 3025}},
    "model": {"arch": "hps", "encoder_options": {"dropout": 0.1}},
    "weighting": {"name": "upgrad"},
    "training": {"epochs": 2, "progress": False, "checkpoint_every_steps": 20},
    "optim": {"name": "sgd", "lr": 0.05},
    "device": "cpu",
    "seed": 0,
}


STREAM_CONFIG = {
    "data": {
        "stream": True,
        "batch_size": 16,
        "stream_chunk_rows": 500,
        "shuffle_buffer": 300,
        "tasks": [
            {"name": "click", "kind": "binary"},
            {"name": "conversion", "kind": "binary"},
        ],
        "categorical": ["user_id", "item_id", "context_id"],
    },
    "model": {"arch": "mmoe", "encoder_options": {"hidden": [16], "dropout": 0.1}},
    "training": {"epochs": 2, "progress": False, "checkpoint_every_steps": 20},
    "device": "cpu",
    "seed": 0,
}


def _recsys_parquet(folder) -> str:
    """Two Parquet files of 1,500 rows of the synthetic recommender data."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "recsys"))
    from write_parquet import write

    from mtlkit.data.builtin.recsys_synthetic import RecsysGenerator

    folder.mkdir()
    for part in range(2):
        generator = RecsysGenerator(n_users=50, n_items=200, n_contexts=5, seed=part)
        write(str(folder / f"part-{part}.parquet"), 1500, generator, 500)
    return str(folder)


def _rank_commands(*args: str) -> tuple[list[list[str]], list[dict[str, str]]]:
    port = str(free_port())
    envs = [
        subprocess_env(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            MTLKIT_DIST_TIMEOUT="60",
        )
        for rank in (0, 1)
    ]
    return [[sys.executable, "-m", "mtlkit", "train", *args]] * 2, envs


def _run_two(*args: str) -> None:
    commands, envs = _rank_commands(*args)
    procs = [
        subprocess.Popen(c, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c, e in zip(commands, envs)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0], "\n".join(err[-3000:] for _, err in results)


def _in_second_epoch(checkpoint) -> bool:
    """Whether ``checkpoint`` (replaced atomically) was taken inside the second epoch."""
    if not checkpoint.is_file():
        return False
    state = torch.load(checkpoint, weights_only=False)
    return state["epoch"] == 1 and state["loader"]["batches"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("data", ["in memory", "streamed"])
def test_two_processes_killed_mid_epoch_resume_bit_identical(tmp_path, data):
    raw = CONFIG
    if data == "streamed":
        raw = {**STREAM_CONFIG, "data": {**STREAM_CONFIG["data"]}}
        raw["data"]["path"] = _recsys_parquet(tmp_path / "data")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _run_two("--config", str(config), "--out", str(reference))

    commands, envs = _rank_commands("--config", str(config), "--out", str(killed))
    procs = [
        subprocess.Popen(
            c, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        for c, e in zip(commands, envs)
    ]
    checkpoint = killed / "checkpoint.pt"
    deadline = time.monotonic() + 240
    try:
        while not _in_second_epoch(checkpoint):
            assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint in epoch 2 appeared"
            time.sleep(0.005)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 1 and state["loader"]["batches"] > 0, "not killed mid-epoch"
    assert not (killed / "summary.json").exists()

    _run_two("--resume", str(killed))
    for name in ("model.pt", "checkpoint.pt"):
        a = torch.load(reference / name, weights_only=False)
        b = torch.load(killed / name, weights_only=False)
        weights_a, weights_b = (a, b) if name == "model.pt" else (a["model"], b["model"])
        for key, tensor in weights_a.items():
            assert torch.equal(tensor, weights_b[key]), (name, key)
