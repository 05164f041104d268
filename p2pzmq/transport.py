"""The only module that imports ZeroMQ: context, green sockets, endpoints and connection reuse.

Sockets here are a lean green layer over pyzmq's non-blocking calls (DESIGN.md §3: about 2x the round-trip rate of
stock ``zmq.green``). A call that would block parks the calling greenlet on the socket's event fd in gevent's loop.
ZeroMQ's fd signals pending *commands*, not messages, and any socket call may consume that signal. A receive that
fails with EAGAIN has just drained the command mailbox, so parking right after it cannot miss a wake-up: the next
message's command makes the fd readable again. So ``recv`` tries first and parks only after EAGAIN (no ``EVENTS``
call, which costs a syscall), and waits for room to send re-check ``EVENTS`` before parking. With one owning
greenlet per socket (the project's rule) nothing else can consume the signal in between. Frames are sent and
received one by one with plain-int flags: pyzmq's ``*_multipart`` helpers and its enum arithmetic cost more than
the messages themselves (tests/test_transport_green.py covers wake-ups and back-pressure).

Every socket is created with ``LINGER 0`` and ``MAXMSGSIZE``; ROUTERs also get ``ROUTER_MANDATORY`` (otherwise
unroutable messages vanish silently). Routing ids for outgoing connections are never reused, because connecting twice
with one ``CONNECT_ROUTING_ID`` aborts the whole process. ``zmq.ZMQError`` never leaves this module: it becomes a
:class:`TransportError`.
"""
from __future__ import annotations

import collections
import itertools
import os
import time
import weakref

import gevent
import zmq
from gevent.hub import get_hub

from .errors import ClosedError, TransportError

#: Sockets one context may hold; must be set before the first socket (libzmq's default is 1023).
MAX_SOCKETS = 32768
_READ = 1
_WRITE = 2
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK
_EVENTS = int(zmq.EVENTS)
_POLLOUT = int(zmq.POLLOUT)
_BUSY_RETRY = 0.00005  # a loopback tcp handshake takes well under a millisecond: poll for it finely
_BUSY_RETRY_MAX = 0.05


def zmq_version() -> str:
    """Version of the libzmq and pyzmq in use, for reports."""
    return f"libzmq {zmq.zmq_version()}, pyzmq {zmq.pyzmq_version()}"


def curve_keypair() -> tuple[bytes, bytes]:
    """A new CURVE key pair (public, secret), each 40 Z85 characters."""
    if not zmq.has("curve"):
        raise TransportError("this libzmq was built without CURVE security")
    return zmq.curve_keypair()


class Context:
    """One ZeroMQ context per process or per simulated network (inproc endpoints live inside one context).

    It keeps track of its sockets so that :meth:`term` can close whatever an owner left open and never hang. A
    context dropped without :meth:`term` is terminated the same way when it is collected: in a garbage cycle the
    weak references are cleared before any finaliser runs, so pyzmq's own ``Context.__del__`` would find no socket
    to close and block forever in ``zmq_ctx_term``. Its finaliser therefore holds the open libzmq sockets strongly.
    """

    _namespaces = itertools.count(1)

    def __init__(self, *, max_sockets: int = MAX_SOCKETS, max_message_bytes: int = 1 << 20,
                 tcp_backlog: int = 4096) -> None:
        self._zctx = zmq.Context(1)
        self._zctx.set(zmq.MAX_SOCKETS, max_sockets)
        self.max_message_bytes = max_message_bytes
        self.tcp_backlog = tcp_backlog
        self.namespace = f"p2pzmq-{os.getpid()}-{next(self._namespaces)}"
        self._sockets: weakref.WeakSet[GreenSocket] = weakref.WeakSet()
        #: inproc endpoints currently bound in this context. libzmq lets a socket connect to an unbound inproc
        #: endpoint and keeps that pending connection, with every message sent to it, until the context ends,
        #: even after a disconnect: dialling a dead peer's endpoint would leak memory (and descriptors) forever.
        self._inproc_bound: set[str] = set()
        self._open: set[zmq.Socket] = set()  # libzmq sockets not closed yet (see the class docstring)
        self._finalizer = weakref.finalize(self, _release, self._zctx, self._open)
        self._finalizer.atexit = False  # a process that is ending needs no orderly close
        self._closed = False

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
        try:
            zsock = self._zctx.socket(kind)
            zsock.setsockopt(zmq.LINGER, 0)
            zsock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
            zsock.setsockopt(zmq.BACKLOG, self.tcp_backlog)
            if kind == zmq.ROUTER:
                zsock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot create socket: {exc}") from exc
        sock = cls(zsock)
        sock._inproc_bound = self._inproc_bound
        sock._open = self._open
        self._open.add(zsock)
        self._sockets.add(sock)
        return sock

    def term(self) -> int:
        """Terminate the context, first closing whatever sockets their owners left open; returns how many that was
        (0 after a clean shutdown). Never blocks: every socket has LINGER 0."""
        if self._closed:
            return 0
        self._closed = True
        left_open = [sock for sock in list(self._sockets) if not sock.closed]
        for sock in left_open:
            sock.close()
        self._finalizer()  # terminates the libzmq context, once
        return len(left_open)


