"""Holding Ctrl-C and SIGTERM back while a block that must not be cut runs (a checkpoint write).

Python runs a signal's handler in the main thread between two bytecodes, so the exception it
raises (``KeyboardInterrupt``; ``Terminated`` under ``mtlkit train``) can land anywhere, also
inside ``torch.save``. Its C++ zip writer is not safe against that: cut inside a record it ends
with ``unexpected pos`` (a ``RuntimeError`` that hides the interrupt), and cut before its
end-of-file record it stays unfinished, so its destructor writes that record to the already
closed file once the exception is dropped, and the process aborts (``terminate called after
throwing an instance of 'pybind11::error_already_set' ... write to closed file``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

INTERRUPT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
"""The signals held back: Ctrl-C, and the one schedulers and ``torchrun`` send to stop a job."""


class _Held:
    """A signal handler that records the signals it gets until :meth:`release`, then passes
    them to the handlers it replaced (it may still be installed if an exception cut the
    restoring of the others short)."""

    def __init__(self) -> None:
        self.replaced: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self.signals: list[tuple[int, FrameType | None]] = []
        self.released = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.released:
            self.replaced[signum](signum, frame)
        else:
            self.signals.append((signum, frame))

    def release(self) -> None:
        """Put the replaced handlers back, then run the first recorded signal's."""
        self.released = True
        for signum, handler in self.replaced.items():
            signal.signal(signum, handler)
        if self.signals:
            signum, frame = self.signals[0]
            self.replaced[signum](signum, frame)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block whole, then act on a SIGINT or SIGTERM that came while it ran.

    While the block runs, each signal of :data:`INTERRUPT_SIGNALS` whose handler is a Python
    function is only recorded; afterwards the handlers are put back and the first recorded
    signal's own handler runs, raising its exception (``KeyboardInterrupt``...) just after the
    block, also if the block failed. Signals left to the system (``SIG_DFL``, ``SIG_IGN``) keep
    their effect. Outside the main thread, where Python runs no handler, nothing changes; a
    nested block leaves the hold to the outer one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = _Held()
    try:
        for signum in INTERRUPT_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler) and not isinstance(handler, _Held):
                held.replaced[signum] = handler
                signal.signal(signum, held)
        yield
    finally:
        held.release()
