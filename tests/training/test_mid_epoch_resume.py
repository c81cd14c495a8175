"""Mid-epoch checkpoints (``training.checkpoint_every_steps``) and an exact resume from them."""

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
import yaml

import mtlkit.runs.train as run_module
from mtlkit.config import Config, from_dict
from mtlkit.data import MultiInputDataset, MultiTaskDataset, make_loader
from mtlkit.runs.train import RunInterrupted, resume_run, train_run

SRC = Path(__file__).resolve().parents[2] / "src"


def _single() -> MultiTaskDataset:
    return MultiTaskDataset(torch.arange(23.0)[:, None], {"a": torch.arange(23)})


def _multi() -> MultiInputDataset:
    return MultiInputDataset(
        {
            "a": (torch.arange(10.0)[:, None], torch.arange(10)),
            "b": (torch.arange(7.0)[:, None] + 100, torch.arange(7)),
        }
    )


def _as_list(batches) -> list:
    return [(x, y) for x, y in batches]


def _same(a: list, b: list) -> bool:
    def flat(batch):
        x, y = batch
        xs = list(x.values()) if isinstance(x, dict) else [x]
        return [*xs, *y.values()]

    return len(a) == len(b) and all(
        all(torch.equal(u, v) for u, v in zip(flat(p), flat(q), strict=True)) for p, q in zip(a, b)
    )


LOADERS = [
    ("single", _single, "joint", 1, 0),
    ("single rank 1 of 2", _single, "joint", 2, 1),
    ("joint", _multi, "joint", 1, 0),
    ("round_robin", _multi, "round_robin", 1, 0),
    ("proportional", _multi, "proportional", 1, 0),
]


@pytest.mark.parametrize(("name", "data", "sampling", "world", "rank"), LOADERS)
@pytest.mark.parametrize("stop", [0, 1, 3])
def test_batch_loader_resumes_mid_epoch_with_the_same_batches(
    name, data, sampling, world, rank, stop
):
    def loader(seed):
        return make_loader(data(), 4, seed=seed, sampling=sampling, rank=rank, world_size=world)

    reference = loader(5)
    epoch1 = _as_list(reference)
    epoch2 = _as_list(reference)
    interrupted = loader(5)
    _as_list(interrupted)  # epoch 1
    batches = iter(interrupted)
    for _ in range(stop):
        next(batches)
    state = interrupted.state_dict()
    assert state["batches"] == stop

    resumed = loader(99)  # another seed: everything comes from the state
    resumed.load_state_dict(state)
    assert _same(_as_list(resumed), epoch2[stop:])
    assert resumed.state_dict()["batches"] == 0  # the epoch ended
    assert _same(_as_list(resumed), _as_list(reference))  # and the next one is the same too
    assert not _same(epoch1, epoch2)


def test_batch_loader_state_of_an_earlier_version_still_loads():
    loader = make_loader(_single(), 4, seed=5)
    old_style = {"generator": loader.generator.get_state()}  # saved before mid-epoch resume
    again = make_loader(_single(), 4, seed=7)
    again.load_state_dict(old_style)
    assert _same(_as_list(again), _as_list(loader))


def test_an_abandoned_epoch_does_not_shorten_the_next():
    loader = make_loader(_single(), 4, seed=5)
    reference = make_loader(_single(), 4, seed=5)
    next(iter(loader))  # e.g. a peek at one batch
    next(iter(reference))
    epoch = _as_list(loader)
    assert len(epoch) == len(loader)
    assert _same(epoch, _as_list(reference))


# ------------------------------------------------------------------------------- whole runs
def _config(**training) -> Config:
    return from_dict(
        Config,
        {
            "data": {"dataset": "penguins", "batch_size": 16},
            "model": {"arch": "hps", "encoder_options": {"dropout": 0.2}},
            "weighting": {"name": "dwa"},
            "optim": {
                "scheduler": "steplr",
                "scheduler_options": {"step_size": 7},
                "scheduler_interval": "step",
            },
            "training": {"epochs": 3, "progress": False, **training},
            "device": "cpu",
            "seed": 3,
        },
    )


def _kill_after_mid_epoch_checkpoint(monkeypatch, after: int = 2) -> None:
    """Interrupt the run right after its ``after``-th checkpoint taken inside an epoch."""
    save = run_module.atomic_save
    seen = []

    def save_then_interrupt(obj, path):
        save(obj, path)
        if Path(path).name == "checkpoint.pt" and obj["loader"]["batches"] > 0:
            seen.append(obj["step"])
            if len(seen) == after:
                raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "atomic_save", save_then_interrupt)


