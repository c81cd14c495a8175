"""Run files: atomic writes (temp file, fsync, rename), strict JSON, checked loads, RNG states."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from mtlkit.training.interrupts import deferred_interrupts

TEMP_SUFFIX = ".tmp"


class FileError(ValueError):
    """A file of a run cannot be read (missing, empty, truncated); the message names it."""


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that a crash or a signal leaves either the old or the new file, whole.

    The data goes to a temporary file beside ``path`` (removed if anything fails, Ctrl-C
    included), is fsynced, then renamed into place; the file follows the user's umask.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(err, OSError | RuntimeError):  # disk full, read-only, no permission
            reason = err.strerror if isinstance(err, OSError) and err.strerror else _first(err)
            raise FileError(f"cannot write {str(path)!r}: {reason}") from err
        raise


def atomic_save(
    obj: Any, path: str | os.PathLike, save: Callable[[Any, BinaryIO], None] | None = None
) -> None:
    """``save(obj, file)`` (``torch.save`` by default; ``torch.jit.save`` and
    ``torch.export.save`` write the same zip archive) to ``path`` atomically (temporary file,
    fsync, rename).

    Ctrl-C or SIGTERM during the write takes effect once the file is in place (see
    :func:`~mtlkit.training.interrupts.deferred_interrupts`): their exception raised inside
    ``torch.save`` leaves its zip writer half done, which fails the save (``unexpected pos``)
    or aborts the process later.
    """
    save = torch.save if save is None else save  # torch.save as it is at call time
    with deferred_interrupts():
        atomic_write(path, lambda handle: save(obj, handle))


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically (temporary file, fsync, rename)."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that an interrupted atomic write left in ``directory``."""
    stale = sorted(Path(directory).glob(f".*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON text where NaN and ±inf (not JSON) are written as ``null``."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), indent=indent, allow_nan=False)


def load_file(path: str | os.PathLike, what: str, weights_only: bool = True) -> Any:
    """``torch.load`` on CPU; a missing, empty, truncated or foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileError(f"{what}: {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise FileError(f"{what}: {str(path)!r} is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # zipfile, pickle and torch all report damage their own way
        raise FileError(
            f"{what}: {str(path)!r} is truncated or not a file saved by mtlkit ({_first(err)})"
        ) from None


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file of a run; a missing, empty or damaged one is a one-line error."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileError(f"{what}: {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileError(f"{what}: {str(path)!r} is damaged or not JSON ({_first(err)})") from None


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def rng_states() -> dict[str, Any]:
    """Every random number generator state that training touches."""
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
