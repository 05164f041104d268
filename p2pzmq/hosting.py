"""Where peers live: this process (:class:`LocalHost`) or a worker process reached over the link
(:class:`RemoteHost`, see :mod:`p2pzmq.link`); what a process has room for is :mod:`p2pzmq.resources`'.

The supervisor draws every id and bootstrap choice itself and only asks a host to *create* peers with given ids; all
other traffic goes to the peers' own endpoints. So a network spread over processes is the same network as one in a
single process for the same seed. A host that is gone (its worker died) leaves its peers counted as unreachable.

Every remote host shares the network's link :class:`~p2pzmq.rpc.Channel` (one socket, one lock) for its requests;
heartbeats go out from the :class:`Watch` greenlet on a socket of its own, so a long link request never delays them.
"""
from __future__ import annotations

import logging
import random
from typing import Callable

from . import link
from .config import Config
from .errors import ClosedError, ProtocolError, TransportError, UsageError
from .peer import Peer
from .resources import peer_room
from .rpc import Channel, Counters, Liveness, Request
from .snapshot import SnapshotError
from .contact import Contact
from .endpoints import Endpoints
from .supervision import Group
from .transport import Context, RouterSocket

log = logging.getLogger(__name__)

#: Contacts a worker is sent per install message: about 110 bytes each on the link, far below its message size.
INSTALL_CONTACTS = 4000


class LocalHost:
    """Peers in this process, sharing one context (inproc endpoints live in one context), codec and counters.
    It owns the :class:`Peer` objects it started: it stops them."""

    name = "local"
    alive = True

    def __init__(self, *, ctx: Context, endpoints: Endpoints, config: Config, cookies: random.Random,
                 codec, counters: Counters, engine=None) -> None:
        self._ctx = ctx
        self._engine = engine  # simulated time: every peer here is under it (p2pzmq.simtime)
        self._endpoints = endpoints
        self.config = config
        self._cookies = cookies
        self._codec = codec
        self._counters = counters
        self.peers: dict[int, Peer] = {}  # id -> peer, every peer started here and not stopped
        #: Told of each peer here whose greenlets died (the network emits a ``crashed`` event).
        self.on_crash: Callable[[Peer], None] | None = None

    def room(self) -> int:
        return peer_room(self._endpoints.transport, self._engine is not None)

    def spawn(self, ids: list[int]) -> list[Peer]:
        """Start a peer for each id (sockets bound, not yet joined). Refuses, creating none, beyond the fd budget."""
        room = self.room()
        if len(ids) > room:
            raise UsageError(f"this process has room for {room} more peers within its file descriptor limit, "
                             f"not {len(ids)}; spread the peers over workers")
        started = []
        for peer_id in ids:
            peer = Peer(peer_id, ctx=self._ctx, endpoints=self._endpoints, config=self.config,
                        cookies=self._cookies, codec=self._codec, counters=self._counters,
                        on_crash=self.on_crash, engine=self._engine).start()
            self.peers[peer_id] = peer  # at once: if a later bind fails, stop() still stops this one
            started.append(peer)
        return started

    def install(self, directory: list[Contact], tables: list[tuple[int, list[int]]]) -> None:
        """Give each peer ``(id, table)`` of ``tables`` its table, as indexes into ``directory`` (a restored
        snapshot, docs/DESIGN.md §17). Raises :class:`UsageError` for a peer not held here or a protocol that cannot
        install tables, :class:`SnapshotError` for an index out of range or a table its protocol refuses."""
        for peer_id, table in tables:
            peer = self.peers.get(peer_id)
            if peer is None:
                raise UsageError(f"no peer with id {peer_id} lives here")
            install = getattr(peer.protocol, "install", None)
            if install is None:
                raise UsageError(f"the {self.config.protocol} protocol cannot install a snapshot's tables")
            if any(type(index) is not int or not 0 <= index < len(directory) for index in table):
                raise SnapshotError(f"the table of peer {peer_id} names a peer outside the directory")
            try:
                install([directory[index] for index in table])
            except ValueError as exc:
                raise SnapshotError(f"cannot install the table of peer {peer_id}: {exc}") from exc

    def kill(self, ids: list[int]) -> None:
        """Stop the peers with these ids (greenlets killed, sockets closed: their fds are free again); refuses,
        stopping none, if one of them is not held here."""
        unknown = [peer_id for peer_id in ids if peer_id not in self.peers]
        if unknown:
            raise UsageError(f"no peer with id {unknown[0]} lives here")
        for peer_id in ids:
            self.peers.pop(peer_id).stop()

    def stop(self) -> None:
        for peer in self.peers.values():
            peer.stop()


