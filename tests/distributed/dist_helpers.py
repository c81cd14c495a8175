"""Shared pieces of the distributed tests: a tiny problem with missing labels, a free port,
and a trainer run that works in one process or as one rank of a gloo process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mtlkit.data import BatchLoader, MultiTaskDataset
from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions
from mtlkit.weighting import make_weighting

SRC = Path(__file__).resolve().parents[2] / "src"

# (name, options): the eight strategies of the issue first, then more of each family
STRATEGIES = [
    ("ew", {}),
    ("uw", {}),
    ("dwa", {}),
    ("mgda", {}),
    ("pcgrad", {"seed": 1}),
    ("cagrad", {"c": 0.5}),
    ("nash_mtl", {}),
    ("upgrad", {}),
    ("gradnorm", {"lr": 0.01}),
    ("famo", {}),
    ("graddrop", {"seed": 3}),
    ("mgda_ub", {}),
    ("mgda", {"every": 2}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_problem(n: int = 50, seed: int = 0):
    """Two regression tasks and a binary one; task r1 and b2 miss some labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(6, 3, generator=g)
    r0 = x @ w[:, :1]
    r1 = -(x @ w[:, :1]) + 0.5 * (x @ w[:, 1:2])
    r1[torch.rand(n, 1, generator=g) < 0.3] = float("nan")
    b2 = (x @ w[:, 2] > 0).float()
    b2[torch.rand(n, generator=g) < 0.25] = -100
    tasks = [
        Task("r0", "regression"),
        Task("r1", "regression"),
        Task("b2", "binary", ignore_index=-100),
    ]
    return tasks, MultiTaskDataset(x, {"r0": r0, "r1": r1, "b2": b2})


def fit(name, options, distributed=None, epochs=3, batch_size=15, seed=0):
    """Train a small HPS model; return its flat final parameters and the history."""
    tasks, data = make_problem(seed=seed)
    val_tasks, val = make_problem(n=23, seed=seed + 1)
    torch.manual_seed(seed)
    model = make_model("hps", lambda: MLP(6, hidden=(16,)), tasks)
    rank = distributed.rank if distributed else 0
    world = distributed.world_size if distributed else 1
    loader = BatchLoader(data, batch_size, seed=seed, rank=rank, world_size=world)
    trainer = Trainer(
        model,
        tasks,
        make_weighting(name, len(tasks), **options),
        torch.optim.SGD(model.parameters(), lr=0.05),
        options=TrainingOptions(progress=False, grad_clip=5.0),
        distributed=distributed,
    )
    trainer.fit(loader, val, epochs=epochs)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return flat, trainer.history.epochs, trainer.weighting.state_dict()


def torchrun_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update(extra)
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_together(commands: list[list[str]], env: dict[str, str], timeout: float) -> list[Finished]:
    """Start every command at once and wait for all of them together.

    Each runs in its own process group; on timeout every group is killed and the test fails
    showing every process's stderr (a hung peer is then visible, not just the first one).
    """
    with tempfile.TemporaryDirectory() as tmp:
        logs = [(Path(tmp) / f"{i}.out", Path(tmp) / f"{i}.err") for i in range(len(commands))]
        procs = []
        for command, (out, err) in zip(commands, logs, strict=True):
            with open(out, "w") as stdout, open(err, "w") as stderr:
                procs.append(
                    subprocess.Popen(
                        command, env=env, stdout=stdout, stderr=stderr, start_new_session=True
                    )
                )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        hung = [i for i, p in enumerate(procs) if p.poll() is None]
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        finished = [
            Finished(p.returncode, out.read_text(), err.read_text())
            for p, (out, err) in zip(procs, logs, strict=True)
        ]
    if hung:
        raise AssertionError(
            f"process(es) {hung} still running after {timeout:g}s\n{describe(finished)}"
        )
    return finished


def describe(finished: list[Finished]) -> str:
    """Every process's exit code and stderr tail, for assertion messages."""
    return "\n".join(
        f"--- process {i} (exit {f.returncode}) stderr:\n{f.stderr[-3000:]}"
        for i, f in enumerate(finished)
    )
