"""The one request/reply layer of p2pzmq (docs/DESIGN.md §7): a peer's client asking servers, the
supervisor's commands to peers' clients, and the supervisor's link to its workers all go through a :class:`Caller`.

A caller sends requests over one ROUTER socket that its owner lends it (one greenlet at a time uses a socket): a
:class:`p2pzmq.transport.RouterSocket`, or anything else that is a :class:`Socket` (tests use a fake on a fake clock).
Every deadline is on the socket's clock.
Each request gets a fresh request id and cookie; a reply counts only if it comes back on the route the request went
out on, is of the expected kind and echoes both, so a late, forged or misdirected reply is never taken for another.
Whatever else arrives while a caller waits is offered to its owner (a peer's client keeps supervisor commands for
later) or dropped and counted. What happened to each request is a typed :class:`Result`, never ``None`` or a
sentinel. Every place that receives messages counts what it drops in one :class:`Counters` schema.

A codec here is any object with ``encode(msg) -> frames``, ``decode(frames) -> msg`` (raising
:class:`~p2pzmq.errors.ProtocolError`) and ``tag(msg) -> (req_id, cookie) | None`` (None for a message that is not a
reply) and ``pack(kind, values) -> frames`` (the frames of ``kind(*values)``, which a binary codec can produce without
building the message): the peer protocol's binary codec and the worker link's JSON codec both are.
"""
from __future__ import annotations

import collections
import contextlib
import enum
import itertools
import logging
import random
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import gevent
import gevent.lock

from .clock import Clock
from .errors import ProtocolError, RpcTimeout, TransportError
from .ids import new_cookie

log = logging.getLogger(__name__)


class Counters(collections.Counter):
    """Counts of one process's traffic: ``requests`` sent, ``replies`` sent, requests that got no reply in time
    (``timeouts``) or could not be sent (``undeliverable``), and drops.

    A drop is counted three times: in ``dropped``, by where it happened (``dropped.<where>``: ``server``,
    ``client``, ``supervisor``, ``control``, ``link``...) and by why (``dropped_reason.<reason>``: a
    :class:`ProtocolError`'s reason, ``unmatched``, ``unexpected``, ``bad_secret``...).
    """

    def drop(self, where: str, reason: str, detail: object = "") -> None:
        self["dropped"] += 1
        self[f"dropped.{where}"] += 1
        self[f"dropped_reason.{reason}"] += 1
        log.debug("dropped a message at %s (%s): %s", where, reason, detail)

    def summary(self) -> dict:
        """The totals and both drop breakdowns, as ``stats`` reports them."""
        return {"requests": self["requests"], "replies": self["replies"], "timeouts": self["timeouts"],
                "dropped": self["dropped"], "dropped_by_kind": self._breakdown("dropped."),
                "dropped_by_reason": self._breakdown("dropped_reason.")}

    def _breakdown(self, prefix: str) -> dict:
        return {key[len(prefix):]: value for key, value in sorted(self.items()) if key.startswith(prefix)}


