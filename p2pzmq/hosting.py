"""Where peers live: this process (:class:`LocalHost`) or a worker process reached over a link (:class:`RemoteHost`).

The supervisor draws every id and bootstrap choice itself and only asks a host to *create* peers with given ids; all
other traffic goes to the peers' own endpoints. So a network spread over processes is the same network as one in a
single process for the same seed. A host that is gone (its worker died) keeps its peers in the list, counted as
unreachable.

The link speaks one JSON object per message over a ROUTER pair (ids as decimal strings): the supervisor sends
``{"op": ..., "req": n, ...}`` and the worker answers ``{"req": n, "ok": true, ...}`` (see :mod:`p2pzmq.worker`).
Each link socket belongs to one greenlet: the network's driving greenlet for commands (``hello``, ``spawn``, ``kill``,
``stats``, ``stop``) and the :class:`Watch` greenlet for heartbeats.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import random
import resource
import time

import gevent

from . import messages as m
from .config import Config
from .errors import ClosedError, ProtocolError, RpcTimeout, TransportError, UsageError
from .peer import Peer
from .table import Contact
from .transport import Context, Endpoints, RouterSocket

log = logging.getLogger(__name__)

#: Every peer holds two sockets (server and client), one fd each (their mailboxes, DESIGN.md §3); over tcp each
#: socket also holds its listening socket.
FDS_PER_PEER = {"inproc": 2, "tcp": 4}
#: Fds kept free for connections: a walking client's LRU (both ends when in one process), the supervisor's command
#: window, control and link sockets, logs.
FD_HEADROOM = 768


def open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; 0 where unavailable)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def process_usage() -> dict:
    """This process's resident memory (now and peak), open fds and CPU seconds (user + system) so far."""
    usage, rss = resource.getrusage(resource.RUSAGE_SELF), rss_bytes()
    # ru_maxrss (KiB) and statm count slightly differently: the peak is never shown below the current figure
    return {"rss_bytes": rss, "peak_rss_bytes": max(usage.ru_maxrss * 1024, rss), "fds": open_fds(),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3)}


