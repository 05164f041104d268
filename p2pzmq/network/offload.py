"""Pure CPU work of the supervisor, done in one native thread while the calling greenlet waits.

Routing a sampled status or writing a graph of 20,000 peers takes tens of seconds. Done in a greenlet it would stop
the process's event loop for as long: no heartbeat would reach the workers, which stop by themselves after
``heartbeat_timeout`` of silence, and the control socket would not answer. In a thread, the loop gets the GIL back
every few milliseconds (the interpreter's switch interval).
"""
from __future__ import annotations

from typing import Callable

from gevent.threadpool import ThreadPool

from ..clock import REAL


def _outcome(function: Callable, args: tuple) -> tuple[bool, object]:
    """``(True, function(*args))``, or ``(False, the exception it raised)``: a task of gevent's thread pool that
    raises gets its traceback printed on stderr, so errors travel back as values and are raised in the caller."""
    try:
        return True, function(*args)
    except Exception as exc:  # raised again by the greenlet that waits for it
        return False, exc


class Offloader:
    """One thread, made on first use, for functions that touch no socket and no greenlet."""

    def __init__(self, shutdown_timeout: float) -> None:
        self._shutdown_timeout = shutdown_timeout
        self._pool: ThreadPool | None = None

    def __call__(self, function: Callable, *args):
        """``function(*args)``, computed in the thread; its exception, if any, is raised here."""
        if self._pool is None:
            self._pool = ThreadPool(1)
        ok, value = self._pool.apply(_outcome, (function, args))
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        """Stop taking work; the thread ends when its task (if any) is done: waited for a bounded time, then left
        to end with the process."""
        if self._pool is not None:
            self._pool.kill()
            with REAL.timeout(self._shutdown_timeout, False):  # a native thread: wall time
                self._pool.join()
