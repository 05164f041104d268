"""Served sockets: messages handed to a handler from gevent's loop, or at once by a sender in the same context (run
to completion), with no greenlet (docs/DESIGN.md §7.1); and how a greenlet waits for a socket's fd
(:func:`wait_on`, on the socket's clock). No ZeroMQ here: :class:`Served` is mixed into
:class:`p2pzmq.transport.GreenSocket`, whose primitives it uses: ``_take()`` (the message at the head of the queue,
or None), ``_queued()`` (is one there? which, as an empty answer puts libzmq's reader to sleep, costs the next message
a wake-up), ``_watcher`` (the io watcher on the socket's fd) and ``closed``.

The watcher keeps running with one callback, :meth:`Served._readable`, whatever the socket's mode: it drains a served
socket, or wakes the greenlet parked on it (:attr:`_waiter`). Starting and stopping a watcher for every wait cost
about six epoll_ctl calls per request over tcp. Only when nobody listens does the callback stop the watcher, since
ZeroMQ's fd is level-triggered for the loop: commands left unprocessed would wake it again and again.
"""
from __future__ import annotations

from typing import Callable

from gevent.hub import Waiter, get_hub

from .clock import Clock

#: A served socket hands at most this many messages to its handler in one go, then lets other greenlets run.
DRAIN_BATCH = 256


def wait_on(watcher, timeout: float | None, clock: Clock) -> bool:
    """Park until the io ``watcher`` (of an fd no other greenlet waits on) signals; False if ``timeout`` seconds of
    ``clock`` passed first. The watcher runs only meanwhile."""
    waiter = Waiter()
    watcher.start(waiter.switch, None)
    try:
        return clock.wait(waiter, timeout)
    finally:
        watcher.stop()


class Served:
    """Serving state of a socket; see :meth:`serve`."""

    def __init__(self) -> None:
        self._handler: Callable[[list[bytes]], None] | None = None  # while served
        self._on_error: Callable[[Exception], None] | None = None
        self._draining = False
        self._drain_due = False  # a drain is scheduled on the loop
        self._settle = True  # a run schedules a drain for what it leaves (see serve)
        self._waiter = None  # the gevent Waiter of the greenlet parked on this socket, if one is

    def _readable(self) -> None:
        """The fd signalled (in the loop): drain a served socket, or wake the greenlet parked on it."""
        if self._handler is not None:
            self._drain(fired=True)
        elif self._waiter is not None:
            self._waiter.switch(None)
        else:
            self._watcher.stop()  # nobody listens: the level-triggered fd would wake the loop again and again

    def _listen(self) -> None:
        if not self._watcher.active:
            self._watcher.start(self._readable)

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
        self._listen()
        self._drain_soon()  # what is queued already signalled: the fd will not again

    def wake(self) -> None:
        """Look at the queue soon, from the loop. Call it after using a served socket outside its handler (sending a
        reply from a greenlet): that call may have taken the fd's signal of a message that arrived meanwhile, and the
        loop would then never hand it over (docs/DESIGN.md §7.1)."""
        if self._handler is not None:
            self._drain_soon()

    def pause(self) -> None:
        """Stop serving: a greenlet may own the socket again (it parks on the same watcher)."""
        self._handler = None

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
        if self._settle:
            self._drain_soon()

    def _drain(self, fired: bool = False) -> None:
        """Hand the handler what is queued, a batch at a time; nothing if the socket is not served now. When the fd
        has just ``fired``, a message most likely arrived: take it without asking first."""
        self._drain_due = False
        if self._draining:
            return
        self._draining = True
        try:
            for _ in range(DRAIN_BATCH):
                handler = self._handler
                if handler is None or self.closed or not (fired or self._queued()):
                    return
                fired = False
                frames = self._take()
                if frames is None:
                    return
                handler(frames)
            self._drain_soon()  # more may be queued: let others have a turn first
        except Exception as exc:  # the handler's owner decides what a failure means; the loop must go on
            self._failed(exc)
        finally:
            self._draining = False

    def _drain_soon(self) -> None:
        """Have the loop drain this socket once it has run the other callbacks due (one drain due at a time)."""
        if not self._drain_due:
            self._drain_due = True
            get_hub().loop.run_callback(self._drain)

    def _failed(self, exc: Exception) -> None:
        if not self.closed:
            self.pause()
            self._on_error(exc)
