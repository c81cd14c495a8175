"""How many CPU threads the command line gives torch.

torch's default (one thread per physical core) thrashes on a machine that is busy with other
work: every intra-op parallel region waits for its slowest thread, and on a loaded machine some
thread is always descheduled. The command line therefore starts from the cores that are idle::

    threads = clip(round(cpus - load), 1, min(physical cores, MAX_DEFAULT_THREADS))

with ``cpus`` the CPUs this process may run on, ``load`` the 1-minute load average (processes
running or waiting to run) and ``physical cores`` torch's own default. The cap keeps small
models (MLP, LeNet) off more threads than their matrix products can use. An explicit
``--threads N`` (or ``threads:`` in a config file) wins, and so does ``OMP_NUM_THREADS`` set in
the environment.
"""

from __future__ import annotations

import argparse
import functools
import os

MAX_DEFAULT_THREADS = 4


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads for torch (default: the idle cores, at most "
        f"{MAX_DEFAULT_THREADS}; see docs/threads.md)",
    )


def choose_threads(cpus: int, load: float, physical_cores: int) -> int:
    """``clip(round(cpus - load), 1, min(physical_cores, MAX_DEFAULT_THREADS))``."""
    idle = round(cpus - load)
    return max(1, min(idle, physical_cores, MAX_DEFAULT_THREADS))


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@functools.cache
def _physical_cores() -> int:
    # torch's default thread count, read before anything in this process changes it
    import torch

    return torch.get_num_threads()


def default_threads() -> int | None:
    """The thread count for this machine now, or ``None`` when ``OMP_NUM_THREADS`` decides."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): assume an idle machine
        load = 0.0
    return choose_threads(_usable_cpus(), load, _physical_cores())


def configure_threads(requested: int | None) -> int:
    """Set torch's intra-op threads to ``requested`` or to :func:`default_threads`; return it."""
    import torch

    threads = requested if requested is not None else default_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
