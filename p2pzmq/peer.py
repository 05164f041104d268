"""One simulated peer: a server socket and a client socket, and the protocol that gives them meaning
(docs/DESIGN.md §4.4, §10). Nothing here knows a protocol's rules: :mod:`p2pzmq.protocols` does.

The **server** answers other peers. It has no greenlet: its socket is *served* (:meth:`GreenSocket.serve`), so each
request is handed to the protocol from gevent's loop, or at once by a sender in this process, and answered before
anyone waits for it. A server never blocks.

The **client** takes the supervisor's commands on its own socket. While idle it is served too: quick commands (the
table, one greedy step per target, the reads its protocol offers) are answered on the spot. A command that walks the
network (join, refresh, depart) gets a greenlet, the *runner*, which owns the client socket while it runs, sends the
protocol's requests through the client's :class:`~p2pzmq.rpc.Caller` (commands arriving meanwhile are kept for
after), and hands the socket back when nothing is left to do. An idle peer therefore holds no greenlet at all (a
parked greenlet costs about 8 KB). A timer makes the client refresh by itself after ``refresh_interval`` without a
command.

A malformed or unexpected message is dropped and counted. The peer owns its runner, sockets and timer: ``stop``
ends them. If the protocol raises while serving, or the runner dies of an error, the peer logs it once, counts it
(``crashed``), marks itself dead and stops.
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
from .transport import Context, RouterSocket

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
        self._server_sock = ctx.router()
        self._client_sock = ctx.router(max_connections=config.max_connections,
                                       handshake_timeout=config.client_timeout, fail_fast=True)
        try:
            server = self._server_sock.bind(endpoints.new("server"))
            client = self._client_sock.bind(endpoints.new("client"))
        except TransportError:
            self._close_sockets()
            raise
        self.contact = Contact(peer_id, server, client)
        self._engine = engine  # simulated time (p2pzmq.simtime): both sockets' peer messages go through it
        if engine is not None:
            self._server_sock.model(engine, peer_id)
            self._client_sock.model(engine, peer_id)
            engine.register(peer_id, (server, client))
        self._rpc = Caller(self._client_sock, codec, counters, cookies, where="client", on_unmatched=self._keep)
        descriptor = protocols.of(config)
        self.protocol = descriptor.start(config, self, cookies)
        self._requests = frozenset(descriptor.requests)
        # Commands answered on the spot, from the table, without a runner: the table, greedy steps, and the reads
        # the protocol offers (its descriptor's queries).
        self._quick = {m.ClientPeers: self._client_peers, m.FindPeers: self._find_peers,
                       **{kind: self.protocol.query for kind in descriptor.queries}}
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
        # Requests come only from other peers' clients, and a client in this context runs the server it sends to.
        self._server_sock.serve(self._on_request, self._crashed, settle=False)
        self._client_sock.serve(self._on_command, self._crashed)
        self._idle.start(self._refresh_by_itself)
        self.alive = True
        return self

    def stop(self) -> None:
        """Stop the runner (if any), the timer and both sockets. Idempotent."""
        self.alive = False
        self._group.kill()
        self._idle.close()
        self._close_sockets()
        if self._engine is not None:
            self._engine.unregister(self.id, (self.contact.server, self.contact.client))

    def _close_sockets(self) -> None:
        self._server_sock.close()
        self._client_sock.close()

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
        """Drop the client's connection to ``endpoint``."""
        self._client_sock.forget(endpoint)

    # -- server ---------------------------------------------------------------------------------------------------

    def _on_request(self, frames: list[bytes]) -> None:
        """A request from another peer: the protocol answers it (on the path of every request: kept inline)."""
        try:
            msg = self._codec.decode(frames[1:])
        except ProtocolError as exc:
            self.counters.drop("server", exc.reason, exc)
            return
        if type(msg) not in self._requests:
            self.counters.drop("server", "unexpected", type(msg).__name__)
            return
        reply = self.protocol.serve(msg)
        if reply is not None:
            try:
                self._server_sock.reply(frames[0], self._codec.encode(reply))
                self.counters["replies"] += 1
            except TransportError as exc:
                self.counters.drop("undeliverable", "undeliverable", exc)

    def _answer(self, sock: RouterSocket, route: bytes, reply) -> None:
        try:
            sock.reply(route, self._codec.encode(reply))
            self.counters["replies"] += 1
        except TransportError as exc:
            self.counters.drop("undeliverable", "undeliverable", exc)

    def _decode(self, body: list[bytes], where: str):
        try:
            return self._codec.decode(body)
        except ProtocolError as exc:
            self.counters.drop(where, exc.reason, exc)
            return None

    # -- client ---------------------------------------------------------------------------------------------------

    def _on_command(self, frames: list[bytes]) -> None:
        """A message for the idle client: answer a quick command now, give the runner a long one."""
        route, *body = frames
        msg = self._decode(body, "client")
        if msg is None:
            return
        if not self._understood(msg):
            self.counters.drop("client", "unexpected", type(msg).__name__)
            return
        self._idle.again(self._refresh_by_itself)
        quick = self._quick.get(type(msg))
        if quick is not None:
            self._answer(self._client_sock, route, quick(msg))
            return
        self._pending.append((route, msg))
        self._wake()

    def _refresh_by_itself(self) -> None:
        """Nobody asked for anything for ``refresh_interval``: refresh by ourselves (docs/DESIGN.md §4.4)."""
        self._pending.append((None, _BY_ITSELF))
        self._wake()

    def _wake(self) -> None:
        if self._runner is None and self.alive:
            self._client_sock.pause()
            self._runner = self._group.spawn("peer's runner", self._run)

    def _run(self) -> None:
        """The runner: handle what is pending, then hand the socket back to the idle client."""
        sock = self._client_sock
        try:
            while self._pending:
                route, msg = self._pending.popleft()
                quick = self._quick.get(type(msg))
                reply = quick(msg) if quick is not None else self._walk(msg)
                if route is not None:
                    self._answer(sock, route, reply)
                    self._idle.again(self._refresh_by_itself)
            sock.forget_all()  # idle: connections to other servers only cost memory until the next walk
        finally:
            self._runner = None
            if self.alive:
                sock.serve(self._on_command, self._crashed)  # also hands over what arrived since the last reply

    def _keep(self, route: bytes, msg) -> bool:
        """Keep a supervisor command that arrived while the runner waited for a reply (up to a bound)."""
        if self._understood(msg) and len(self._pending) < MAX_PENDING_COMMANDS:
            self._pending.append((route, msg))
            return True
        return False

    def _understood(self, msg) -> bool:
        """True for a command this peer carries out: a walk, or a quick one its protocol answers."""
        return type(msg) in self._quick or isinstance(msg, _WALKS)

    def _client_peers(self, msg: m.ClientPeers) -> m.PeersReply:
        return m.PeersReply(msg.req_id, msg.cookie, self.protocol.contacts())

    def _walk(self, msg) -> m.Done:
        kind = type(msg)
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
