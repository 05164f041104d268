"""One simulated peer: its socket, the client socket it has while it walks, and the protocol that gives them
meaning (docs/DESIGN.md §4.4, §7.1, §10). Nothing here knows a protocol's rules: :mod:`p2pzmq.protocols` does.

An idle peer holds one socket, bound at its one endpoint (a contact's ``server`` and ``client`` are that endpoint):
every ZeroMQ socket costs an fd, and one process may hold 20,000. It is *served*
(:meth:`GreenSocket.serve`): no greenlet, each message handed over from gevent's loop or at once by a sender in this
process. What a message is says who takes it, since the kinds of requests and commands never overlap: the
**server** answers other peers' requests (never blocking, before anyone waits for the answer); the **client** takes
the supervisor's commands. Quick commands (the table, one greedy step per target, the reads its protocol offers) are
answered on the spot. A command that walks the network (join, refresh, depart) gets a greenlet, the *runner*, and a
socket of the client's own for as long as it walks: the protocol's requests go out from it through the client's
:class:`~p2pzmq.rpc.Caller`, so the servers asked see the client as a party of its own, and only answers to them ever
reach it. Commands arriving meanwhile are kept for after. When nothing is left to do the runner closes that socket
(with its connections) and ends: an idle peer holds no greenlet (a parked greenlet costs about 8 KB) and one fd. A
timer makes the client refresh by itself after ``refresh_interval`` without a command.

A malformed or unexpected message is dropped and counted (``server`` for what reaches the peer's socket,
``client`` for what reaches the walking client's). Under simulated time the client keeps its socket between walks
(the engine accounts for messages in flight by peer, and a late reply to a closed socket would hold its clock).
The peer owns its runner, sockets and timer: ``stop`` ends them. If the protocol raises while serving, or the
runner dies of an error, the peer logs it once, counts it (``crashed``), marks itself dead and stops.
"""
from __future__ import annotations

import collections
import logging
import random
from typing import Callable

import gevent

from . import messages as m
from . import protocols
from .config import Config
from .errors import ProtocolError, TransportError
from .rpc import Caller, Counters, Request, Result
from .contact import Contact
from .endpoints import Endpoints
from .supervision import Group
from .transport import Context

log = logging.getLogger(__name__)

#: Commands that arrive while the runner waits for a reply are kept (up to this many) and handled afterwards.
MAX_PENDING_COMMANDS = 64
#: What the refresh timer queues: a refresh that nobody asked for, so nobody is answered.
_BY_ITSELF = m.Refresh(0, 1)
#: Commands that walk the network: the runner carries them out.
_WALKS = (m.Join, m.Refresh, m.Depart)


