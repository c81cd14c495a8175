"""The run directory: checked before anything is written, replaced safely, locked while in use.

A run directory is recognised by its ``config.yaml`` (or ``tasks.json``). ``--overwrite``
replaces only such a directory (its files, its baseline run ``stl/`` and ``tensorboard/``),
never an unrelated folder. While a process trains in it, ``.lock`` holds that process's id and
host; a second process is refused, and a lock whose process is gone (killed) is taken over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

from mtlkit.config import ConfigError
from mtlkit.training.checkpoint import TEMP_SUFFIX, remove_temp_files

RUN_FILES = (
    "config.yaml",
    "tasks.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "model.pt",
    "summary.json",
)
RUN_FOLDERS = ("stl", "tensorboard")
LOCK_NAME = ".lock"


def is_run_directory(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "tasks.json").is_file()


def _leftovers_only(path: Path) -> bool:
    """Whether ``path`` holds nothing but temporary files and a lock (a run killed early)."""
    return all(
        p.name == LOCK_NAME or (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))
        for p in path.iterdir()
    )


def check_new_run_directory(path: Path, overwrite: bool) -> None:
    """Raise if ``path`` cannot receive a new run; writes nothing."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {str(path)!r} is a file, not a directory; name a directory")
    if path.is_dir() and not _leftovers_only(path):
        if not is_run_directory(path):
            raise ConfigError(
                f"out: {str(path)!r} is a non-empty folder that is not a run directory "
                "(no config.yaml); name a new or empty directory"
            )
        if not overwrite:
            raise ConfigError(
                f"out: run directory {str(path)!r} already exists; pass --overwrite to replace "
                f"it, or continue it with `mtlkit train --resume {path}`"
            )
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"out: cannot create or write {str(path)!r}: {str(existing)!r} is not writable"
        )


def clear_run_directory(path: Path) -> None:
    """Create ``path``, or empty the run that was there (files, ``stl/``, ``tensorboard/``)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (path / name).is_dir():
            shutil.rmtree(path / name)
    remove_temp_files(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``RUN_DIR/.lock`` for the life of a ``with`` block: one process per run directory.

    A lock left by a process that no longer runs on this host is stale and taken over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.owner = f"{os.getpid()} {socket.gethostname()}"

    def __enter__(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(self.owner + "\n")
            return self
        raise ConfigError(f"run directory {str(self.path.parent)!r}: cannot take {self.path.name}")

    def _check_stale(self) -> None:
        try:
            pid_text, _, host = self.path.read_text().strip().partition(" ")
        except FileNotFoundError:  # released meanwhile
            return
        pid = int(pid_text) if pid_text.isdigit() else None
        if host == socket.gethostname() and pid is not None and not _alive(pid):
            self.path.unlink(missing_ok=True)
            return
        where = f"process {pid_text} on {host}" if host else f"process {pid_text}"
        raise ConfigError(
            f"run directory {str(self.path.parent)!r} is in use by {where} "
            f"(lock file {str(self.path)!r}); wait for it to end, or delete the lock file "
            "if that process is gone"
        )

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.path.read_text().strip() == self.owner:
                self.path.unlink()