class RemotePeer:
    """What the supervisor knows of a peer in a worker: its contact, and whether its worker is still there."""

    __slots__ = ("contact", "host")

    def __init__(self, contact: Contact, host: "RemoteHost") -> None:
        self.contact = contact
        self.host = host

    @property
    def id(self) -> int:
        return self.contact.id

    @property
    def alive(self) -> bool:
        return self.host.alive


class RemoteHost:
    """A worker process, driven through the network's link channel."""

    def __init__(self, endpoint: str, channel: Channel, config: Config) -> None:
        self.endpoint = endpoint
        self.name = endpoint
        self.config = config
        self._channel = channel
        self.alive = True
        self.last_seen = config.clock.now()
        self.pid = 0
        self.host = ""
        self._room = 0
        self._liveness = Liveness(lambda _: self.alive, config.heartbeat_interval)
        self._directory: list[Contact] | None = None  # the contacts this worker last received for install

    def hello(self, index: int) -> dict:
        """Hand the worker the network's settings and its ``index`` (0, 1, ... in the order workers were taken on);
        it answers with its pid, host and room for peers."""
        reply = self.request(link.HELLO, config={key: getattr(self.config, key) for key in link.WORKER_SETTINGS},
                             index=index)
        self.pid, self.host, self._room = reply["pid"], reply["host"], reply["room"]
        return reply

    def room(self) -> int:
        return self._room if self.alive else 0

    def spawn(self, ids: list[int]) -> list[RemotePeer]:
        reply = self.request(link.SPAWN, ids=[str(peer_id) for peer_id in ids])
        contacts = [link.unpack_contact(item) for item in reply["contacts"]]
        if [contact.id for contact in contacts] != ids:
            raise ProtocolError(f"worker {self.name} created other peers than asked")
        self._room = reply["room"]
        return [RemotePeer(contact, self) for contact in contacts]

    def install(self, directory: list[Contact], tables: list[tuple[int, list[int]]]) -> None:
        """As :meth:`LocalHost.install`, over the link: the directory first (once, in messages of
        :data:`INSTALL_CONTACTS` contacts), then the tables in one request (keep it under the link's message size:
        the caller sends waves)."""
        if self._directory is not directory:
            for start in range(0, len(directory), INSTALL_CONTACTS):
                self.request(link.INSTALL, start=start, contacts=[link.pack_contact(contact) for contact in
                                                                  directory[start:start + INSTALL_CONTACTS]])
            self._directory = directory
        reply = self.request(link.INSTALL, tables=[[str(peer_id), *table] for peer_id, table in tables])
        if reply.get("installed") != len(tables):
            raise ProtocolError(f"worker {self.name} installed other tables than asked")

    def kill(self, ids: list[int]) -> None:
        """Have the worker stop these peers (one link request). Peers of a worker that is gone, or goes while
        asked, are dead already: that is no error."""
        if not self.alive:
            return
        try:
            self._room = self.request(link.KILL, ids=[str(peer_id) for peer_id in ids])["room"]
        except TransportError as exc:
            if self.alive:
                raise
            log.warning("worker %s went away while stopping peers: %s", self.name, exc)

    def stats(self) -> dict:
        return self.request(link.STATS)

    def describe(self, peers: int) -> dict:
        """What ping and net_status show of this worker; ``silent_s`` is how long ago it was last heard from (its
        heartbeats come every ``heartbeat_interval``: a growing figure is a worker falling behind)."""
        return {"endpoint": self.endpoint, "host": self.host, "pid": self.pid, "peers": peers, "alive": self.alive,
                "silent_s": round(self.config.clock.now() - self.last_seen, 3)}

    def request(self, op: str, timeout: float | None = None, **fields) -> dict:
        """One link request; its reply's fields. Gives up early once the watch declares the worker gone; a reply
        that says the worker failed raises :class:`TransportError` with its error."""
        if not self.alive:
            raise TransportError(f"worker {self.name} is gone")
        try:
            reply = self._channel.call(self.endpoint, link.request, (op, fields), link.LinkReply,
                                       timeout or self.config.worker_timeout, self._liveness)
        except TransportError as exc:
            raise type(exc)(f"worker {self.name} did not answer {op}: {exc}") from exc
        self.last_seen = self.config.clock.now()
        if not reply.ok:
            raise TransportError(f"worker {self.name} failed {op}: {reply.error}")
        return reply.fields


