"""Process-group setup: rank, world size, backend choice and a finite timeout.

``torchrun`` exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` reads them and joins the process group with

- backend ``nccl`` when the run's device is CUDA, ``gloo`` otherwise (CPU);
- a finite timeout (``MTLKIT_DIST_TIMEOUT`` seconds, default 300): a rendezvous that does not
  complete, or a collective whose peer died or hangs, raises instead of blocking forever.

Every collective goes through :class:`DistContext`, which turns the backend's errors into a
:class:`DistributedError` saying which rank saw the failure.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# Imported before any process group exists, on purpose: its functions' default arguments capture
# ``group.WORLD``. Imported later (building the first optimizer imports torch._dynamo, which
# imports it), that reference keeps the group alive after ``destroy_process_group()``, gloo's
# threads outlive it, and one of them can abort the process at interpreter exit.
import torch.distributed.nn.functional  # noqa: F401
from torch import Tensor

DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "MTLKIT_DIST_TIMEOUT"


class DistributedError(RuntimeError):
    """A rank died, stopped responding, or the rendezvous did not complete."""


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (or any ``env://`` launcher)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}: expected seconds, got {raw!r}") from None
    if value <= 0:
        raise DistributedError(f"{TIMEOUT_ENV}: expected a positive number, got {raw!r}")
    return value


@dataclass
class DistContext:
    """The process group as the trainer sees it (``world_size >= 2``)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    timeout_s: float

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _fail(self, what: str, err: BaseException) -> DistributedError:
        first = _first_line(err)
        return DistributedError(
            f"rank {self.rank} of {self.world_size}: {what} failed: another process died, was "
            f"killed or stopped responding (timeout {self.timeout_s:g}s; backend {self.backend}: "
            f"{first})"
        )

    # ---------------------------------------------------------------------------- collectives
    def all_reduce_sum(self, tensor: Tensor, what: str = "all-reduce") -> Tensor:
        """Sum of ``tensor`` over ranks (a new tensor; the input is left alone)."""
        out = tensor.detach().clone()
        try:
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        except RuntimeError as err:
            raise self._fail(what, err) from err
        return out

    def all_reduce_mean(self, tensor: Tensor, what: str = "all-reduce") -> Tensor:
        return self.all_reduce_sum(tensor, what) / self.world_size

    def all_reduce_max_(self, tensor: Tensor, what: str = "all-reduce") -> Tensor:
        try:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        except RuntimeError as err:
            raise self._fail(what, err) from err
        return tensor

    def all_gather_object(self, obj: Any, what: str = "gather") -> list[Any]:
        gathered: list[Any] = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, obj)
        except RuntimeError as err:
            raise self._fail(what, err) from err
        return gathered

    def broadcast_object(self, obj: Any, src: int = 0, what: str = "broadcast") -> Any:
        box = [obj if self.rank == src else None]
        try:
            dist.broadcast_object_list(box, src=src)
        except RuntimeError as err:
            raise self._fail(what, err) from err
        return box[0]

    def barrier(self, what: str = "barrier") -> None:
        # a collective (not dist.barrier) so that gloo honours the process-group timeout
        self.all_reduce_sum(torch.zeros(1, device=self.device), what)

    def check_same(self, value: Any, what: str) -> None:
        """Raise if ``value`` (picklable) differs between ranks (e.g. the config)."""
        values = self.all_gather_object(value, what)
        if any(v != values[0] for v in values):
            raise DistributedError(f"{what} differs between ranks: {values}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if not text:
        return type(err).__name__
    return text.splitlines()[0].split(" This is typically caused")[0].rstrip()


_CONTEXT: DistContext | None = None


def active_context() -> DistContext | None:
    """The context created by :func:`init_from_env` in this process, if any."""
    return _CONTEXT


def _backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: str | torch.device = "auto") -> DistContext | None:
    """Join the process group described by the environment; ``None`` for a one-process run.

    Idempotent: a second call returns the same context. A process group that the caller
    initialized already (``torch.distributed.init_process_group``) is used as it is.
    ``device`` is the run's configured device: ``auto`` or ``cuda`` become ``cuda:LOCAL_RANK``
    when CUDA is available.
    """
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    if not dist.is_available():
        return None
    if not dist.is_initialized() and not launched_by_torchrun():
        return None
    if not dist.is_initialized() and int(os.environ["WORLD_SIZE"]) <= 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(device) if str(device) != "auto" else None  # type: ignore[assignment]
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    timeout = timeout_seconds()
    if not dist.is_initialized():
        backend = _backend_for(device)
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as err:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise DistributedError(
                f"rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}: rendezvous at "
                f"{where} failed or timed out after {timeout:g}s (set {TIMEOUT_ENV} to change "
                f"it): {_first_line(err)}"
            ) from err
        atexit.register(_destroy)
    else:
        backend = dist.get_backend()
    world = dist.get_world_size()
    if world <= 1:
        return None
    _CONTEXT = DistContext(dist.get_rank(), world, local_rank, backend, device, timeout)
    _CONTEXT.barrier("rendezvous")
    return _CONTEXT


def _destroy() -> None:
    global _CONTEXT
    _CONTEXT = None
    if dist.is_initialized():
        with contextlib.suppress(Exception):  # best effort at exit: the peers may be gone
            dist.destroy_process_group()
