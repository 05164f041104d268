"""One simulated peer: a server greenlet and a client greenlet, each owning one ROUTER socket (docs/DESIGN.md §4.4).

The server answers ``get_peers`` and ``find_closest`` from its table *as it was before* the request, then adds the
sender; it replaces its table on ``update_peers`` carrying the peer's secret cookie. The client discovers peers
(join, refresh, a refresh by itself after ``refresh_interval`` of silence) and answers the supervisor's commands.
Both share the peer's table and secret and live in the same process, so the client reads the table directly
(the original fetched it from its own server, which only re-added the client's own entry: no change).

A malformed or unexpected message is dropped and counted; a server that does not answer in ``client_timeout`` is a
dead end for the walk, never a crash (§4.9). Requests go through the client's :class:`~p2pzmq.rpc.Caller`, which
keeps supervisor commands that arrive meanwhile for the client loop. The peer owns its two greenlets (a
``gevent.pool.Group``): ``stop`` kills them and closes their sockets; if either dies of an error, the peer logs it
once, counts it (``crashed``), marks itself dead and stops the other.
"""
from __future__ import annotations

import collections
import logging
import random

import gevent
import gevent.pool

from . import messages as m
from .config import Config
from .discovery import build_table
from .errors import ProtocolError, RpcTimeout, TransportError
from .ids import new_cookie
from .rpc import Caller, Counters, Outcome, Request
from .table import Contact, Table
from .transport import Context, Endpoints, RouterSocket

log = logging.getLogger(__name__)

#: Commands that arrive while the client waits for a reply are kept (up to this many) and handled afterwards.
MAX_PENDING_COMMANDS = 64


