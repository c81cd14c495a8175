"""Ctrl-C or SIGTERM while a checkpoint is written: the file is finished, then the run stops.

Python runs a signal's handler between two bytecodes, so before the fix its exception could
land inside ``torch.save``, whose C++ zip writer is not safe against that: cut inside a record
it failed with ``unexpected pos`` (exit 2 instead of 143), cut before its end-of-file it stayed
unfinished and its destructor, run once the exception was dropped, wrote to the closed file
(``terminate called after throwing an instance of 'pybind11::error_already_set' ... ValueError:
write to closed file``, SIGABRT). These tests deliver real signals at those points.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import mtlkit.training.checkpoint as checkpoint_module
from mtlkit.cli.train import sigterm_as_interrupt
from mtlkit.runs.train import Terminated
from mtlkit.training.checkpoint import TEMP_SUFFIX, atomic_save
from mtlkit.training.interrupts import deferred_interrupts

SRC = Path(__file__).resolve().parents[2] / "src"


class _SignalOnWrite(io.FileIO):
    """A file whose ``at``-th write first sends ``signum`` to this process."""

    def __init__(self, fd: int, signum: int, at: int) -> None:
        super().__init__(fd, "wb")
        self.signum, self.at, self.writes = signum, at, 0

    def write(self, data) -> int:
        self.writes += 1
        if self.writes == self.at:
            os.kill(os.getpid(), self.signum)  # its handler runs on this method's next bytecode
        return super().write(data)


class _OsOpeningSignallingFiles:
    """``os`` for :mod:`mtlkit.training.checkpoint`, whose ``fdopen`` gives a ``_SignalOnWrite``."""

    def __init__(self, signum: int, at: int) -> None:
        self.signum, self.at = signum, at
        self.opened: list[_SignalOnWrite] = []

    def fdopen(self, fd: int, mode: str) -> _SignalOnWrite:
        assert mode == "wb"
        self.opened.append(_SignalOnWrite(fd, self.signum, self.at))
        return self.opened[-1]

    def __getattr__(self, name: str):
        return getattr(os, name)


@pytest.fixture(params=["SIGINT", "SIGTERM"])
def interrupt(request):
    """A signal and the exception its handler raises, as under ``mtlkit train``."""
    if request.param == "SIGINT":
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        yield signal.SIGINT, KeyboardInterrupt
        signal.signal(signal.SIGINT, previous)
    else:
        with sigterm_as_interrupt():
            yield signal.SIGTERM, Terminated


def _state(step: int) -> dict:
    return {"step": step, "weights": torch.arange(2000.0) + step}


def test_a_signal_inside_torch_save_stops_after_the_checkpoint_is_whole(
    tmp_path, monkeypatch, interrupt
):
    signum, raised = interrupt
    path = tmp_path / "checkpoint.pt"
    atomic_save(_state(1), path)
    fake_os = _OsOpeningSignallingFiles(signum, at=2)  # inside the first record (data.pkl)
    monkeypatch.setattr(checkpoint_module, "os", fake_os)

    with pytest.raises(KeyboardInterrupt) as caught:
        atomic_save(_state(2), path)

    assert type(caught.value) is raised
    assert fake_os.opened[0].writes > 2  # torch kept writing after the signal came
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 2 and torch.equal(saved["weights"], _state(2)["weights"])
    assert not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))


def test_deferred_interrupts_holds_a_signal_until_the_block_ends(interrupt):
    signum, raised = interrupt
    handler = signal.getsignal(signum)
    finished = False
    with pytest.raises(raised), deferred_interrupts():
        os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signum)  # a second one is the same request
        finished = True
    assert finished
    assert signal.getsignal(signum) is handler


def test_deferred_interrupts_raises_the_interrupt_also_when_the_block_fails(interrupt):
    signum, raised = interrupt
    with pytest.raises(raised) as caught, deferred_interrupts():
        os.kill(os.getpid(), signum)
        raise OSError("disk full")
    assert isinstance(caught.value.__context__, OSError)


def test_deferred_interrupts_without_a_signal_changes_nothing(interrupt):
    signum, _ = interrupt
    handler = signal.getsignal(signum)
    with pytest.raises(OSError, match="disk full"), deferred_interrupts():
        assert signal.getsignal(signum) is not handler
        raise OSError("disk full")
    assert signal.getsignal(signum) is handler
    with deferred_interrupts():
        with deferred_interrupts():  # nested: the inner block leaves the outer one's hold
            pass
        assert signal.getsignal(signum) is not handler
    assert signal.getsignal(signum) is handler


def test_deferred_interrupts_leaves_default_and_ignored_signals_alone():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with deferred_interrupts():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # ignored, as before
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_deferred_interrupts_outside_the_main_thread_does_nothing():
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with deferred_interrupts():
                pass
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == []


_CHILD = textwrap.dedent(
    """
    import gc, json, os, signal, sys
    import torch
    import torch.serialization
    from mtlkit.training.checkpoint import atomic_save

    class Terminated(KeyboardInterrupt):
        pass

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    writer_opener = torch.serialization._open_zipfile_writer_buffer

    def signal_at(method):
        fired = []

        def trace(frame, event, arg):
            if event == "call" and frame.f_code.co_name == method:
                if isinstance(frame.f_locals.get("self"), writer_opener) and not fired:
                    fired.append(method)
                    os.kill(os.getpid(), signal.SIGTERM)  # handled on the next bytecode
            return None

        return trace, fired

    path = sys.argv[1]
    for step, method in enumerate(["__enter__", "__exit__"], start=1):
        trace, fired = signal_at(method)
        sys.settrace(trace)
        try:
            atomic_save({"step": step}, path)
            raised = None
        except KeyboardInterrupt as err:
            raised = type(err).__name__
        finally:
            sys.settrace(None)
        gc.collect()  # frees what the exception held (before the fix: SIGABRT here)
        saved = torch.load(path, weights_only=True)["step"]
        print(json.dumps({"at": method, "fired": bool(fired), "raised": raised, "saved": saved}))
    """
)


def test_a_signal_between_torch_writer_steps_does_not_abort_the_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    path = tmp_path / "checkpoint.pt"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert results == [
        {"at": "__enter__", "fired": True, "raised": "Terminated", "saved": 1},
        {"at": "__exit__", "fired": True, "raised": "Terminated", "saved": 2},
    ]
    assert not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))