def stop_workers(channel: Channel, workers: list[RemoteHost], timeout: float) -> None:
    """Ask every worker still thought alive to stop its peers and exit, all at once on the link ``channel``, and
    wait up to ``timeout`` for their answers. At once, because a worker that died unnoticed (killed a moment ago)
    never answers: asked in turn, the live ones behind it would wait past their own patience with a silent
    supervisor and stop unasked, and ``die`` would take a timeout per worker."""
    live = [worker for worker in workers if worker.alive]
    requests = [Request(worker.endpoint, link.request, (link.STOP, {}), link.LinkReply) for worker in live]
    results = channel.call_many(requests, timeout, window=max(1, len(requests))) if requests else []
    for worker, result in zip(live, results):
        if not result.replied or not result.reply.ok:
            log.warning("worker %s did not confirm stop: %s", worker.name,
                        result.reply.error if result.replied else f"no reply within {timeout:g} s")
    for worker in workers:
        worker.alive = False


class Watch:
    """Heartbeats to every worker from one greenlet that owns its own link socket; a worker that has not answered
    for ``heartbeat_timeout`` is marked gone (its peers then count as unreachable and no command waits for them)."""

    def __init__(self, ctx: Context, config: Config, keys=None, on_failure=None) -> None:
        self._ctx = ctx
        self.config = config
        self._keys = keys  # security.Keys of the network, or None
        self.hosts: list[RemoteHost] = []
        self._codec = link.LinkCodec()
        self._group = Group(on_failure, config.shutdown_timeout)
        self._group.spawn("heartbeat watch", self._run)

    def _run(self) -> None:
        sock = self._ctx.router(max_connections=1 << 16)
        beat = self._codec.encode(link.beat())
        clock = self.config.clock
        try:
            if self._keys is not None:
                self._keys.dial(sock)
            while True:
                sent = clock.now()
                for host in self.hosts:
                    if host.alive:
                        self._beat(sock, host, beat)
                self._receive(sock, sent + self.config.heartbeat_interval)
                now = clock.now()
                for host in self.hosts:
                    if host.alive and now - host.last_seen > self.config.heartbeat_timeout:
                        host.alive = False
                        log.warning("worker %s (pid %s) stopped answering: its peers are unreachable",
                                    host.name, host.pid)
        finally:
            sock.close()

    def _beat(self, sock: RouterSocket, host: RemoteHost, beat: list[bytes]) -> None:
        # A connection not up (yet, or any more) makes send_to retry: bound it; the missing answer is what counts.
        try:
            sock.send_to(sock.route(host.endpoint), beat, self.config.heartbeat_interval / 4)
        except ClosedError:
            raise
        except TransportError as exc:
            log.debug("no heartbeat to worker %s: %s", host.name, exc)

    def _receive(self, sock: RouterSocket, until: float) -> None:
        routes = {sock.route(host.endpoint): host for host in self.hosts if host.alive}
        now = self.config.clock.now
        while (left := until - now()) > 0:
            frames = sock.recv(left)
            if frames is not None and frames[0] in routes:
                routes[frames[0]].last_seen = now()

    def stop(self) -> None:
        self._group.kill()
