"""The only module that imports ZeroMQ: context, green sockets and connection reuse (docs/DESIGN.md §3, §7.1).

A socket is used in one of two ways at a time: by one greenlet that owns it (a call that would block parks that
greenlet on the socket's fd), or *served*: a handler that never blocks gets each message from an io-watcher callback,
with no greenlet at all, and a sender in the same context runs it at once (run to completion: the request is handled
and its reply queued before the sender looks for it). docs/DESIGN.md §7.1 explains the edge-triggered fd, why a
served reader must rarely be told its queue is empty, and what each pyzmq call costs.

Every socket is created with ``LINGER 0`` and ``MAXMSGSIZE``; ROUTERs also get ``ROUTER_MANDATORY`` (otherwise
unroutable messages vanish silently). Routing ids for outgoing connections are never reused, because connecting twice
with one ``CONNECT_ROUTING_ID`` aborts the whole process. ``zmq.ZMQError`` never leaves this module: it becomes a
:class:`TransportError`.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
import time
from typing import Iterator

import gevent
import zmq
import zmq.backend
from gevent.hub import Waiter, get_hub

from .errors import ClosedError, TransportError
from .serving import Served

#: Sockets one context may hold; must be set before the first socket (libzmq's default is 1023).
MAX_SOCKETS = 32768
_READ = 1
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_send = zmq.backend.Socket.send  # the backend's own method: pyzmq's Python wrapper costs ~3 K instructions a frame
_recv = zmq.backend.Socket.recv
_poll = zmq.zmq_poll
_POLLOUT = int(zmq.POLLOUT)
_BUSY_RETRY = 0.00005  # a loopback tcp handshake takes well under a millisecond: poll for it finely
_BUSY_RETRY_MAX = 0.05


@contextlib.contextmanager
def _translated(what: str, sock: "GreenSocket | None" = None) -> Iterator[None]:
    """Turn a ``zmq.ZMQError`` raised inside into a :class:`TransportError` (:class:`ClosedError` for a closed socket)
    saying ``what`` could not be done. Off a message's path only: on it, an explicit ``except`` costs less."""
    try:
        yield
    except zmq.ZMQError as exc:
        raise _error(what, exc, sock) from exc


def _error(what: str, exc: zmq.ZMQError, sock: "GreenSocket | None" = None) -> TransportError:
    if (sock is not None and sock.closed) or exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
        return ClosedError(f"{what}: the socket is closed")
    return TransportError(f"{what}: {exc}")


def zmq_version() -> str:
    """Version of the libzmq and pyzmq in use, for reports."""
    return f"libzmq {zmq.zmq_version()}, pyzmq {zmq.pyzmq_version()}"


def curve_keypair() -> tuple[bytes, bytes]:
    """A new CURVE key pair (public, secret), each 40 Z85 characters."""
    if not zmq.has("curve"):
        raise TransportError("this libzmq was built without CURVE security")
    return zmq.curve_keypair()


#: Every context not yet terminated. An owner that forgets to call :meth:`Context.term` leaks its context until the
#: process exits, instead of leaving it to the garbage collector: collected in one cycle with its sockets, a pyzmq
#: context finds its weak list of sockets already cleared, closes none, and blocks in libzmq's term() forever.
_OPEN_CONTEXTS: set["Context"] = set()


@atexit.register
def _term_open_contexts() -> None:
    for ctx in list(_OPEN_CONTEXTS):
        ctx.term()


