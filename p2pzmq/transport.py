"""The only module that imports ZeroMQ: context, green sockets and connection reuse (docs/DESIGN.md §3, §7.1).

A socket is used by one greenlet that owns it (a call that would block parks that greenlet on the socket's fd), or
*served* (:mod:`p2pzmq.serving`: a handler gets each message from the loop, or at once from a sender in this context).
docs/DESIGN.md §7.1 explains the edge-triggered fd and what each pyzmq call costs. Every socket has ``LINGER 0`` and
``MAXMSGSIZE``; ROUTERs also ``ROUTER_MANDATORY`` (otherwise unroutable messages vanish silently). ``zmq.ZMQError``
never leaves this module: it becomes a :class:`TransportError`.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
from typing import Iterator

import zmq
import zmq.backend
from gevent.hub import Waiter, get_hub
from zmq.utils.monitor import parse_monitor_message

from .clock import REAL, Clock
from .errors import ClosedError, ProtocolError, TransportError
from .routes import Routes
from .serving import Served, wait_on

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
#: What a monitor reports: connections that came up, attempts that failed (libzmq retries) and failed handshakes.
_REPORTED = int(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
#: Numbers monitor endpoints: pyzmq's default name (the socket's fd) is still bound while a closed monitor is reaped.
_MONITORS = itertools.count(1)
_BUSY_RETRY = 0.00005  # a full queue on loopback drains within microseconds: poll for it finely
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
    owner left open and never hang. Every wait of its sockets, and every deadline, is on ``clock`` (their
    ``clock`` attribute: the request layer's deadlines use it too).
    """

    _namespaces = itertools.count(1)

    def __init__(self, *, max_sockets: int = MAX_SOCKETS, max_message_bytes: int = 1 << 20,
                 tcp_backlog: int = 4096, clock: Clock = REAL) -> None:
        self._zctx = zmq.Context(1)
        self.clock = clock
        self._zctx.set(zmq.MAX_SOCKETS, max_sockets)
        self.max_message_bytes = max_message_bytes
        self.tcp_backlog = tcp_backlog
        self.namespace = f"p2pzmq-{os.getpid()}-{next(self._namespaces)}"
        self._sockets: set[GreenSocket] = set()
        #: inproc endpoints currently bound in this context, and their sockets. libzmq lets a socket connect to an
        #: unbound inproc endpoint and keeps that pending connection, with every message sent to it, until the
        #: context ends, even after a disconnect: dialling a dead peer's endpoint would leak memory forever.
        self._inproc_bound: dict[str, GreenSocket] = {}
        #: tcp endpoints bound in this context with an inproc alias (see GreenSocket.bind): tcp endpoint -> alias.
        self._aliases: dict[str, str] = {}
        self._closed = False
        _OPEN_CONTEXTS.add(self)

    def router(self, *, max_connections: int = 32, handshake_timeout: float = 2.0, hwm: int | None = None,
               fail_fast: bool = False) -> "RouterSocket":
        """A ROUTER socket: servers bind one, clients bind one and also connect it to servers on demand. ``hwm``: the
        send and receive high-water marks (messages queued per connection, 1000 by default; a sender that reaches
        it waits, green, until the receiver drains its queue). ``fail_fast``: see :class:`RouterSocket`."""
        sock = self._make(RouterSocket, zmq.ROUTER)
        sock.max_connections, sock.handshake_timeout, sock.fail_fast = max_connections, handshake_timeout, fail_fast
        if hwm is not None:
            sock.set_hwm(hwm)
        return sock

    def req(self) -> "GreenSocket":
        """A REQ socket, for control clients."""
        return self._make(GreenSocket, zmq.REQ)

    def pub(self, hwm: int) -> "PubSocket":
        """A PUB socket queueing at most ``hwm`` messages per subscriber (see :class:`PubSocket`)."""
        sock = self._make(PubSocket, zmq.PUB)
        with _translated("cannot set up a PUB socket", sock):
            sock._zsock.setsockopt(zmq.SNDHWM, hwm)
            sock._zsock.setsockopt(zmq.XPUB_NODROP, 1)
        return sock

    def sub(self, hwm: int | None = None) -> "GreenSocket":
        """A SUB socket subscribed to every message (``recv`` takes them); ``hwm``: messages it queues unread."""
        sock = self._make(GreenSocket, zmq.SUB)
        with _translated("cannot set up a SUB socket", sock):
            if hwm is not None:
                sock._zsock.setsockopt(zmq.RCVHWM, hwm)
            sock._zsock.setsockopt(zmq.SUBSCRIBE, b"")
        return sock

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
        sock = cls(zsock, self.clock)
        sock._inproc_bound = self._inproc_bound
        sock._aliases = self._aliases
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

    _routed = False  # whether every message starts with a routing frame (a ROUTER's)

    def __init__(self, zsock: zmq.Socket, clock: Clock = REAL) -> None:
        super().__init__()
        self._zsock = zsock
        self.clock = clock
        self._watcher = get_hub().loop.io(zsock.getsockopt(zmq.FD), _READ)
        self.closed = False
        self._inproc_bound: dict[str, GreenSocket] = {}  # the context's registry (see Context)
        self._aliases: dict[str, str] = {}  # the context's tcp endpoints with an inproc alias (see Context)
        self._siblings: set[GreenSocket] = set()  # the context's open sockets (see Context)
        self._bound: list[str] = []
        self._pollin = [(zsock, _POLLIN)]  # zmq_poll's argument, made once
        self._expect = False  # a reply was probably just queued for us by a server we ran (see RouterSocket.send_to)
        # Simulated time (see model): the engine, the peer this socket belongs to, and what the engine has handed
        # back for a time the socket was not served. None: today's socket, which pays nothing for the model.
        self._engine = None
        self._owner: int | None = None
        self._arrived: collections.deque | None = None

    def model(self, engine, owner: int) -> None:
        """Put this socket of peer ``owner`` under simulated time (:mod:`p2pzmq.simtime`): every message that
        arrives with a header frame is given to ``engine``, which hands it back through :meth:`_arrive` when due."""
        self._engine, self._owner, self._arrived = engine, owner, collections.deque()

    def bind(self, endpoint: str, local_alias: bool = False) -> str:
        """Bind and return the actual endpoint (``tcp://host:0`` becomes the chosen port).

        ``local_alias``: a tcp endpoint is also bound under an inproc name that sockets of this context dial instead
        (:meth:`RouterSocket.route`): peers of one process then talk over inproc, run to completion, while the rest
        of the network reaches them over tcp. An inproc bind costs no fd."""
        with _translated(f"cannot bind {endpoint}", self):
            self._zsock.bind(endpoint)
            bound = self._zsock.getsockopt_string(zmq.LAST_ENDPOINT)
            if local_alias and not bound.startswith("inproc://"):
                alias = f"inproc://{bound}"
                self._zsock.bind(alias)
                self._aliases[bound] = alias
                self._bound.append(bound)
                bound, endpoint = alias, bound
            else:
                endpoint = bound
        if bound.startswith("inproc://"):
            self._inproc_bound[bound] = self
            self._bound.append(bound)
        return endpoint

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
                if likely or self._arrived or _poll(self._pollin, 0):
                    frames = self._take()
                    if frames is not None:
                        return frames
                if timeout is not None:
                    now = self.clock.now()
                    deadline = deadline or now + timeout
                    timeout = deadline - now
                if not self._park(timeout):
                    return None
                likely = True
        except zmq.ZMQError as exc:
            raise _error("cannot receive", exc, self) from exc

    def _take(self) -> list[bytes] | None:
        """The message at the head of the queue, or None if there is none, found without asking first (§7.1): its
        frames arrive together, so only the first receive can find nothing. A ROUTER's routing frame, always
        followed by more, is received as bytes (cheaper than a frame object). Under simulated time, what the engine
        handed back comes first, and a message with a header goes to the engine instead."""
        if self._arrived is not None:
            return self._take_modelled()
        return self._take_raw()

    def _take_modelled(self) -> list[bytes] | None:
        arrived = self._arrived
        while not arrived:
            frames = self._take_raw()
            if frames is None or len(frames) != 3:  # a peer message with its header: [route, header, body]
                return frames
            try:
                sender = self._engine.received(self, self._owner, frames)
            except ProtocolError as exc:
                self._engine.counts[f"bad_{exc.reason}"] += 1
                continue
            self._received_from(frames[0], sender)
            if not arrived and not _poll(self._pollin, 0):  # cheaper than a failed take; it too readies the fd
                return None
        return arrived.popleft()

    def _readable(self) -> None:
        """Under simulated time, a parked greenlet is woken only for what it can take now: the fd's messages with a
        header go to the engine from here, which spares the greenlet a wake-up and a wait for each of them."""
        if self._arrived is not None and self._handler is None and self._waiter is not None:
            frames = self._take_modelled()
            if frames is None:
                return
            self._arrived.appendleft(frames)
        Served._readable(self)

    def _received_from(self, route: bytes, sender: int) -> None:
        """A modelled message from peer ``sender`` came in on ``route`` (a server remembers whom it answers)."""

    def _arrive(self, frames: list[bytes]) -> None:
        """The engine hands back a message that is due now: to the handler if the socket is served and free, else
        queued for whoever takes next (a greenlet parked on the socket is woken)."""
        handler = self._handler
        if handler is not None and not self._draining:
            self._draining = True
            try:
                handler(frames)
            except Exception as exc:  # the handler's owner decides what a failure means; the engine must go on
                self._failed(exc)
            finally:
                self._draining = False
            return
        self._arrived.append(frames)
        if handler is not None:
            self._drain_soon()
        elif self._waiter is not None:
            get_hub().loop.run_callback(self._wake_parked)

    def _wake_parked(self) -> None:
        if self._waiter is not None:
            self._waiter.switch(None)

    def _take_raw(self) -> list[bytes] | None:
        zsock = self._zsock
        try:
            parts = [_recv(zsock, _NOBLOCK)] if self._routed else []
            while True:
                frame = _recv(zsock, _NOBLOCK, False)
                parts.append(frame.bytes)
                if not frame.more:
                    return parts
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            raise _error("cannot receive", exc, self) from exc

    def _queued(self) -> bool:  # (zmq_poll: see docs/DESIGN.md §7.1 for why not EVENTS)
        if self._arrived:
            return True
        try:
            return bool(_poll(self._pollin, 0))
        except zmq.ZMQError as exc:
            raise _error("cannot poll", exc, self) from exc

    def _park(self, timeout: float | None) -> bool:
        """Wait for the fd to signal (see serving.py); False if ``timeout`` passed first."""
        if timeout is not None and timeout <= 0:
            return False
        self._waiter = Waiter()
        self._listen()
        try:
            return self.clock.wait(self._waiter, timeout)
        finally:
            self._waiter = None

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
            self._aliases.pop(endpoint, None)
        self._handler = None
        self._watcher.close()
        self._zsock.close(0)
        if self._engine is not None:
            self._engine.closed(self._owner)


