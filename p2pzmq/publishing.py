"""Where the event stream goes (docs/EVENTS.md): a ZeroMQ PUB socket (``serve --events``) and a JSON-lines file
(``--record``). Each is a subscriber of :class:`~p2pzmq.events.Events` that never blocks the emitting greenlet.

Both open what they write to when made, before a network is built, so a busy port or an unwritable path is found
at once; both write the bytes of :func:`~p2pzmq.events.encode`, so a recording holds exactly what a subscriber saw.
"""
from __future__ import annotations

import logging
from typing import Callable

from .errors import TransportError, UsageError
from .events import Events, decode, encode
from .transport import Context

log = logging.getLogger(__name__)


class Publisher:
    """A PUB socket bound at ``endpoint``, publishing each event as one message. A subscriber that cannot keep up
    never slows the network: an event that a subscriber's queue (``hwm`` messages) has no room for is dropped, for
    every subscriber (see :class:`~p2pzmq.transport.PubSocket`), and counted in the stream's ``dropped``.

    ``ctx``: a context to make the socket in (a test's, to subscribe over inproc); by default one of its own.
    """

    def __init__(self, endpoint: str, hwm: int, ctx: Context | None = None) -> None:
        self._events: Events | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: Events published, and events dropped because a subscriber's queue was full.
        self.published = self.dropped = 0
        self._own_ctx = ctx is None
        self._ctx = Context(max_sockets=16) if ctx is None else ctx
        self._sock = self._ctx.pub(hwm)
        try:
            self.endpoint = self._sock.bind(endpoint)
        except TransportError:
            self.close()
            raise

    def attach(self, events: Events) -> "Publisher":
        """Publish ``events`` from now on."""
        self._events = events
        self._unsubscribe = events.subscribe(self._publish)
        return self

    def _publish(self, event: dict) -> None:
        if self._sock.publish(encode(event)):
            self.published += 1
        else:
            self.dropped += 1
            self._events.dropped += 1

    def close(self) -> None:
        """Stop publishing and release the socket (and its context, if it is its own). Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._sock.close()
        if self._own_ctx:
            self._ctx.term()


class Recorder:
    """The event stream written to ``path``, one JSON object a line, each line flushed as it is written (so a
    reader following the file, or one left after a crash, has every event so far)."""

    def __init__(self, path: str) -> None:
        try:
            self._file = open(path, "wb")
        except OSError as exc:
            raise UsageError(f"cannot record events to {path!r:.80}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a NUL in the path
            raise UsageError(f"cannot record events to {path!r:.80}: {exc}") from None
        self.path = path
        self._unsubscribe: Callable[[], None] | None = None
        #: Events written.
        self.recorded = 0

    def attach(self, events: Events) -> "Recorder":
        """Record ``events`` from now on."""
        self._unsubscribe = events.subscribe(self._record)
        return self

    def _record(self, event: dict) -> None:
        self._file.write(encode(event) + b"\n")
        self._file.flush()
        self.recorded += 1

    def close(self) -> None:
        """Stop recording and close the file. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._file.close()


class Subscriber:
    """A SUB socket connected to an event stream's ``endpoint``: :meth:`next` gives its events one by one. A message
    that is no valid event (:func:`~p2pzmq.events.decode`) is dropped and counted in :attr:`bad`."""

    def __init__(self, endpoint: str, hwm: int | None = None) -> None:
        self._ctx = Context(max_sockets=16)
        self._sock = self._ctx.sub(hwm)
        try:
            self._sock.connect(endpoint)
        except TransportError:
            self.close()
            raise
        self.endpoint = endpoint
        #: Messages dropped because they were no valid event.
        self.bad = 0

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def next(self, timeout: float | None = None) -> tuple[dict, bytes] | None:
        """The next event and the bytes it came as; None if ``timeout`` seconds pass without one."""
        while True:
            frames = self._sock.recv(timeout)
            if frames is None:
                return None
            try:
                return decode(frames[-1]), frames[-1]
            except ValueError as exc:
                self.bad += 1
                log.debug("dropped a message of the event stream at %s: %s", self.endpoint, exc)

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()