def _release(zctx: zmq.Context, open_sockets: set) -> None:
    """Close the libzmq sockets still open, then terminate the context (which would otherwise wait for them)."""
    for zsock in list(open_sockets):
        zsock.close(0)
    open_sockets.clear()
    zctx.term()


class GreenSocket:
    """A ZeroMQ socket whose blocking calls park only the calling greenlet.

    Only one greenlet may use a socket (its owner); timeouts are the caller's ``gevent.Timeout``.
    """

    def __init__(self, zsock: zmq.Socket) -> None:
        self._zsock = zsock
        self._watcher = get_hub().loop.io(zsock.getsockopt(zmq.FD), _READ)
        self.closed = False
        self._inproc_bound: set[str] = set()  # the context's registry (see Context)
        self._open: set[zmq.Socket] = set()  # the context's open libzmq sockets (see Context)
        self._bound: list[str] = []

    def bind(self, endpoint: str) -> str:
        """Bind and return the actual endpoint (``tcp://host:0`` becomes the chosen port)."""
        try:
            self._zsock.bind(endpoint)
            bound = self._zsock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot bind {endpoint}: {exc}") from exc
        if bound.startswith("inproc://"):
            self._inproc_bound.add(bound)
            self._bound.append(bound)
        return bound

    def set_hwm(self, hwm: int) -> None:
        """Send and receive high-water marks; affects connections made after the call."""
        try:
            self._zsock.setsockopt(zmq.SNDHWM, hwm)
            self._zsock.setsockopt(zmq.RCVHWM, hwm)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot set the high-water mark: {exc}") from exc

    def curve_server(self, public: bytes, secret: bytes) -> None:
        """Accept only CURVE-encrypted peers that know our public key (before ``bind``)."""
        self._secure({zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret})

    def curve_client(self, server_public: bytes, public: bytes, secret: bytes) -> None:
        """Talk CURVE to servers holding ``server_public`` (before ``connect``); plain servers never answer."""
        self._secure({zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret})

    def _secure(self, options: dict) -> None:
        try:
            for option, value in options.items():
                self._zsock.setsockopt(option, value)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot set CURVE keys: {exc}") from exc

    def connect(self, endpoint: str) -> None:
        try:
            self._zsock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc

    def send(self, frames: list[bytes]) -> None:
        """Send one multipart message, waiting (green) while the high-water mark holds it back."""
        delay = _BUSY_RETRY
        while True:
            try:
                self._send_frames(frames)
                return
            except zmq.Again:
                # POLLOUT is not reliable on a ROUTER with ROUTER_MANDATORY (it reports any pipe), so back off briefly.
                self._wait(_POLLOUT, delay)
                delay = min(delay * 2, _BUSY_RETRY_MAX)
            except zmq.ZMQError as exc:
                raise self._error("send", exc) from exc

    def _send_frames(self, frames: list[bytes]) -> None:
        """Queue one multipart message without blocking (all frames or, on EAGAIN at the first, none)."""
        send = self._zsock.send
        for frame in frames[:-1]:
            send(frame, _MORE_NOBLOCK)
        send(frames[-1], _NOBLOCK)

    def recv(self) -> list[bytes]:
        """Receive one multipart message, parking the greenlet until one arrives."""
        receive = self._zsock.recv
        while True:
            try:
                frame = receive(_NOBLOCK, copy=False)
            except zmq.Again:
                frame = None
            except zmq.ZMQError as exc:
                raise self._error("recv", exc) from exc
            if frame is None:
                # EAGAIN drained the command mailbox: the fd will signal the next arrival (module docstring). Parked
                # outside the except block, so thousands of idle sockets do not each keep an exception alive.
                get_hub().wait(self._watcher)
                continue
            try:
                parts = [frame.bytes]
                while frame.more:  # the rest of a multipart message arrives with its first frame
                    frame = receive(_NOBLOCK, copy=False)
                    parts.append(frame.bytes)
            except zmq.ZMQError as exc:
                raise self._error("recv", exc) from exc
            return parts

    def _wait(self, event: int, timeout: float | None = None) -> None:
        """Park until ``event`` is possible (or ``timeout`` passes). Checks EVENTS before every wait (edge trigger)."""
        hub = get_hub()
        try:
            while not self._zsock.getsockopt(_EVENTS) & event:
                if timeout is None:
                    hub.wait(self._watcher)
                else:
                    with gevent.Timeout(timeout, False):
                        hub.wait(self._watcher)
                    return
        except zmq.ZMQError as exc:
            raise self._error("poll", exc) from exc

    def _error(self, what: str, exc: zmq.ZMQError) -> TransportError:
        if self.closed or exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
            return ClosedError(f"{what} on a closed socket")
        return TransportError(f"{what} failed: {exc}")

    def close(self) -> None:
        """Close now; idempotent. Pending outgoing messages are dropped (LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        self._inproc_bound.difference_update(self._bound)
        self._open.discard(self._zsock)
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
        self.handshake_timeout = 2.0
        self.max_connections = 32

    def route(self, endpoint: str) -> bytes:
        """The routing id for ``endpoint``, connecting (and evicting the least recently used) if needed."""
        route = self._routes.get(endpoint)
        if route is not None:
            self._routes.move_to_end(endpoint)
            return route
        if endpoint.startswith("inproc://") and endpoint not in self._inproc_bound:
            raise TransportError(f"nothing is bound at {endpoint} (a peer that has gone)")
        while len(self._routes) >= self.max_connections:
            self.forget(next(iter(self._routes)))
        route = b"r%d" % next(self._next_route)
        try:
            self._zsock.setsockopt(zmq.CONNECT_ROUTING_ID, route)
            self._zsock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc
        self._routes[endpoint] = route
        self._fresh.add(route)
        return route

    def forget(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` (if any)."""
        route = self._routes.pop(endpoint, None)
        if route is None:
            return
        self._fresh.discard(route)
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

    def send_to(self, route: bytes, frames: list[bytes]) -> None:
        """Send ``frames`` to ``route``, waiting up to ``handshake_timeout`` for a connection that is still coming up.

        A route that has carried a message before and is now unroutable is gone (its peer closed): that raises
        :class:`TransportError` at once, and so does a new one that does not come up in time.
        """
        delay = _BUSY_RETRY
        deadline = None
        while True:
            try:
                self._send_frames([route, *frames])
                self._fresh.discard(route)
                return
            except zmq.Again:
                self._wait(_POLLOUT, delay)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or route not in self._fresh:
                    self._forget_route(route)
                    raise self._error("send", exc) from exc
                deadline = deadline or time.monotonic() + self.handshake_timeout
                if time.monotonic() > deadline:
                    self._forget_route(route)
                    raise TransportError("connection did not come up in time") from exc
                gevent.sleep(delay)  # our own new connection, not attached yet: tcp handshake in progress
            delay = min(delay * 2, _BUSY_RETRY_MAX)

    def _forget_route(self, route: bytes) -> None:
        for endpoint, known in self._routes.items():
            if known == route:
                self.forget(endpoint)
                return

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a received message; a sender that has gone away is not an error worth raising."""
        try:
            self._send_frames([route, *frames])
        except zmq.ZMQError as exc:
            raise self._error("reply", exc) from exc


class Endpoints:
    """Makes bind addresses for one transport, so peer code never spells ``inproc://`` or ``tcp://`` itself."""

    def __init__(self, transport: str, namespace: str, host: str = "127.0.0.1") -> None:
        if transport not in ("inproc", "tcp"):
            raise TransportError(f"unknown transport {transport!r}")
        self.transport = transport
        self.namespace = namespace
        self.host = host
        self._serial = itertools.count(1)

    def new(self, role: str) -> str:
        """A fresh bind address for a socket playing ``role`` (``server``, ``client``, ...)."""
        if self.transport == "inproc":
            return f"inproc://{self.namespace}/{role}/{next(self._serial)}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:0"