class Socket(Protocol):
    """What a :class:`Caller` needs of its socket: the seam between the request layer and the transport."""

    #: The clock every wait and deadline of this socket, and of its callers, is on.
    clock: Clock

    def route(self, endpoint: str) -> bytes:
        """The routing id of ``endpoint``'s connection, made if needed; :class:`TransportError` if there is no way
        to it."""

    def send_to(self, route: bytes, frames: list[bytes], timeout: float | None = None) -> bool:
        """Send ``frames`` on ``route``; False, and nothing sent, if ``timeout`` seconds pass first;
        :class:`TransportError` if the route is gone or refused."""

    def recv(self, timeout: float | None = None) -> list[bytes] | None:
        """The next message, its route first; None if none came within ``timeout`` seconds."""

    def forget(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint``: nothing sent on it before arrives afterwards."""

    def close(self) -> None: ...


class ServerSocket(Protocol):
    """What the answering side of a request needs of its socket (a served peer server, a worker's link socket)."""

    clock: Clock

    def recv(self, timeout: float | None = None) -> list[bytes] | None: ...

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a message received on ``route``."""


class Outcome(enum.Enum):
    """What became of one request."""

    REPLIED = "replied"
    #: Sent (or tried) but not answered in time, or it could not be sent: the peer is unresponsive.
    SILENT = "silent"
    #: Not sent, or no longer waited for, because its liveness check says it is gone (its worker died).
    GONE = "gone"


class Result(NamedTuple):
    outcome: Outcome
    reply: Any = None

    @property
    def replied(self) -> bool:
        return self.outcome is Outcome.REPLIED


GONE = Result(Outcome.GONE)
SILENT = Result(Outcome.SILENT)


class Request(NamedTuple):
    """One request to send: ``kind(req_id, cookie, *args)`` to ``endpoint``, answered by a ``reply_kind``. ``key``
    is what the liveness check is asked about (e.g. the contact)."""

    endpoint: str
    kind: Callable[..., Any]
    args: tuple
    reply_kind: type
    key: Any = None


class Liveness(NamedTuple):
    """How a caller learns that a destination is gone: ``alive(key)`` is asked before sending and, if ``every`` is
    set, every ``every`` seconds while waiting; waits are then ``grace`` seconds longer, so that a death is
    declared before the caller gives up."""

    alive: Callable[[Any], bool]
    every: float | None = None
    grace: float = 0.0


class _Pending(NamedTuple):
    index: int
    cookie: int
    route: bytes
    reply_kind: type
    request: Request


#: ``on_unmatched(route, message) -> bool``: offered what arrives unasked while waiting; True if it was taken.
Unmatched = Callable[[bytes, Any], bool]


class Caller:
    """Sends requests on ``sock`` and matches their replies (see the module docstring).

    ``where`` names this receiving place in the drop counters. ``on_unmatched`` is offered every well-formed message
    that answers none of the requests awaited; what it declines is dropped and counted as ``unmatched``.
    """

    def __init__(self, sock: Socket, codec, counters: Counters, cookies: random.Random, *, where: str,
                 on_unmatched: Unmatched | None = None) -> None:
        self.sock = sock
        self._codec = codec
        self.counters = counters
        self._cookies = cookies
        self._cookie_bits = cookies.getrandbits
        self._where = where
        self._on_unmatched = on_unmatched
        self._ids = itertools.count(1)

    def call(self, endpoint: str, kind, args: tuple, reply_kind: type, timeout: float,
             liveness: Liveness | None = None, key: Any = None):
        """The reply to ``kind(req_id, cookie, *args)`` sent to ``endpoint``; raises :class:`RpcTimeout` if none
        comes within ``timeout`` seconds (of sending, and again of waiting), :class:`TransportError` if it cannot be
        sent or its destination is declared gone. The path every walk takes, so it is kept lean."""
        if liveness is not None:
            result = self.call_many([Request(endpoint, kind, args, reply_kind, key)], timeout, window=1,
                                    strict=True, liveness=liveness)[0]
            if result.outcome is Outcome.GONE:
                raise TransportError(f"{endpoint} is gone")
            return result.reply
        sock = self.sock
        req_id, cookie = next(self._ids), self._cookie_bits(32) + 1  # ids.new_cookie, written out (every request)
        try:
            route = sock.route(endpoint)
            if not sock.send_to(route, self._codec.pack(kind, (req_id, cookie, *args)), timeout):
                raise RpcTimeout(f"could not send to {endpoint} in time")
        except TransportError as exc:
            self._unanswered(endpoint, exc, True)
        self.counters["requests"] += 1
        wait, deadline = timeout, None
        while True:
            frames = sock.recv(wait)
            if frames is None:
                self._unanswered(endpoint, RpcTimeout(f"no reply from {endpoint}"), True)
            try:
                msg = self._codec.decode(frames[1:])
            except ProtocolError as exc:
                self.counters.drop(self._where, exc.reason, exc)
            else:
                if type(msg) is reply_kind and msg.req_id == req_id and msg.cookie == cookie and frames[0] == route:
                    return msg
                self._offer(frames[0], msg)
            now = sock.clock.now()
            deadline = deadline or now + timeout  # something else came first: wait no longer in all
            wait = deadline - now

    def call_many(self, requests: list[Request], timeout: float, *, window: int, strict: bool = False,
                  liveness: Liveness | None = None) -> list[Result]:
        """Send ``requests`` up to ``window`` at a time and return one :class:`Result` each, in order.

        Each window waits for its replies under one deadline, ``timeout`` seconds after the latest progress (a
        reply) or send. A request that cannot be sent or is not answered in time is :data:`SILENT` (with
        ``strict``, the first one raises instead); the connection to it is dropped, so a late reply can never be
        taken for the next request's and nothing piles up for a peer that will never read it. With ``liveness``,
        requests to destinations declared gone are :data:`GONE`: not sent, or no longer waited for.
        """
        results: list[Result | None] = [None] * len(requests)
        for start in range(0, len(requests), window):
            pending: dict[int, _Pending] = {}
            for index in range(start, min(start + window, len(requests))):
                results[index] = self._send(index, requests[index], pending, timeout, strict, liveness)
            self._collect(pending, results, timeout, strict, liveness)
        return results

    def _send(self, index: int, request: Request, pending: dict, timeout: float, strict: bool,
              liveness: Liveness | None) -> Result | None:
        """Send one request and register it in ``pending``; returns its result if it is already decided."""
        if liveness is not None and not liveness.alive(request.key):
            return GONE
        req_id, cookie = next(self._ids), new_cookie(self._cookies)
        try:
            route = self.sock.route(request.endpoint)
            frames = self._codec.pack(request.kind, (req_id, cookie, *request.args))
            if not self._deliver(route, frames, request.key, timeout, liveness):
                return GONE
        except TransportError as exc:
            return self._unanswered(request.endpoint, exc, strict)
        self.counters["requests"] += 1
        pending[req_id] = _Pending(index, cookie, route, request.reply_kind, request)
        return None

    def _deliver(self, route: bytes, frames: list[bytes], key: Any, timeout: float,
                 liveness: Liveness | None) -> bool:
        """Hand ``frames`` to the transport; False if the destination is declared gone first. A connection to a
        process that died never comes up, so with ``liveness`` the wait is cut into slices between checks."""
        if liveness is None or liveness.every is None:
            if not self.sock.send_to(route, frames, timeout):
                raise RpcTimeout("the message could not be sent in time")
            return True
        now = self.sock.clock.now
        deadline = now() + liveness.grace + timeout
        while not self.sock.send_to(route, frames, liveness.every):
            if not liveness.alive(key):
                return False
            if now() > deadline:
                raise RpcTimeout("the connection did not come up in time")
        return True

    def _collect(self, pending: dict[int, _Pending], results: list, timeout: float, strict: bool,
                 liveness: Liveness | None) -> None:
        """Receive until every request in ``pending`` is answered, or none has been for ``timeout`` (messages that
        answer nothing do not count: a flood of them cannot hold a window open)."""
        polling = liveness is not None and liveness.every is not None
        if polling:
            timeout += liveness.grace
        now = self.sock.clock.now
        last_progress = now()
        while pending:
            left = last_progress + timeout - now()
            if left <= 0:
                first = next(iter(pending.values())).request.endpoint
                exc = RpcTimeout(f"{len(pending)} request(s) to {first} and others got no reply" if len(pending) > 1
                                 else f"no reply from {first}")
                for item in pending.values():
                    results[item.index] = self._unanswered(item.request.endpoint, exc, strict)
                return
            frames = self.sock.recv(min(left, liveness.every) if polling else left)
            if frames is not None:
                if self._match(frames, pending, results):
                    last_progress = now()
            elif polling:
                for req_id in [req_id for req_id, item in pending.items() if not liveness.alive(item.request.key)]:
                    results[pending.pop(req_id).index] = GONE

    def _match(self, frames: list[bytes], pending: dict[int, _Pending], results: list) -> bool:
        """Settle the request ``frames`` answers; True if it answered one."""
        route, *body = frames
        try:
            msg = self._codec.decode(body)
        except ProtocolError as exc:
            self.counters.drop(self._where, exc.reason, exc)
            return False
        tag = self._codec.tag(msg)
        item = pending.get(tag[0]) if tag is not None else None
        if item is None or (item.cookie, item.route) != (tag[1], route) or type(msg) is not item.reply_kind:
            self._offer(route, msg)
            return False
        del pending[tag[0]]
        results[item.index] = Result(Outcome.REPLIED, msg)
        return True

    def _offer(self, route: bytes, msg) -> None:
        """Give a message no request awaits to the owner, or drop and count it."""
        if self._on_unmatched is None or not self._on_unmatched(route, msg):
            self.counters.drop(self._where, "unmatched", type(msg).__name__)

    def _unanswered(self, endpoint: str, exc: TransportError, strict: bool) -> Result:
        self.counters["timeouts" if isinstance(exc, RpcTimeout) else "undeliverable"] += 1
        self.sock.forget(endpoint)
        if strict:
            raise exc
        return SILENT


class Channel:
    """A :class:`Caller` on a socket that several greenlets share. Every call holds the channel's lock, so one of
    them at a time uses the socket whatever they call: the owner of a shared socket cannot forget to serialize.
    Work that must not interleave with other callers' (several calls that must see one state) holds
    :meth:`exclusive` around them."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller
        self._lock = gevent.lock.RLock()
        self._depth = 0  # how deep the holder is nested
        self._waiting = 0  # greenlets waiting for the lock

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            self._waiting -= 1
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._lock.release()
        if self._depth == 0 and self._waiting:
            gevent.sleep(0)  # let a greenlet waiting for the lock have it before this one asks again

    def call(self, *args, **kwargs):
        with self.exclusive():
            return self._caller.call(*args, **kwargs)

    def call_many(self, *args, **kwargs) -> list[Result]:
        with self.exclusive():
            return self._caller.call_many(*args, **kwargs)

    def forget(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` (a destination that will never answer again)."""
        with self.exclusive():
            self._caller.sock.forget(endpoint)

    def close(self) -> None:
        self._caller.sock.close()
