"""Served sockets: messages handed to a handler from gevent's loop, or at once by a sender in the same context (run
to completion), with no greenlet (docs/DESIGN.md §7.1); and :func:`park`, how an owning greenlet waits for a
socket's fd. No ZeroMQ here: :class:`Served` is mixed into
:class:`p2pzmq.transport.GreenSocket`, whose primitives it uses: ``_take()`` (the message at the head of the queue,
or None), ``_queued()`` (is one there? which, as an empty answer puts libzmq's reader to sleep, costs the next message
a wake-up), ``_watcher`` (the io watcher on the socket's fd) and ``closed``.
"""
from __future__ import annotations

from typing import Callable

import gevent
from gevent.hub import get_hub

#: A served socket hands at most this many messages to its handler in one go, then lets other greenlets run.
DRAIN_BATCH = 256


def park(watcher, timeout: float | None) -> bool:
    """Wait for the io ``watcher`` (a socket's fd) to signal; False if ``timeout`` passed first."""
    if timeout is not None and timeout <= 0:
        return False
    if timeout is None:
        get_hub().wait(watcher)
        return True
    # A fresh timer each time: a reused gevent.Timeout can deliver a stale expiration into a later wait.
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        get_hub().wait(watcher)
    except gevent.Timeout as expired:
        if expired is not timer:
            raise
        return False
    finally:
        timer.close()
    return True


class Served:
    """Serving state of a socket; see :meth:`serve`."""

    def __init__(self) -> None:
        self._handler: Callable[[list[bytes]], None] | None = None  # while served
        self._on_error: Callable[[Exception], None] | None = None
        self._draining = False
        self._drain_due = False  # a drain is scheduled on the loop
        self._settle = True  # a run schedules a drain for what it leaves (see serve)

    def serve(self, handler: Callable[[list[bytes]], None], on_error: Callable[[Exception], None],
              settle: bool = True) -> None:
        """From now on, hand every message to ``handler(frames)`` as it arrives, from gevent's loop (or at once,
        from a sender in this context: :meth:`RouterSocket.send_to <p2pzmq.transport.RouterSocket.send_to>`), until
        :meth:`pause` or ``close``. ``handler`` must never block. If it raises, serving stops and
        ``on_error(exception)`` is called.

        ``settle=False`` vouches that whatever reaches this socket from this context is sent by a sender that runs
        it, so each run takes exactly what was sent and no drain needs to follow. Messages from other processes wake
        the socket through its fd as always."""
        self._handler, self._on_error, self._settle = handler, on_error, settle
        self._watcher.start(self._drain)
        get_hub().loop.run_callback(self._drain)  # what is queued already signalled: the fd will not again

    def wake(self) -> None:
        """Look at the queue soon, from the loop. Call it after using a served socket outside its handler (sending a
        reply from a greenlet): that call may have taken the fd's signal of a message that arrived meanwhile, and the
        loop would then never hand it over (docs/DESIGN.md §7.1)."""
        if self._handler is not None and not self._drain_due:
            self._drain_due = True
            get_hub().loop.run_callback(self._drain)

    def pause(self) -> None:
        """Stop serving: a greenlet may own the socket again."""
        self._handler = None
        self._watcher.stop()

    def _run(self) -> None:
        """Run to completion: hand the message a sender in this context has just queued to the handler, without
        asking first whether one is queued, and leave anything else to a later drain."""
        handler = self._handler
        if handler is None or self._draining or self.closed:
            return
        self._draining = True
        try:
            frames = self._take()
            if frames is not None:  # None: an earlier drain took it
                handler(frames)
        except Exception as exc:  # the handler's owner decides what a failure means; the sender must go on
            self._failed(exc)
        finally:
            self._draining = False
        if self._settle and not self._drain_due:
            self._drain_due = True
            get_hub().loop.run_callback(self._drain)

    def _drain(self) -> None:
        """Hand the handler what is queued, a batch at a time; nothing if the socket is not served now."""
        self._drain_due = False
        if self._draining:
            return
        self._draining = True
        try:
            for _ in range(DRAIN_BATCH):
                handler = self._handler
                if handler is None or self.closed or not self._queued():
                    return
                frames = self._take()
                if frames is None:
                    return
                handler(frames)
            self._drain_due = True
            get_hub().loop.run_callback(self._drain)  # more may be queued: let others have a turn first
        except Exception as exc:  # the handler's owner decides what a failure means; the loop must go on
            self._failed(exc)
        finally:
            self._draining = False

    def _failed(self, exc: Exception) -> None:
        if not self.closed:
            self.pause()
            self._on_error(exc)
