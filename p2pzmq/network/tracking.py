"""What the network's long operations are doing, and stopping them at safe points (docs/DESIGN.md §6, §8).

A long operation (create, add_peers, refresh_peers, net_status, time_lapse) runs inside :meth:`Tracker.operation`
and reports as it advances: ``report(phase, done, total)`` after each peer created or refreshed, at each routing round
of a status, before each step of a time-lapse. Each report is also a **safe point**: every peer's walk is over and
every table whole, so that is where :meth:`Tracker.cancel` takes effect, by raising
:class:`~p2pzmq.errors.Cancelled` in the operation's own greenlet, which unwinds like any other error. Operations nest
(a time-lapse refreshes, add_peers creates): the outermost one names the operation and each phase under way adds its
count. Operations are kept per greenlet, so one started in another greenlet is never taken for a nested one.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import gevent

from ..clock import REAL
from ..commands import COMMANDS
from ..errors import Cancelled, UsageError

#: What a phase counts, for the one-line error of a cancelled operation.
UNITS = {"create": "peers created", "refresh": "peers refreshed", "net_status": "routing rounds",
         "time_lapse": "steps"}
#: The operations that report progress, hence stop at safe points: ``create`` (the Python API's and the command
#: line's build, no control command) and the commands declared ``cancellable``.
CANCELLABLE = ("create", *(name for name, command in COMMANDS.items() if command.cancellable))


class Operation:
    """One running operation: its name, the greenlet running it, and the phases under way (outermost first)."""

    def __init__(self, name: str, greenlet) -> None:
        self.name = name
        self.greenlet = greenlet
        self.started = REAL.now()  # how long the caller has waited: wall time (docs/DESIGN.md §16)
        self.phases: dict[str, tuple[int, int]] = {}
        self.cancelling = False

    def describe(self) -> dict:
        """``running`` (the name), ``seconds`` so far, the innermost phase and its ``done`` of ``total`` (None before
        the first report), every ``phases`` under way, and whether it is ``cancelling``."""
        phases = [{"phase": phase, "done": done, "total": total} for phase, (done, total) in self.phases.items()]
        innermost = phases[-1] if phases else {"phase": None, "done": None, "total": None}
        return {"running": self.name, "seconds": round(REAL.now() - self.started, 3), **innermost,
                "phases": phases, "cancelling": self.cancelling}

    def completed(self) -> str:
        """What it has done so far, in words: ``812 of 2000 peers refreshed``."""
        return ", ".join(f"{done} of {total} {UNITS.get(phase, phase)}"
                         for phase, (done, total) in self.phases.items()) or "nothing"


class Tracker:
    """The long operations under way (normally one), by greenlet. ``notify(phase, done, total)`` is told every
    report (the network's progress callback) before the report checks for a cancel."""

    def __init__(self, notify: Callable[[str, int, int], None]) -> None:
        self._notify = notify
        self._running: dict = {}  # greenlet -> Operation

    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Run an operation called ``name`` in this block; nested in one of this greenlet's, it is part of it."""
        me = gevent.getcurrent()
        if me in self._running:
            yield
            return
        self._running[me] = Operation(name, me)
        try:
            yield
        finally:
            del self._running[me]

    def report(self, phase: str, done: int, total: int) -> None:
        """``done`` of ``total`` of ``phase``: recorded, told to ``notify``, then a safe point. A phase that is
        complete is dropped (a time-lapse's refresh is over until its next step); a report from a greenlet that runs
        no operation (background churn) is only told."""
        operation = self._running.get(gevent.getcurrent())
        if operation is not None:
            if done < total:
                operation.phases[phase] = (done, total)
            else:
                operation.phases.pop(phase, None)
        self._notify(phase, done, total)
        if operation is not None and operation.cancelling and done < total:
            raise Cancelled(f"{operation.name} cancelled after {operation.completed()}",
                            operation.describe()["phases"])

    def progress(self) -> dict:
        """What the running operation is doing (the earliest started, if several greenlets run one)."""
        return self._earliest().describe()

    def cancel(self) -> dict:
        """Ask every running operation to stop at its next safe point; what the earliest was doing."""
        earliest = self._earliest()
        for operation in self._running.values():
            operation.cancelling = True
        return earliest.describe()

    def stop_others(self, error: BaseException) -> None:
        """Raise ``error`` in every greenlet running an operation, except this one (the network is stopping: what
        they wait for will never come)."""
        me = gevent.getcurrent()
        for operation in list(self._running.values()):
            if operation.greenlet is not me:
                gevent.kill(operation.greenlet, error)

    def _earliest(self) -> Operation:
        if not self._running:
            raise UsageError(f"no long operation is running (those that report progress: {', '.join(CANCELLABLE)})")
        return min(self._running.values(), key=lambda operation: operation.started)


class Timings(dict):
    """Seconds spent in each phase (create, refresh, net_status), summed over the network's life: ``stats``'
    ``seconds``."""

    @contextlib.contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Add the time the body takes to ``phase``, whether it ends well or not."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self[phase] += time.perf_counter() - started