class PubSocket(GreenSocket):
    """A PUB socket that never waits and says what it dropped.

    Plain PUB drops silently at a subscriber's high-water mark. This one is made with ``XPUB_NODROP``, so a message
    that some subscriber's full queue cannot take fails at once (``zmq.Again``, never a wait): :meth:`publish`
    drops it, for every subscriber, and returns False. (Sending it again without the option would reach the others,
    but libzmq then takes the full subscriber out of its set until it reads, and its later losses go uncounted.)
    """

    def publish(self, frame: bytes) -> bool:
        """Queue ``frame`` for every subscriber; False, and nobody gets it, if a subscriber's queue is full."""
        try:
            _send(self._zsock, frame, _NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            raise _error("cannot publish", exc, self) from exc


class RouterSocket(GreenSocket):
    """A ROUTER that sends to endpoints: it connects on demand and keeps a bounded LRU of live connections
    (:class:`~p2pzmq.routes.Routes`; each connection gets a fresh routing id).

    ``fail_fast``: the first send on a new tcp connection waits until a monitor reports it up; it fails as soon as
    it is refused (a dead peer's port), after ``handshake_timeout`` if it is silent (docs/DESIGN.md §7.1).
    """

    _routed = True

    def __init__(self, zsock: zmq.Socket, clock: Clock = REAL) -> None:
        super().__init__(zsock, clock)
        self._routes = Routes()
        self._dialled: dict[str, str] = {}  # endpoint -> the inproc alias dialled for it (see GreenSocket.bind)
        self._monitor: zmq.Socket | None = None
        self._reports = None  # the io watcher of the monitor's fd
        self.fail_fast = False
        self.handshake_timeout = 2.0
        self.max_connections = 32
        #: Under simulated time: route -> the peer at its other end (None: in another process), for every route a
        #: modelled message goes out on: the client's connections to servers, and the server's senders.
        self._route_peer: dict[bytes, int | None] = {}

    def _received_from(self, route: bytes, sender: int) -> None:
        self._route_peer[route] = sender

    def route(self, endpoint: str) -> bytes:
        """The routing id for ``endpoint``, connecting (and evicting the least recently used) if needed."""
        route = self._routes.get(endpoint)
        if route is not None:
            return route
        dial = self._aliases.get(endpoint, endpoint)  # a tcp endpoint bound in this context: its inproc alias
        local = self._inproc_bound.get(dial)
        if local is None and dial.startswith("inproc://"):
            raise TransportError(f"nothing is bound at {endpoint} (a peer that has gone)")
        while len(self._routes) >= self.max_connections:
            self.forget(self._routes.oldest())
        route = self._routes.new_id()
        with _translated(f"cannot connect to {endpoint}", self):
            if local is None and self.fail_fast:
                self._failures()  # reports of earlier connections to the endpoint are no news about this one
            self._zsock.setsockopt(zmq.CONNECT_ROUTING_ID, route)
            self._zsock.connect(dial)
        if dial != endpoint:
            self._dialled[endpoint] = dial
        self._routes.add(endpoint, route, local)
        if self._engine is not None:
            self._route_peer[route] = self._engine.peer_at(endpoint)
        return route

    def crosses(self, route: bytes) -> bool:
        """Whether ``route`` leads out of this context (another process, or tcp within this one)."""
        return route not in self._routes.local

    def _failures(self) -> None:
        """Start the monitor, or hand the routes all it reported (then its fd signals the next report, §7.1)."""
        if self._monitor is None:
            self._monitor = self._monitor_socket()
            self._reports = get_hub().loop.io(self._monitor.getsockopt(zmq.FD), _READ)
            return
        with contextlib.suppress(zmq.Again):
            while True:
                report = parse_monitor_message(self._monitor.recv_multipart(_NOBLOCK))
                self._routes.reported(report["endpoint"].decode(), report["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def _monitor_socket(self) -> zmq.Socket:
        """The receiving end of a new monitor, its queue unbounded. libzmq's I/O thread sends each report with a
        blocking send while it holds the socket's monitor lock: with a high-water mark, reports nobody read (a dead
        peer's reconnect attempts, ~7 a second each) fill the queue, that thread waits for ever, and so does closing
        the socket (``die`` hung so). An inproc pipe's limit in that direction is unbounded when the connecting
        end's RCVHWM is 0, hence connecting ourselves instead of pyzmq's ``get_monitor_socket``."""
        endpoint = f"inproc://p2pzmq-monitor-{next(_MONITORS)}"
        self._zsock.monitor(endpoint, _REPORTED)
        monitor = self._zsock.context.socket(zmq.PAIR)
        for option in (zmq.LINGER, zmq.RCVHWM, zmq.SNDHWM):
            monitor.setsockopt(option, 0)
        monitor.connect(endpoint)
        return monitor

    def _connection(self, route: bytes, timeout: float | None) -> bool:
        """Wait until the new connection of ``route`` is up; False if ``timeout`` passes first (see the class). On
        the wall clock whatever the socket's: a tcp connection comes up in the kernel and libzmq's I/O thread, outside
        simulated time (docs/DESIGN.md §16)."""
        clock = REAL
        now = clock.now()
        handshake = now + self.handshake_timeout
        give_up = now + (self.handshake_timeout if timeout is None else timeout)
        with _translated("cannot read the monitor", self):
            while True:
                self._failures()
                if self._routes.is_up(route):
                    return True
                refused = self._routes.has_failed(route)
                if refused or now >= handshake:
                    self.forget(self._routes.endpoint_of(route))
                    raise TransportError("connection refused" if refused else "connection did not come up in time")
                if now >= give_up:
                    return False
                wait_on(self._reports, min(handshake, give_up) - now, clock)
                now = clock.now()

    def forget(self, endpoint: str | None) -> None:
        """Drop the connection to ``endpoint`` (if any)."""
        route = self._routes.pop(endpoint)
        if route is not None:
            self._route_peer.pop(route, None)
            dialled = self._dialled.pop(endpoint, endpoint)
            with contextlib.suppress(zmq.ZMQError):  # already gone: disconnecting is best effort by nature
                self._zsock.disconnect(dialled)

    def forget_all(self) -> None:
        """Drop every outgoing connection and the monitor (an idle peer holds none: each costs tens of KB)."""
        for endpoint in self._routes:
            self.forget(endpoint)
        if self._monitor is not None and not self.closed:
            with _translated("cannot stop the monitor", self):
                self._zsock.disable_monitor()
                self._reports.close()
                self._monitor.close(0)
        self._monitor = None

    def close(self) -> None:
        self.forget_all()
        super().close()

    @property
    def connections(self) -> int:
        return len(self._routes)

    def send_to(self, route: bytes, frames: list[bytes], timeout: float | None = None) -> bool:
        """Send ``frames`` to ``route``; False if ``timeout`` seconds pass first (the high-water mark holds the
        message back, or the connection is still coming up), and then nothing was sent. An unroutable route is gone
        (its peer closed), a new one refused or not up in time (``fail_fast``): :class:`TransportError`. A served
        socket in this context at the other end handles the message before this returns (run to completion, §7.1).
        """
        engine = self._engine
        if self._monitor is not None and self._routes.coming_up(route):
            if engine is None:
                if not self._connection(route, timeout):
                    return False
            else:
                with engine.wall_wait():
                    if not self._connection(route, timeout):
                        return False
        if engine is not None:  # simulated time: the header in front, and a hold until the receiver has it
            frames = [engine.stamp(self._owner), *frames]
            if self._send_to(route, frames, timeout):
                engine.sent(self._route_peer.get(route))
                return True
            return False
        return self._send_to(route, frames, timeout)

    def _send_to(self, route: bytes, frames: list[bytes], timeout: float | None) -> bool:
        delay = _BUSY_RETRY
        give_up = None
        zsock = self._zsock
        while True:
            try:
                _send(zsock, route, _MORE_NOBLOCK)
                for frame in frames[:-1]:
                    _send(zsock, frame, _MORE_NOBLOCK)
                _send(zsock, frames[-1], _NOBLOCK)
                self._routes.carried(route)
                local = self._routes.local.get(route)
                if local is not None:
                    local._run()
                    self._expect = True
                return True
            except zmq.Again:
                now = self.clock.now()
                give_up = give_up or (now + timeout if timeout is not None else None)
                if give_up is not None and now >= give_up:
                    return False
                self._wait(_POLLOUT, delay)
                delay = min(delay * 2, _BUSY_RETRY_MAX)
            except zmq.ZMQError as exc:  # unroutable: its peer closed (libzmq attaches a new route at connect)
                self.forget(self._routes.endpoint_of(route))
                raise _error("cannot send", exc, self) from exc

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a received message; a sender that has gone away is not an error worth raising."""
        engine = self._engine
        if engine is not None and route in self._route_peer:  # a peer's request: the reply is modelled too
            frames = [engine.stamp(self._owner), *frames]
            self._send_reply(route, frames)
            engine.sent(self._route_peer[route])
            return
        self._send_reply(route, frames)

    def _send_reply(self, route: bytes, frames: list[bytes]) -> None:
        zsock = self._zsock
        try:
            _send(zsock, route, _MORE_NOBLOCK)
            for frame in frames[:-1]:
                _send(zsock, frame, _MORE_NOBLOCK)
            _send(zsock, frames[-1], _NOBLOCK)
        except zmq.ZMQError as exc:
            raise _error("cannot reply", exc, self) from exc
