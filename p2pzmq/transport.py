"""The only module that imports ZeroMQ: context, green sockets, endpoints and connection reuse.

Sockets here are a lean green layer over pyzmq's non-blocking calls (DESIGN.md §3: about 2x the round-trip rate of
stock ``zmq.green``). A call that would block parks the calling greenlet on the socket's event fd in gevent's loop.
ZeroMQ's fd is edge-triggered and any socket call may consume its signal, so every wait re-checks ``EVENTS`` first;
with one owning greenlet per socket (the project's rule) no wake-up can be lost.

Every socket is created with ``LINGER 0`` and ``MAXMSGSIZE``; ROUTERs also get ``ROUTER_MANDATORY`` (otherwise
unroutable messages vanish silently). Routing ids for outgoing connections are never reused, because connecting twice
with one ``CONNECT_ROUTING_ID`` aborts the whole process. ``zmq.ZMQError`` never leaves this module: it becomes a
:class:`TransportError`.
"""
from __future__ import annotations

import collections
import itertools
import os
import weakref

import gevent
import zmq
from gevent.hub import get_hub

from .errors import ClosedError, TransportError

#: Sockets one context may hold; must be set before the first socket (libzmq's default is 1023).
MAX_SOCKETS = 32768
_READ = 1
_WRITE = 2
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

    It keeps track of its sockets so that :meth:`term` can close whatever an owner left open and never hang.
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
        self._closed = False

    def router(self, *, max_connections: int = 32) -> "RouterSocket":
        """A ROUTER socket: servers bind one, clients bind one and also connect it to servers on demand."""
        sock = self._make(RouterSocket, zmq.ROUTER)
        sock.max_connections = max_connections
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
        self._sockets.add(sock)
        return sock

    @property
    def open_sockets(self) -> int:
        """How many sockets of this context are still open (0 after a clean shutdown)."""
        return sum(1 for sock in list(self._sockets) if not sock.closed)

    def term(self) -> int:
        """Terminate the context, first closing whatever sockets their owners left open; returns how many that was
        (0 after a clean shutdown). Never blocks: every socket has LINGER 0."""
        if self._closed:
            return 0
        self._closed = True
        left_open = [sock for sock in list(self._sockets) if not sock.closed]
        for sock in left_open:
            sock.close()
        self._zctx.term()
        return len(left_open)


class GreenSocket:
    """A ZeroMQ socket whose blocking calls park only the calling greenlet.

    Only one greenlet may use a socket (its owner); timeouts are the caller's ``gevent.Timeout``.
    """

    def __init__(self, zsock: zmq.Socket) -> None:
        self._zsock = zsock
        self._watcher = get_hub().loop.io(zsock.getsockopt(zmq.FD), _READ)
        self.closed = False

    def bind(self, endpoint: str) -> str:
        """Bind and return the actual endpoint (``tcp://host:0`` becomes the chosen port)."""
        try:
            self._zsock.bind(endpoint)
            return self._zsock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot bind {endpoint}: {exc}") from exc

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
                self._zsock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                # POLLOUT is not reliable on a ROUTER with ROUTER_MANDATORY (it reports any pipe), so back off briefly.
                self._wait(zmq.POLLOUT, delay)
                delay = min(delay * 2, _BUSY_RETRY_MAX)
            except zmq.ZMQError as exc:
                raise self._error("send", exc) from exc

    def recv(self) -> list[bytes]:
        """Receive one multipart message, parking the greenlet until one arrives."""
        while True:
            try:
                return self._zsock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self._wait(zmq.POLLIN)
            except zmq.ZMQError as exc:
                raise self._error("recv", exc) from exc

    def _wait(self, event: int, timeout: float | None = None) -> None:
        """Park until ``event`` is possible (or ``timeout`` passes). Checks EVENTS before every wait (edge trigger)."""
        hub = get_hub()
        try:
            while not self._zsock.getsockopt(zmq.EVENTS) & event:
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
        self.max_connections = 32

    def route(self, endpoint: str) -> bytes:
        """The routing id for ``endpoint``, connecting (and evicting the least recently used) if needed."""
        route = self._routes.get(endpoint)
        if route is not None:
            self._routes.move_to_end(endpoint)
            return route
        while len(self._routes) >= self.max_connections:
            self.forget(next(iter(self._routes)))
        route = b"r%d" % next(self._next_route)
        try:
            self._zsock.setsockopt(zmq.CONNECT_ROUTING_ID, route)
            self._zsock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc
        self._routes[endpoint] = route
        return route

    def forget(self, endpoint: str) -> None:
        """Drop the connection to ``endpoint`` (if any)."""
        route = self._routes.pop(endpoint, None)
        if route is None:
            return
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
        """Send ``frames`` to ``route``; retries while a new tcp connection is still handshaking.

        Raises :class:`TransportError` at once for a route that is gone; a caller's ``gevent.Timeout`` bounds the
        retries for one that never comes up.
        """
        delay = _BUSY_RETRY
        while True:
            try:
                self._zsock.send_multipart([route, *frames], zmq.NOBLOCK)
                return
            except zmq.Again:
                self._wait(zmq.POLLOUT, delay)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or route not in self._routes.values():
                    raise self._error("send", exc) from exc
                gevent.sleep(delay)  # our own connection, not yet attached: tcp handshake in progress
            delay = min(delay * 2, _BUSY_RETRY_MAX)

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a received message; a sender that has gone away is not an error worth raising."""
        try:
            self._zsock.send_multipart([route, *frames], zmq.NOBLOCK)
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
