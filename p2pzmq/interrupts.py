"""Signals as a clean stop: the main greenlet is told where it waits, so its ``with`` and ``finally`` blocks run.

Python's default raises KeyboardInterrupt in whatever code runs when SIGINT arrives, in a gevent program often some
peer's greenlet, which dies printing a traceback before the interrupt reaches the main greenlet. Here the signal
handler only schedules the stop; no other greenlet ever sees it.
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

    def stop(signum: int) -> None:
        if fired == [signum]:  # still inside this block: the main greenlet is where it should stop
            main.throw(Signalled(signum))

    def handler(signum: int, frame) -> None:
        if not fired:
            fired.append(signum)
            hub.loop.run_callback(stop, signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        fired.append(None)  # a stop still scheduled must not reach code after this block
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