class Context:
    """One ZeroMQ context per process or per simulated network (inproc endpoints live inside one context).

    It keeps every socket it made (strongly, see :data:`_OPEN_CONTEXTS`) so that :meth:`term` can close whatever an
    owner left open and never hang.
    """

    _namespaces = itertools.count(1)

    def __init__(self, *, max_sockets: int = MAX_SOCKETS, max_message_bytes: int = 1 << 20,
                 tcp_backlog: int = 4096) -> None:
        self._zctx = zmq.Context(1)
        self._zctx.set(zmq.MAX_SOCKETS, max_sockets)
        self.max_message_bytes = max_message_bytes
        self.tcp_backlog = tcp_backlog
        self.namespace = f"p2pzmq-{os.getpid()}-{next(self._namespaces)}"
        self._sockets: set[GreenSocket] = set()
        #: inproc endpoints currently bound in this context, and their sockets. libzmq lets a socket connect to an
        #: unbound inproc endpoint and keeps that pending connection, with every message sent to it, until the
        #: context ends, even after a disconnect: dialling a dead peer's endpoint would leak memory forever.
        self._inproc_bound: dict[str, GreenSocket] = {}
        self._closed = False
        _OPEN_CONTEXTS.add(self)

    def router(self, *, max_connections: int = 32, handshake_timeout: float = 2.0,
               hwm: int | None = None) -> "RouterSocket":
        """A ROUTER socket: servers bind one, clients bind one and also connect it to servers on demand.

        ``hwm`` sets the send and receive high-water marks (messages queued per connection; libzmq's default 1000):
        a sender that reaches it waits (green) until the receiver drains its queue.
        """
        sock = self._make(RouterSocket, zmq.ROUTER)
        sock.max_connections = max_connections
        sock.handshake_timeout = handshake_timeout
        if hwm is not None:
            sock.set_hwm(hwm)
        return sock

    def rep(self) -> "GreenSocket":
        """A REP socket, for the control server."""
        return self._make(GreenSocket, zmq.REP)

    def req(self) -> "GreenSocket":
        """A REQ socket, for control clients."""
        return self._make(GreenSocket, zmq.REQ)

    def _make(self, cls, kind: int):
        if self._closed:
            raise ClosedError("context is terminated")
        with _translated("cannot create a socket"):
            zsock = self._zctx.socket(kind)
            zsock.setsockopt(zmq.LINGER, 0)
            zsock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
            zsock.setsockopt(zmq.BACKLOG, self.tcp_backlog)
            if kind == zmq.ROUTER:
                zsock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock = cls(zsock)
        sock._inproc_bound = self._inproc_bound
        sock._siblings = self._sockets
        self._sockets.add(sock)
        return sock

    def term(self) -> int:
        """Terminate the context, first closing whatever sockets their owners left open; returns how many that was
        (0 after a clean shutdown). Never blocks: every socket has LINGER 0."""
        if self._closed:
            return 0
        self._closed = True
        _OPEN_CONTEXTS.discard(self)
        left_open = [sock for sock in self._sockets if not sock.closed]
        for sock in left_open:
            sock.close()
        self._sockets.clear()
        self._zctx.term()
        return len(left_open)