def _records(path: Path) -> list[dict]:
    lines = (path / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_resume_from_a_mid_epoch_checkpoint_ends_bit_identical(tmp_path, monkeypatch):
    config = _config(checkpoint_every_steps=4)  # penguins: 13 steps an epoch
    reference = train_run(config, tmp_path / "reference")

    _kill_after_mid_epoch_checkpoint(monkeypatch, after=5)
    with pytest.raises(RunInterrupted, match="interrupted at epoch 2"):
        train_run(config, tmp_path / "killed")
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["step"] == 20 and state["loader"]["batches"] == 7
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "killed")

    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    last = torch.load(tmp_path / "reference" / "checkpoint.pt", weights_only=False)
    again = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    for name, tensor in last["model"].items():
        assert torch.equal(tensor, again["model"][name]), name
    assert _records(tmp_path / "killed") == _records(tmp_path / "reference")
    assert resumed.test == reference.test


def test_mid_epoch_checkpoints_do_not_change_the_run(tmp_path):
    plain = train_run(_config(), tmp_path / "plain")
    every = train_run(_config(checkpoint_every_steps=1), tmp_path / "every")
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, every.model.state_dict()[name]), name


def test_checkpoint_every_steps_must_be_positive():
    from mtlkit.config import ConfigError

    with pytest.raises(ConfigError, match="training.checkpoint_every_steps"):
        _config(checkpoint_every_steps=0)


# ------------------------------------------------------------------ a real SIGKILL, real CLI
SIGKILL_CONFIG = {
    "data": {"dataset": "synthetic", "batch_size": 8, "options": {"n_samples": 6000}},
    "model": {"arch": "hps", "encoder_options": {"dropout": 0.1}},
    "weighting": {"name": "pcgrad", "options": {"seed": 1}},
    "training": {"epochs": 2, "progress": False, "checkpoint_every_steps": 50},
    "device": "cpu",
    "seed": 0,
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mtlkit", "train", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _sigkill_after_mid_epoch_checkpoint(command: list[str], checkpoint: Path) -> None:
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:
        while True:  # a checkpoint renamed into place inside an epoch
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
            if checkpoint.is_file() and checkpoint.stat().st_size > 0:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_bit_identical(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(SIGKILL_CONFIG))
    done = subprocess.run(
        _cli("--config", str(config), "--out", str(tmp_path / "reference")),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    _sigkill_after_mid_epoch_checkpoint(
        _cli("--config", str(config), "--out", str(killed)), killed / "checkpoint.pt"
    )
    state = torch.load(killed / "checkpoint.pt", weights_only=False)  # whole: atomic
    assert state["epoch"] == 0 and state["loader"]["batches"] > 0, "not killed mid-epoch"
    assert not (killed / "summary.json").exists()
    resumed = subprocess.run(
        _cli("--resume", str(killed)), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for name in ("model.pt", "checkpoint.pt"):
        a = torch.load(tmp_path / "reference" / name, weights_only=False)
        b = torch.load(killed / name, weights_only=False)
        weights_a, weights_b = (a, b) if name == "model.pt" else (a["model"], b["model"])
        for key, tensor in weights_a.items():
            assert torch.equal(tensor, weights_b[key]), (name, key)
    assert _records(killed) == _records(tmp_path / "reference")


def test_an_interrupted_epoch_leaves_no_partial_sums_behind():
    from mtlkit.models import SharedTrunk
    from mtlkit.tasks import Task
    from mtlkit.training import Trainer

    class Stop(Exception):
        pass

    def stop_at_step_2(trainer):
        if trainer.step == 2:
            raise Stop

    model = SharedTrunk(torch.nn.Linear(1, 4), heads={"a": torch.nn.Linear(4, 1)})
    trainer = Trainer(model, [Task("a", "regression")])
    data = MultiTaskDataset(torch.randn(23, 1), {"a": torch.randn(23)})
    loader = make_loader(data, 4, seed=0)
    with pytest.raises(Stop):
        trainer.train_epoch(loader, on_step_end=stop_at_step_2)
    assert trainer.state_dict()["epoch_partial"] is None  # the next epoch starts from zero
    states = []
    trainer.train_epoch(loader, on_step_end=lambda t: states.append(t.state_dict()))
    assert [s["epoch_partial"]["counts"].item() for s in states] == [1, 2, 3, 4, 5, 6]