class Peer:
    """A peer with id ``peer_id``; sockets are bound on construction so others can reach it as soon as it exists."""

    def __init__(self, peer_id: int, *, ctx: Context, endpoints: Endpoints, config: Config, cookies: random.Random,
                 codec: m.Codec, counters: Counters, on_crash: Callable[["Peer"], None] | None = None,
                 engine=None) -> None:
        self.config = config
        self._codec = codec
        self.counters = counters
        self._on_crash = on_crash  # told once, after the peer is marked crashed (the network's crashed event)
        self._ctx = ctx
        self._sock = ctx.router()
        try:
            endpoint = self._sock.bind(endpoints.new("peer"), local_alias=endpoints.local_alias)
        except TransportError:
            self._sock.close()
            raise
        self.contact = Contact(peer_id, endpoint, endpoint)
        self._engine = engine  # simulated time (p2pzmq.simtime): the peer's messages go through it
        if engine is not None:
            self._sock.model(engine, peer_id)
            engine.register(peer_id, (endpoint,))
        # Lent the walking client's socket by the runner (None while idle): only replies to its requests reach it.
        self._rpc = Caller(None, codec, counters, cookies, where="client")
        descriptor = protocols.of(config)
        self.protocol = descriptor.start(config, self, cookies)
        self._requests = frozenset(descriptor.requests)
        # Commands answered on the spot, from the table, without a runner: the table, greedy steps, and the reads
        # the protocol offers (its descriptor's queries).
        self._quick = {m.ClientPeers: self._client_peers, m.FindPeers: self._find_peers,
                       m.ClientCounts: self._counts, **{kind: self.protocol.query for kind in descriptor.queries}}
        #: Requests this peer's server answered, and the walks it made by kind (what ClientCounts answers).
        self.served = 0
        self._walks = {m.Join: 0, m.Refresh: 0, m.Depart: 0}
        self._pending: collections.deque = collections.deque()  # (route or None, command) for the runner
        self._runner: gevent.Greenlet | None = None
        self._group = Group(lambda what, exc: self._crashed(exc), config.shutdown_timeout)  # the runner, a stopper
        self._idle = config.clock.timer(config.refresh_interval, config.refresh_interval, ref=False)
        self.alive = False
        #: Why this peer crashed, if it did (None while healthy or after a clean stop).
        self.failure: str | None = None

    @property
    def id(self) -> int:
        return self.contact.id

    @property
    def table(self):
        """The protocol's table of this peer."""
        return self.protocol.table

    def start(self) -> "Peer":
        # What reaches the socket from this context comes from senders that run it: other peers' walking clients
        # and the supervisor's command socket.
        self._sock.serve(self._on_message, self._crashed, settle=False)
        self._idle.start(self._refresh_by_itself)
        self.alive = True
        return self

    def stop(self) -> None:
        """Stop the runner (if any, with its socket), the timer and the peer's socket. Idempotent."""
        self.alive = False
        self._group.kill()
        self._idle.close()
        self._sock.close()
        if self._rpc.sock is not None:  # kept between walks under simulated time (see _run)
            self._rpc.sock.close()
            self._rpc.sock = None
        if self._engine is not None:
            self._engine.unregister(self.id, (self.contact.server,))

    @property
    def sockets(self) -> int:
        """How many sockets (so fds) the peer holds now: its own, and the client's while it walks."""
        return (not self._sock.closed) + (self._rpc.sock is not None)

    def _crashed(self, exc: BaseException) -> None:
        """The protocol or the runner failed: say so once, and take the whole peer down."""
        if self.failure is not None:
            return
        self.failure = repr(exc)
        self.alive = False
        self.counters["crashed"] += 1
        log.error("peer %s crashed: %s", self.id, self.failure)
        if self._on_crash is not None:
            self._on_crash(self)
        self._group.spawn("peer's stop", self.stop)  # not from inside the failing callback or greenlet

    # -- what protocols use ---------------------------------------------------------------------------------------

    @property
    def call(self):
        """The client's :meth:`Caller.call <p2pzmq.rpc.Caller.call>`: ``call(endpoint, kind, args, reply_kind,
        timeout)`` sends ``kind(req_id, cookie, *args)`` to another peer's server and returns its reply; raises
        :class:`~p2pzmq.errors.RpcTimeout` or another :class:`~p2pzmq.errors.TransportError`. Late, forged and
        misdirected replies are dropped and counted. (Protocols hold on to it: a walk calls it for every hop.)"""
        return self._rpc.call

    def call_many(self, calls: list[tuple[str, type, tuple, type]], window: int) -> list[Result]:
        """Several :meth:`call` s, ``(endpoint, kind, args, reply_kind)`` each, ``window`` in flight at a time, each
        window waiting at most ``client_timeout``; one :class:`~p2pzmq.rpc.Result` each, in order."""
        requests = [Request(endpoint, kind, args, reply_kind) for endpoint, kind, args, reply_kind in calls]
        return self._rpc.call_many(requests, self.config.client_timeout, window=window)

    def forget(self, endpoint: str) -> None:
        """Drop the walking client's connection to ``endpoint``."""
        if self._rpc.sock is not None:
            self._rpc.sock.forget(endpoint)

    # -- server ---------------------------------------------------------------------------------------------------

    def _on_message(self, frames: list[bytes]) -> None:
        """A message for the peer's socket: the protocol answers a request from another peer (on the path of every
        request: kept inline); a supervisor's command goes to the client; anything else is dropped."""
        try:
            msg = self._codec.decode(frames[1:])
        except ProtocolError as exc:
            self.counters.drop("server", exc.reason, exc)
            return
        if type(msg) not in self._requests:
            if self._understood(msg):
                self._on_command(frames[0], msg)
            else:
                self.counters.drop("server", "unexpected", type(msg).__name__)
            return
        reply = self.protocol.serve(msg)
        if reply is not None:
            try:
                self._sock.reply(frames[0], self._codec.encode(reply))
                self.counters["replies"] += 1
                self.served += 1
            except TransportError as exc:
                self.counters.drop("undeliverable", "undeliverable", exc)

    def _answer(self, route: bytes, reply) -> None:
        try:
            self._sock.reply(route, self._codec.encode(reply))
            self.counters["replies"] += 1
        except TransportError as exc:
            self.counters.drop("undeliverable", "undeliverable", exc)

    # -- client ---------------------------------------------------------------------------------------------------

    def _on_command(self, route: bytes, msg) -> None:
        """A command for the client: answered now if it is quick and the client idle, else kept for the runner (in
        order, up to a bound: a walk's commands wait for it to end)."""
        self._idle.again(self._refresh_by_itself)
        if self._runner is None:
            quick = self._quick.get(type(msg))
            if quick is not None:
                self._answer(route, quick(msg))
                return
        elif len(self._pending) >= MAX_PENDING_COMMANDS:
            self.counters.drop("server", "busy", type(msg).__name__)
            return
        self._pending.append((route, msg))
        self._wake()

    def _refresh_by_itself(self) -> None:
        """Nobody asked for anything for ``refresh_interval``: refresh by ourselves (docs/DESIGN.md §4.4)."""
        self._pending.append((None, _BY_ITSELF))
        self._wake()

    def _wake(self) -> None:
        if self._runner is None and self.alive:
            self._runner = self._group.spawn("peer's runner", self._run)

    def _run(self) -> None:
        """The runner: give the client a socket, handle what is pending, then close that socket (with its
        connections: each costs tens of KB) and end."""
        rpc = self._rpc
        try:
            if rpc.sock is None:
                rpc.sock = self._ctx.router(max_connections=self.config.max_connections,
                                            handshake_timeout=self.config.client_timeout, fail_fast=True)
                if self._engine is not None:
                    rpc.sock.model(self._engine, self.id)
            while self._pending:
                route, msg = self._pending.popleft()
                quick = self._quick.get(type(msg))
                reply = quick(msg) if quick is not None else self._walk(msg)
                if route is not None:
                    self._answer(route, reply)
                    self._idle.again(self._refresh_by_itself)
                    # sent from a greenlet: the send may have taken the fd's signal of a message that came meanwhile
                    self._sock.wake()
        finally:
            if rpc.sock is not None:
                if self._engine is None:
                    rpc.sock.close()
                    rpc.sock = None
                else:  # the engine holds simulated time for replies still in flight to it, by peer: keep it
                    rpc.sock.forget_all()
            self._runner = None

    def _understood(self, msg) -> bool:
        """True for a command this peer carries out: a walk, or a quick one its protocol answers."""
        return type(msg) in self._quick or isinstance(msg, _WALKS)

    def _client_peers(self, msg: m.ClientPeers) -> m.PeersReply:
        return m.PeersReply(msg.req_id, msg.cookie, self.protocol.contacts())

    def _counts(self, msg: m.ClientCounts) -> m.PeerCounts:
        walks = self._walks
        return m.PeerCounts(msg.req_id, msg.cookie, self.served, self._rpc.sent, self._rpc.failed, walks[m.Join],
                            walks[m.Refresh], walks[m.Depart])

    def _walk(self, msg) -> m.Done:
        kind = type(msg)
        self._walks[kind] += 1  # a refresh the peer makes by itself (§4.4) among the refreshes
        try:
            if kind is m.Join:
                self.protocol.join(msg.contact)
            elif kind is m.Refresh:
                self.protocol.refresh()
            else:
                self.protocol.depart()
        except TransportError as exc:
            # A walk turns timeouts into dead ends, so only a failed bootstrap gets here: the table stays as it was.
            log.warning("peer %s could not %s: %s", self.id, kind.__name__.lower(), exc)
        return m.Done(msg.req_id, msg.cookie)

    def _find_peers(self, msg: m.FindPeers) -> m.FoundPeers:
        """One greedy-routing step for each target: the closest entry of our own table (§4.8 net_status)."""
        closest = self.protocol.closest
        contacts: list[Contact] = []
        index: dict[int, int] = {}
        picks = []
        for target in msg.targets:
            contact = closest(target)
            pick = index.get(contact.id)
            if pick is None:
                pick = index[contact.id] = len(contacts)
                contacts.append(contact)
            picks.append(pick)
        return m.FoundPeers(msg.req_id, msg.cookie, contacts, picks)
