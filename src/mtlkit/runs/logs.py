"""A run's logs: ``metrics.jsonl`` (one JSON record per epoch) and optional TensorBoard."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mtlkit.config import Config, ConfigError
from mtlkit.training.checkpoint import FileError


def require_tensorboard(config: Config) -> None:
    """Fail before anything is written when TensorBoard logging needs a missing package."""
    if config.training.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "training.tensorboard: needs the tensorboard package (pip install tensorboard)"
        )


def tensorboard_writer(config: Config, path: Path | None):
    if not config.training.tensorboard or path is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path / "tensorboard"))


def log_tensorboard(writer, record: dict[str, Any]) -> None:
    epoch = record["epoch"]
    for task, loss in record["train_loss"].items():
        writer.add_scalar(f"train_loss/{task}", loss, epoch)
    for task, weight in record.get("task_weights", {}).items():
        writer.add_scalar(f"task_weight/{task}", weight, epoch)
    for task, metrics in record.get("val", {}).items():
        for name, value in metrics.items():
            writer.add_scalar(f"val/{task}/{name}", value, epoch)
    writer.add_scalar("lr", record["lr"], epoch)
    writer.flush()


def append_line(path: Path, line: str) -> None:
    """Append one line to a log file; a full or read-only disk is a :class:`FileError`."""
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError as err:
        raise FileError(f"cannot write {str(path)!r}: {err.strerror}") from None