class GreenSocket(Served):
    """A ZeroMQ socket whose blocking calls park only the calling greenlet, or that hands its messages to a
    handler (:meth:`~p2pzmq.serving.Served.serve`). One owner at a time: a greenlet, or the handler."""

    def __init__(self, zsock: zmq.Socket) -> None:
        super().__init__()
        self._zsock = zsock
        self._watcher = get_hub().loop.io(zsock.getsockopt(zmq.FD), _READ)
        self.closed = False
        self._inproc_bound: dict[str, GreenSocket] = {}  # the context's registry (see Context)
        self._siblings: set[GreenSocket] = set()  # the context's open sockets (see Context)
        self._bound: list[str] = []
        self._pollin = [(zsock, _POLLIN)]  # zmq_poll's argument, made once
        self._expect = False  # a reply was probably just queued for us by a server we ran (see RouterSocket.send_to)

    def bind(self, endpoint: str) -> str:
        """Bind and return the actual endpoint (``tcp://host:0`` becomes the chosen port)."""
        with _translated(f"cannot bind {endpoint}", self):
            self._zsock.bind(endpoint)
            bound = self._zsock.getsockopt_string(zmq.LAST_ENDPOINT)
        if bound.startswith("inproc://"):
            self._inproc_bound[bound] = self
            self._bound.append(bound)
        return bound

    def set_hwm(self, hwm: int) -> None:
        """Send and receive high-water marks; affects connections made after the call."""
        with _translated("cannot set the high-water mark", self):
            self._zsock.setsockopt(zmq.SNDHWM, hwm)
            self._zsock.setsockopt(zmq.RCVHWM, hwm)

    def curve_server(self, public: bytes, secret: bytes) -> None:
        """Accept only CURVE-encrypted peers that know our public key (before ``bind``)."""
        self._secure({zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret})

    def curve_client(self, server_public: bytes, public: bytes, secret: bytes) -> None:
        """Talk CURVE to servers holding ``server_public`` (before ``connect``); plain servers never answer."""
        self._secure({zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret})

    def _secure(self, options: dict) -> None:
        with _translated("cannot set CURVE keys", self):
            for option, value in options.items():
                self._zsock.setsockopt(option, value)

    def connect(self, endpoint: str) -> None:
        with _translated(f"cannot connect to {endpoint}", self):
            self._zsock.connect(endpoint)

    def send(self, frames: list[bytes]) -> None:
        """Send one multipart message, waiting (green) while the high-water mark holds it back."""
        delay = _BUSY_RETRY
        zsock = self._zsock
        while True:
            try:
                for frame in frames[:-1]:
                    _send(zsock, frame, _MORE_NOBLOCK)
                _send(zsock, frames[-1], _NOBLOCK)
                return
            except zmq.Again:
                # POLLOUT is not reliable on a ROUTER with ROUTER_MANDATORY (it reports any pipe), so back off briefly.
                self._wait(_POLLOUT, delay)
                delay = min(delay * 2, _BUSY_RETRY_MAX)
            except zmq.ZMQError as exc:
                raise _error("cannot send", exc, self) from exc

    def recv(self, timeout: float | None = None) -> list[bytes] | None:
        """Receive one multipart message, parking the greenlet until one arrives; with ``timeout``, None if none
        arrived within that many seconds."""
        # Take without asking when a message is most likely there: the server we just sent to ran at once and
        # probably answered, or the fd has just woken us. Either way of finding the queue empty (a failed take, a
        # poll) processes the command mailbox, so the fd will signal the next arrival and parking is safe (§7.1).
        likely, self._expect = self._expect, False
        deadline = None
        try:
            while True:
                if likely or _poll(self._pollin, 0):
                    frames = self._take()
                    if frames is not None:
                        return frames
                if timeout is not None:
                    deadline = deadline or time.monotonic() + timeout
                    timeout = deadline - time.monotonic()
                if not self._park(timeout):
                    return None
                likely = True
        except zmq.ZMQError as exc:
            raise _error("cannot receive", exc, self) from exc

    def _take(self) -> list[bytes] | None:
        """The message at the head of the queue, or None if there is none, found without asking first (§7.1): its
        frames arrive together, so only the first receive can find nothing."""
        zsock = self._zsock
        try:
            frame = _recv(zsock, _NOBLOCK, False)
            parts = [frame.bytes]
            while frame.more:
                frame = _recv(zsock, _NOBLOCK, False)
                parts.append(frame.bytes)
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            raise _error("cannot receive", exc, self) from exc
        return parts

    def _queued(self) -> bool:  # (zmq_poll: see docs/DESIGN.md §7.1 for why not EVENTS)
        try:
            return bool(_poll(self._pollin, 0))
        except zmq.ZMQError as exc:
            raise _error("cannot poll", exc, self) from exc

    def _park(self, timeout: float | None) -> bool:
        """Wait for the fd to signal (see serving.py); False if ``timeout`` passed first. A fresh timer each time: a
        reused gevent.Timeout can deliver a stale expiration into a later wait."""
        if timeout is not None and timeout <= 0:
            return False
        timer = None if timeout is None else gevent.Timeout(timeout)
        self._waiter = Waiter()
        self._listen()
        try:
            if timer is not None:
                timer.start()
            self._waiter.get()
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            return False
        finally:
            self._waiter = None
            if timer is not None:
                timer.close()
        return True

    def _wait(self, event: int, timeout: float | None = None) -> None:
        """Park until ``event`` is possible (or ``timeout`` passes). Checks EVENTS before every wait (edge trigger)."""
        with _translated("cannot poll", self):
            while not self._zsock.getsockopt(_EVENTS) & event:
                if not self._park(timeout) or timeout is not None:
                    return

    def close(self) -> None:
        """Close now; idempotent. Pending outgoing messages are dropped (LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        self._siblings.discard(self)
        for endpoint in self._bound:
            self._inproc_bound.pop(endpoint, None)
        self._handler = None
        self._watcher.close()
        self._zsock.close(0)


class RouterSocket(GreenSocket):
    """A ROUTER that sends to endpoints: it connects on demand and keeps a bounded LRU of live connections.

    Each outgoing connection gets a fresh local routing id (a counter), so an endpoint that is evicted and dialled
    again never reuses an id.
    """

    def __init__(self, zsock: zmq.Socket) -> None:
        super().__init__(zsock)
        self._routes: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._next_route = itertools.count(1)
        self._fresh: set[bytes] = set()  # routes that have not carried a message yet
        self._local: dict[bytes, GreenSocket] = {}  # route -> the socket bound at its inproc endpoint
        self.handshake_timeout = 2.0
        self.max_connections = 32

    def route(self, endpoint: str) -> bytes:
        """The routing id for ``endpoint``, connecting (and evicting the least recently used) if needed."""
        route = self._routes.get(endpoint)
        if route is not None:
            self._routes.move_to_end(endpoint)
            return route
        local = self._inproc_bound.get(endpoint)
        if local is None and endpoint.startswith("inproc://"):
            raise TransportError(f"nothing is bound at {endpoint} (a peer that has gone)")
        while len(self._routes) >= self.max_connections:
            self.forget(next(iter(self._routes)))
        route = b"r%d" % next(self._next_route)
        with _translated(f"cannot connect to {endpoint}", self):
            self._zsock.setsockopt(zmq.CONNECT_ROUTING_ID, route)
            self._zsock.connect(endpoint)
        self._routes[endpoint] = route
        self._fresh.add(route)
        if local is not None:
            self._local[route] = local
        return route

    def forget(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` (if any)."""
        route = self._routes.pop(endpoint, None)
        if route is None:
            return
        self._fresh.discard(route)
        self._local.pop(route, None)
        try:
            self._zsock.disconnect(endpoint)
        except zmq.ZMQError:
            pass  # already gone: disconnecting is best effort by nature

    def forget_all(self) -> None:
        """Drop every outgoing connection (an idle peer holds none: each costs tens of KB in libzmq)."""
        for endpoint in list(self._routes):
            self.forget(endpoint)

    @property
    def connections(self) -> int:
        return len(self._routes)

    def _take(self) -> list[bytes] | None:
        """As GreenSocket._take, with the routing frame received as bytes (cheaper than a frame object)."""
        zsock = self._zsock
        try:
            parts = [_recv(zsock, _NOBLOCK)]
            frame = _recv(zsock, _NOBLOCK, False)
            parts.append(frame.bytes)
            while frame.more:
                frame = _recv(zsock, _NOBLOCK, False)
                parts.append(frame.bytes)
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            raise _error("cannot receive", exc, self) from exc
        return parts

    def send_to(self, route: bytes, frames: list[bytes], timeout: float | None = None) -> bool:
        """Send ``frames`` to ``route``; False if ``timeout`` seconds pass first (the high-water mark holds the
        message back, or the connection is still coming up), and then nothing was sent.

        A route that has carried a message before and is now unroutable is gone (its peer closed): that raises
        :class:`TransportError` at once, and so does a new one that does not come up within ``handshake_timeout``.
        A served socket in this context at the other end handles the message before this returns (run to
        completion, docs/DESIGN.md §7.1).
        """
        delay = _BUSY_RETRY
        handshake_deadline = give_up = None
        zsock = self._zsock
        while True:
            try:
                _send(zsock, route, _MORE_NOBLOCK)
                for frame in frames[:-1]:
                    _send(zsock, frame, _MORE_NOBLOCK)
                _send(zsock, frames[-1], _NOBLOCK)
                self._fresh.discard(route)
                local = self._local.get(route)
                if local is not None:
                    local._run()
                    self._expect = True
                return True
            except zmq.Again:
                now = time.monotonic()
                give_up = give_up or (now + timeout if timeout is not None else None)
                if give_up is not None and now >= give_up:
                    return False
                self._wait(_POLLOUT, delay)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or route not in self._fresh:
                    self._forget_route(route)
                    raise _error("cannot send", exc, self) from exc
                now = time.monotonic()
                handshake_deadline = handshake_deadline or now + self.handshake_timeout
                give_up = give_up or (now + timeout if timeout is not None else None)
                if now > handshake_deadline:
                    self._forget_route(route)
                    raise TransportError("connection did not come up in time") from exc
                if give_up is not None and now >= give_up:
                    return False
                gevent.sleep(delay)  # our own new connection, not attached yet: tcp handshake in progress
            delay = min(delay * 2, _BUSY_RETRY_MAX)

    def _forget_route(self, route: bytes) -> None:
        for endpoint, known in self._routes.items():
            if known == route:
                self.forget(endpoint)
                return

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a received message; a sender that has gone away is not an error worth raising."""
        zsock = self._zsock
        try:
            _send(zsock, route, _MORE_NOBLOCK)
            for frame in frames[:-1]:
                _send(zsock, frame, _MORE_NOBLOCK)
            _send(zsock, frames[-1], _NOBLOCK)
        except zmq.ZMQError as exc:
            raise _error("cannot reply", exc, self) from exc