def peer_room(transport: str) -> int:
    """How many more peers on ``transport`` this process can hold within its fd limit (RLIMIT_NOFILE, soft)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit == resource.RLIM_INFINITY:
        limit = 1 << 20
    return max(0, (limit - open_fds() - FD_HEADROOM) // FDS_PER_PEER[transport])


class LocalHost:
    """Peers in this process, sharing one context (inproc endpoints live in one context), codec and counters."""

    name = "local"
    alive = True

    def __init__(self, *, ctx: Context, endpoints: Endpoints, config: Config, cookies: random.Random,
                 codec: m.Codec, counters: collections.Counter) -> None:
        self._ctx = ctx
        self._endpoints = endpoints
        self.config = config
        self._cookies = cookies
        self._codec = codec
        self._counters = counters
        self.peers: list[Peer] = []

    def room(self) -> int:
        return peer_room(self._endpoints.transport)

    def spawn(self, ids: list[int]) -> list[Peer]:
        """Start a peer for each id (sockets bound, not yet joined). Refuses, creating none, beyond the fd budget."""
        room = self.room()
        if len(ids) > room:
            raise UsageError(f"this process has room for {room} more peers within its file descriptor limit, "
                             f"not {len(ids)}; spread the peers over workers")
        peers = []
        for peer_id in ids:
            peers.append(Peer(peer_id, ctx=self._ctx, endpoints=self._endpoints, config=self.config,
                              cookies=self._cookies, codec=self._codec, counters=self._counters).start())
            self.peers.append(peers[-1])  # at once: if a later bind fails, stop() still stops this one
        return peers

    def kill(self, peers: list[Peer]) -> None:
        """Stop ``peers`` (greenlets killed, sockets closed: their fds are free again) and forget them."""
        doomed = {peer.contact.client for peer in peers}
        for peer in peers:
            peer.stop()
        self.peers = [peer for peer in self.peers if peer.contact.client not in doomed]

    def kill_ids(self, ids: list[int]) -> None:
        """:meth:`kill` the peers with these ids; refuses, killing none, if one of them is not held here."""
        by_id = {peer.id: peer for peer in self.peers}
        unknown = [peer_id for peer_id in ids if peer_id not in by_id]
        if unknown:
            raise UsageError(f"no peer with id {unknown[0]} lives here")
        self.kill([by_id[peer_id] for peer_id in ids])

    def stop(self) -> None:
        for peer in self.peers:
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
    """A worker process, driven over ``link`` (a socket of the network's driving greenlet)."""

    def __init__(self, endpoint: str, link: RouterSocket, config: Config) -> None:
        self.endpoint = endpoint
        self.name = endpoint
        self.config = config
        self._link = link
        self._route = link.route(endpoint)
        self._requests = itertools.count(1)
        self.alive = True
        self.last_seen = time.monotonic()
        self.pid = 0
        self.host = ""
        self._room = 0
        self.peers: list[RemotePeer] = []

    def hello(self) -> dict:
        """Hand the worker the network's settings; it answers with its pid, host and room for peers."""
        settings = {key: getattr(self.config, key) for key in WORKER_SETTINGS}
        reply = self.request("hello", config=settings)
        self.pid, self.host, self._room = reply["pid"], reply["host"], reply["room"]
        return reply

    def room(self) -> int:
        return self._room if self.alive else 0

    def spawn(self, ids: list[int]) -> list[RemotePeer]:
        reply = self.request("spawn", ids=[str(peer_id) for peer_id in ids])
        contacts = [_contact(item) for item in reply["contacts"]]
        if [contact.id for contact in contacts] != ids:
            raise ProtocolError(f"worker {self.name} created other peers than asked")
        self._room = reply["room"]
        peers = [RemotePeer(contact, self) for contact in contacts]
        self.peers.extend(peers)
        return peers

    def kill(self, peers: list[RemotePeer]) -> None:
        """Have the worker stop ``peers`` (one link request) and forget them. Peers of a worker that is gone, or
        goes while asked, are dead already: they are forgotten all the same."""
        if self.alive:
            try:
                self._room = self.request("kill", ids=[str(peer.id) for peer in peers])["room"]
            except TransportError as exc:
                if self.alive:
                    raise
                log.warning("worker %s went away while stopping peers: %s", self.name, exc)
        doomed = {peer.contact.client for peer in peers}
        self.peers = [peer for peer in self.peers if peer.contact.client not in doomed]

    def stats(self) -> dict:
        return self.request("stats")

    def stop(self) -> None:
        """Ask the worker to stop its peers and exit; a worker that is already gone is just left alone."""
        if self.alive:
            try:
                self.request("stop", timeout=self.config.shutdown_timeout)
            except TransportError as exc:
                log.warning("worker %s did not confirm stop: %s", self.name, exc)
        self.alive = False

    def describe(self) -> dict:
        return {"endpoint": self.endpoint, "host": self.host, "pid": self.pid, "peers": len(self.peers),
                "alive": self.alive}

    def request(self, op: str, timeout: float | None = None, **fields) -> dict:
        """Send one link request and wait for its reply; gives up early once the watch declares the worker gone."""
        if not self.alive:
            raise TransportError(f"worker {self.name} is gone")
        req = next(self._requests)
        deadline = time.monotonic() + (timeout or self.config.worker_timeout)
        with gevent.Timeout(max(0.0, deadline - time.monotonic()),
                            RpcTimeout(f"worker {self.name} did not answer {op}")):
            self._link.send_to(self._route, [json.dumps({"op": op, "req": req, **fields}).encode()])
        while True:
            slice_ = min(self.config.heartbeat_interval, deadline - time.monotonic())
            if slice_ <= 0:
                raise RpcTimeout(f"worker {self.name} did not answer {op}")
            frames = None
            with gevent.Timeout(slice_, False):
                frames = self._link.recv()
            if frames is None:
                if not self.alive:
                    raise TransportError(f"worker {self.name} is gone")
                continue
            reply = decode_link(frames[1:])
            if frames[0] != self._route or reply.get("req") != req:
                continue  # a late answer to an earlier request that timed out
            if not reply.get("ok"):
                raise TransportError(f"worker {self.name} failed {op}: {reply.get('error')}")
            self.last_seen = time.monotonic()
            return reply


#: Settings the supervisor hands to its workers, so every peer in the network follows the same rules.
WORKER_SETTINGS = ("metric", "table_capacity", "max_hops", "client_timeout", "refresh_interval", "max_connections",
                   "shutdown_timeout", "max_message_bytes", "tcp_backlog", "heartbeat_interval",
                   "heartbeat_timeout")


class Watch:
    """Heartbeats to every worker from one greenlet that owns its own link socket; a worker that has not answered
    for ``heartbeat_timeout`` is marked gone (its peers then count as unreachable and no command waits for them)."""

    def __init__(self, ctx: Context, config: Config, keys=None) -> None:
        self._ctx = ctx
        self.config = config
        self._keys = keys  # security.Keys of the network, or None
        self.hosts: list[RemoteHost] = []
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        sock = self._ctx.router(max_connections=1 << 16)
        try:
            if self._keys is not None:
                self._keys.dial(sock)
            while True:
                sent = time.monotonic()
                beat = [json.dumps({"op": "beat", "req": 0}).encode()]
                for host in self.hosts:
                    if host.alive:
                        # A connection not up (yet, or any more) makes send_to retry: bound it; the missing answer
                        # is what counts.
                        with gevent.Timeout(self.config.heartbeat_interval / 4, False):
                            try:
                                sock.send_to(sock.route(host.endpoint), beat)
                            except ClosedError:
                                raise
                            except TransportError as exc:
                                log.debug("no heartbeat to worker %s: %s", host.name, exc)
                self._receive(sock, sent + self.config.heartbeat_interval)
                now = time.monotonic()
                for host in self.hosts:
                    if host.alive and now - host.last_seen > self.config.heartbeat_timeout:
                        host.alive = False
                        log.warning("worker %s (pid %s) stopped answering: its %d peers are unreachable",
                                    host.name, host.pid, len(host.peers))
        finally:
            sock.close()

    def _receive(self, sock: RouterSocket, until: float) -> None:
        by_endpoint = {host.endpoint: host for host in self.hosts}
        routes = {sock.route(endpoint): host for endpoint, host in by_endpoint.items() if host.alive}
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            frames = None
            with gevent.Timeout(left, False):
                frames = sock.recv()
            if frames is not None and frames[0] in routes:
                routes[frames[0]].last_seen = time.monotonic()

    def stop(self) -> None:
        self._greenlet.kill(block=True, timeout=self.config.shutdown_timeout)


def decode_link(frames: list[bytes]) -> dict:
    """One link message as a dict; raises :class:`ProtocolError` for anything else."""
    try:
        reply = json.loads(frames[-1]) if len(frames) == 1 else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise ProtocolError("a link message is one JSON object")
    return reply


def _contact(item) -> Contact:
    if not isinstance(item, list) or len(item) != 3 or not all(isinstance(part, str) for part in item):
        raise ProtocolError("a contact on the link is [id, server, client]")
    return Contact(int(item[0]), item[1], item[2])


def pack_contact(contact: Contact) -> list[str]:
    return [str(contact.id), contact.server, contact.client]