class Peer:
    """A peer with id ``peer_id``; sockets are bound on construction so others can reach it as soon as it exists."""

    def __init__(self, peer_id: int, *, ctx: Context, endpoints: Endpoints, config: Config, cookies: random.Random,
                 codec: m.Codec, counters: Counters) -> None:
        self.config = config
        self._codec = codec
        self.counters = counters
        self.secret = new_cookie(cookies)
        self._server_sock = ctx.router()
        self._client_sock = ctx.router(max_connections=config.max_connections,
                                       handshake_timeout=config.client_timeout)
        try:
            server = self._server_sock.bind(endpoints.new("server"))
            client = self._client_sock.bind(endpoints.new("client"))
        except TransportError:
            self._close_sockets()
            raise
        self.contact = Contact(peer_id, server, client)
        self.table = config.table()
        self.table.add(self.contact)
        self._pending: collections.deque = collections.deque()  # commands that arrived during a request
        self._rpc = Caller(self._client_sock, codec, counters, cookies, where="client", on_unmatched=self._keep)
        #: Consecutive discovery passes in which a peer's server timed out, for ``Config.evict_after``.
        self._strikes: collections.Counter = collections.Counter()
        #: Servers that timed out during the current discovery pass.
        self._unreachable: set[int] = set()
        self._greenlets = gevent.pool.Group()
        self.alive = False
        #: Why a greenlet of this peer died, if one did (None while healthy or after a clean stop).
        self.failure: str | None = None

    @property
    def id(self) -> int:
        return self.contact.id

    def start(self) -> "Peer":
        for sock, loop in ((self._server_sock, self._serve), (self._client_sock, self._run_client)):
            self._greenlets.spawn(self._owned, sock, loop).link_exception(self._crashed)
        self.alive = True
        return self

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        """A loop of this peer died of an error: say so once, and take the whole peer down."""
        self.failure = repr(greenlet.exception)
        self.counters["crashed"] += 1
        log.error("peer %s crashed: %s", self.id, self.failure)
        gevent.spawn(self.stop)  # not from inside a dying member of the group

    def stop(self) -> None:
        """Kill both greenlets (each closes its socket on the way out). Idempotent."""
        self._greenlets.kill(block=True, timeout=self.config.shutdown_timeout)
        self._close_sockets()
        self.alive = False

    def _close_sockets(self) -> None:
        self._server_sock.close()
        self._client_sock.close()

    @staticmethod
    def _owned(sock: RouterSocket, loop) -> None:
        try:
            loop()
        finally:
            sock.close()

    # -- table updates (the server's side of update_peers) --------------------------------------------------------

    def update_peers(self, secret: int, contacts: list[Contact]) -> bool:
        """Replace the table with ``contacts`` (preorder) if ``secret`` is this peer's; True if it was applied."""
        if secret != self.secret:
            self.counters.drop("server", "bad_secret", "update_peers with a wrong secret")
            return False
        self.table = self.config.table(contacts)
        return True

    # -- server ---------------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self._server_sock
        while True:
            route, msg = self._receive(sock, "server")
            if msg is None:
                continue
            kind = type(msg)
            if kind is m.FindClosest:
                reply = m.ClosestReply(msg.req_id, msg.cookie, self.table.closest(msg.target))
            elif kind is m.GetPeers:
                reply = m.PeersReply(msg.req_id, msg.cookie, self.table.preorder())
            elif kind is m.UpdatePeers:
                self.update_peers(msg.secret, msg.table)
                continue
            elif kind is m.Leave:
                self._answer(sock, route, m.Done(msg.req_id, msg.cookie))
                self._forget_leaver(msg.sender)
                continue
            else:
                self.counters.drop("server", "unexpected", kind.__name__)
                continue
            self._answer(sock, route, reply)
            self.table.add(msg.sender)

    def _forget_leaver(self, sender: Contact) -> None:
        """Remove a peer that says it leaves, only if our entry for it is exactly the contact it names."""
        if sender.id != self.id and self.table.get(sender.id) == sender:
            self.table.remove(sender.id)
            self.counters["leaves"] += 1

    def _answer(self, sock: RouterSocket, route: bytes, reply) -> None:
        try:
            sock.reply(route, m.encode(reply))
            self.counters["replies"] += 1
        except TransportError as exc:
            self.counters.drop("undeliverable", "undeliverable", exc)

    # -- client ---------------------------------------------------------------------------------------------------

    def _run_client(self) -> None:
        sock = self._client_sock
        while True:
            if self._pending:
                route, msg = self._pending.popleft()
            else:
                received = self._receive(sock, "client", self.config.refresh_interval)
                if received is None:
                    self.refresh()  # nobody asked for anything for refresh_interval: refresh by ourselves (§4.4)
                    sock.forget_all()
                    continue
                route, msg = received
                if msg is None:
                    continue
                if not isinstance(msg, m.COMMANDS):
                    self.counters.drop("client", "unexpected", type(msg).__name__)
                    continue
            self._answer(sock, route, self._command(msg))
            if not self._pending:
                sock.forget_all()  # idle: connections to other servers only cost memory until the next walk

    def _command(self, msg):
        kind = type(msg)
        if kind is m.ClientPeers:
            return m.PeersReply(msg.req_id, msg.cookie, self.table.preorder())
        if kind is m.FindPeers:
            return self._find_peers(msg)
        if kind is m.Depart:
            self.depart()
            return m.Done(msg.req_id, msg.cookie)
        try:
            if kind is m.Join:
                self.join(msg.contact)
            else:
                self.refresh()
        except TransportError as exc:
            # Only a join can fail this way (a walk turns timeouts into dead ends): the peer keeps the table it had.
            log.warning("peer %s could not %s: %s", self.id, "join" if kind is m.Join else "refresh", exc)
        return m.Done(msg.req_id, msg.cookie)

    def _find_peers(self, msg: m.FindPeers) -> m.FoundPeers:
        """One greedy-routing step for each target: the closest entry of our own table (§4.8 net_status)."""
        closest = self.table.closest
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

    def join(self, contact: Contact) -> None:
        """Bootstrap: fetch ``contact``'s table (it learns us) and build ours from it (§4.8 create)."""
        reply = self._request(contact.server, m.GetPeers, m.PeersReply)
        self._rebuild(self.config.table(reply.table))

    def refresh(self) -> None:
        """One discovery pass from our current table (§4.4 refresh)."""
        self._rebuild(self.table)

    def depart(self) -> int:
        """Tell every peer in our table that we leave (``Leave``), ``max_connections`` at a time, each window
        waiting at most ``client_timeout`` for the acknowledgements; returns how many acknowledged. Waiting for
        them matters: a socket closed with LINGER 0 would discard messages still queued on a tcp connection."""
        others = [Request(contact.server, m.Leave, (self.contact,), m.Done) for contact in self.table
                  if contact.id != self.id]
        results = self._rpc.call_many(others, self.config.client_timeout, window=self.config.max_connections)
        for request in others:
            self._client_sock.forget(request.endpoint)
        return sum(result.outcome is Outcome.REPLIED for result in results)

    def _rebuild(self, start: Table) -> None:
        self._unreachable.clear()
        fresh = build_table(self.contact, start, self._find_closest, self.config.max_hops,
                            capacity=self.config.table_capacity)
        if self.config.evict_after:
            self._evict(fresh)
        # Our own server is in this process: hand it the update directly, so it is in force before we answer.
        self.update_peers(self.secret, fresh.preorder())

    def _evict(self, fresh: Table) -> None:
        """Drop from ``fresh`` every entry whose server timed out in ``evict_after`` discovery passes in a row (a
        walk that cannot reach a server still returns it as its best guess, so only the rebuilt table can drop it).
        Strikes of peers no longer in the table are forgotten, so they cannot pile up."""
        for peer_id, strikes in list(self._strikes.items()):
            if strikes >= self.config.evict_after and peer_id != self.id and fresh.remove(peer_id):
                self.counters["evicted"] += 1
            if strikes >= self.config.evict_after or peer_id not in fresh:
                del self._strikes[peer_id]

    def _find_closest(self, contact: Contact, target: int) -> Contact:
        """Ask ``contact``'s server; one that did not answer is not asked again in the same discovery pass (it
        would cost ``client_timeout`` per target: a dead entry could make a pass last minutes)."""
        if contact.id in self._unreachable:
            raise RpcTimeout(f"{contact.server} did not answer earlier in this pass")
        try:
            reply = self._request(contact.server, m.FindClosest, m.ClosestReply, target)
        except TransportError:
            self._unreachable.add(contact.id)
            if self.config.evict_after:
                self._strikes[contact.id] += 1
            raise
        self._strikes.pop(contact.id, None)
        return reply.contact

    def _request(self, endpoint: str, kind, reply_kind, *args):
        """Ask ``endpoint`` (another peer's server) and return its reply; raises :class:`RpcTimeout` after
        ``client_timeout`` or :class:`TransportError`. Late, forged and misdirected replies are dropped and counted;
        supervisor commands that arrive meanwhile are kept for the client loop."""
        return self._rpc.call(endpoint, kind, (self.contact, *args), reply_kind, self.config.client_timeout)

    def _keep(self, route: bytes, msg) -> bool:
        """Keep a supervisor command that arrived while the client waited for a reply (up to a bound)."""
        if isinstance(msg, m.COMMANDS) and len(self._pending) < MAX_PENDING_COMMANDS:
            self._pending.append((route, msg))
            return True
        return False

    def _receive(self, sock: RouterSocket, where: str, timeout: float | None = None):
        """The next message on ``sock`` as (route, message), or None after ``timeout``; a malformed one is dropped,
        counted at ``where`` and returned as (route, None)."""
        frames = sock.recv(timeout)
        if frames is None:
            return None
        route, *body = frames
        try:
            return route, self._codec.decode(body)
        except ProtocolError as exc:
            self.counters.drop(where, exc.reason, exc)
            return route, None
