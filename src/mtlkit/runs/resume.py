"""Resuming a run: its checkpoint read and checked, the training state restored, its log cut.

``checkpoint.pt`` holds the trainer's state (model, optimizer, scheduler, strategy, history;
inside an epoch also its partial sums), the data loader's position and every random
generator's state (of every rank), so a resumed run continues bit-exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlkit.config import Config, ConfigError
from mtlkit.distributed.env import DistContext
from mtlkit.runs.trained import data_digest
from mtlkit.training.checkpoint import (
    FileError,
    atomic_write_text,
    load_file,
    read_json,
    set_rng_states,
)
from mtlkit.training.trainer import Trainer


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The training state saved in ``run_dir/checkpoint.pt`` (after an epoch, or inside one);
    ``None`` if none was written yet."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = load_file(path, "--resume", weights_only=False)
    if not isinstance(state, dict) or not {"model", "epoch", "loader", "rng"} <= set(state):
        raise FileError(f"--resume: {str(path)!r} is not an mtlkit training checkpoint")
    return state


def restore(
    state: dict[str, Any], trainer: Trainer, loader, run_dir: Path, ctx: DistContext | None = None
) -> None:
    """Load a checkpoint into ``trainer`` and ``loader``, and the random generators' states:
    each rank its own when as many processes resume as saved it, else rank 0's everywhere."""
    try:
        trainer.load_state_dict(state)
        loader.load_state_dict(state["loader"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise FileError(
            f"--resume: {str(run_dir / 'checkpoint.pt')!r} does not match the run's "
            f"config.yaml ({str(err).strip().splitlines()[0]})"
        ) from None
    ranks = state.get("rng_ranks")
    world_size = 1 if ctx is None else ctx.world_size
    if ranks is not None and len(ranks) == world_size:
        set_rng_states(ranks[0 if ctx is None else ctx.rank])
    else:
        set_rng_states(state["rng"])


def keep_log_lines(path: Path, epochs: int) -> None:
    """Drop ``metrics.jsonl`` records of epochs that ended after the checkpoint was written."""
    log = path / "metrics.jsonl"
    if log.is_file():
        lines = log.read_text().splitlines()[:epochs]
        atomic_write_text("".join(line + "\n" for line in lines), log)


def check_data_unchanged(config: Config, run_dir: Path) -> None:
    """Refuse to resume a table run whose data (file, or a stream's files) is gone or changed
    (other rows, splits)."""
    meta = read_json(run_dir / "tasks.json", "--resume")
    if not config.data.path:
        return
    what = "data" if config.data.stream else "data file"
    try:
        digest = data_digest(config)
    except (OSError, ValueError):  # no such file; a stream's directory or glob now empty
        raise ConfigError(f"--resume: the run's {what} {config.data.path!r} is gone") from None
    if meta.get("data_sha256") != digest:
        raise ConfigError(f"--resume: {what} {config.data.path!r} changed since the run started")
