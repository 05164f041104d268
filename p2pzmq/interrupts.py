"""Signals as a clean stop: the main greenlet is told where it waits, so its ``with`` and ``finally`` blocks run.

Python's default raises KeyboardInterrupt in whatever code runs when SIGINT arrives, in a gevent program often some
peer's greenlet, which dies printing a traceback before the interrupt reaches the main greenlet. Here the signal
handler only schedules the stop; no other greenlet ever sees it.

The handlers are gevent's loop's own signal watchers, not Python's ``signal.signal``. Python's C handler only sets a
flag that the interpreter checks between bytecodes of the main thread: when the signal lands while the hub is
blocked in the loop's poll (with nothing due for seconds, as in a quiet ``worker``), nothing runs that bytecode, and
the stop waited for the next timer (a worker told SIGTERM just after its ready line did not stop in 20 s, 4 runs in
11). The loop's watcher wakes the loop itself, whatever it is blocked on.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

import gevent
import greenlet


class Signalled(BaseException):
    """A signal asked the program to stop; raised in the main greenlet (a BaseException, as KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stopping_on(signums: tuple[int, ...]) -> Iterator[None]:
    """Within this block, the first of ``signums`` to arrive raises :class:`Signalled` in the greenlet that entered
    it (the main one), where it next waits for gevent's loop. Later signals are ignored while it stops (the owners
    of networks and workers bound that by ``shutdown_timeout``); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return
    main, hub, fired = greenlet.getcurrent(), gevent.get_hub(), []

    def stop(signum: int) -> None:  # run by the loop: the hub, never some other greenlet
        if not fired:
            fired.append(signum)
            main.throw(Signalled(signum))

    previous = {signum: signal.getsignal(signum) for signum in signums}
    watchers = []
    try:
        for signum in signums:
            watcher = hub.loop.signal(signum, ref=False)  # ref=False: a watcher alone does not keep the loop running
            watcher.start(stop, signum)
            watchers.append(watcher)
        yield
    finally:
        fired.append(None)  # a signal now, while the handlers come back, must not reach code after this block
        for watcher in watchers:
            watcher.stop()  # libev puts the system's default back ...
            watcher.close()
        for signum, handler_before in previous.items():
            if handler_before is not None:  # None: not Python's; libev's default stands
                signal.signal(signum, handler_before)  # ... and Python's handler from before comes back over it
