"""The supervisor: builds a network of peers and drives it (DESIGN.md §4.8). It returns data; callers format it.

Commands to peers go through the supervisor's own ROUTER socket to each peer's client, tagged with a request id and
cookie, so a stray message is never taken for a reply (§4.9). Whoever drives a :class:`Network` (the CLI's main
greenlet or the control server's greenlet) owns that socket; a network is driven by one greenlet at a time.
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import time

import gevent

from . import graph, security
from . import messages as m
from .config import Config
from .errors import ProtocolError, RpcTimeout, TransportError, UsageError
from .hosting import LocalHost, RemoteHost, Watch, open_fds, rss_bytes
from .ids import new_cookie, new_id
from .table import Contact, Table
from .transport import Context, Endpoints

log = logging.getLogger(__name__)

#: At most this many commands are in flight from the supervisor at once (and as many live connections).
COMMAND_WINDOW = 256
#: Peers are started this many at a time (sockets bound, one link message per worker), then joined one by one.
SPAWN_BATCH = 64
#: The reply each client command must get.
_REPLY_TO = {m.ClientPeers: m.PeersReply, m.FindPeers: m.FoundPeers, m.Join: m.Done, m.Refresh: m.Done}
_COOKIE_STREAM = 0x9E3779B97F4A7C15  # cookies come from their own stream, so ids and bootstraps never depend on them


class Network:
    """A simulated network in this process. Use as a context manager, or call :meth:`die` when done."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        seed = self.config.seed
        self._rng = random.Random(seed)
        self._cookies = random.Random(None if seed is None else seed ^ _COOKIE_STREAM)
        self.counters: collections.Counter = collections.Counter()
        self._codec = m.Codec(self.config.max_message_bytes)
        self._ctx = Context(max_message_bytes=self.config.max_message_bytes, tcp_backlog=self.config.tcp_backlog)
        self._endpoints = Endpoints(self.config.transport, self._ctx.namespace, self.config.host)
        self._sock = self._ctx.router(max_connections=COMMAND_WINDOW)
        self._request_ids = itertools.count(1)
        self.peers: list = []  # newest first, as the original keeps them: Peer here, RemotePeer in a worker
        self.local = LocalHost(ctx=self._ctx, endpoints=self._endpoints, config=self.config, cookies=self._cookies,
                               codec=self._codec, counters=self.counters)
        self.workers: list[RemoteHost] = []
        self._host_of: dict[str, object] = {}  # client endpoint -> the host of that peer
        self._link = None  # socket to the workers, created with the first one
        self._keys = security.load(self.config.curve_dir)
        self._watch: Watch | None = None
        self.seconds: dict[str, float] = {"create": 0.0, "refresh": 0.0, "net_status": 0.0}
        self.closed = False
        #: Sockets that were still open when the context was terminated (owners should have closed them all).
        self.sockets_left_open = 0

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.die()

    # -- building -------------------------------------------------------------------------------------------------

    def create(self, n: int, hosts: list | None = None) -> dict:
        """Add ``n`` peers, each bootstrapped from a uniformly random existing peer (the first one alone).

        Peers go round-robin to ``hosts`` (default: the live workers, else this process). Ids and bootstrap choices
        are drawn up front in exactly the order one process would draw them, so where a peer lives never changes
        the network. A host without room for its share refuses before any peer is made.
        """
        if type(n) is not int or n < 1:
            raise UsageError(f"the number of peers must be a positive integer, not {n!r}")
        hosts = hosts or [worker for worker in self.workers if worker.alive] or [self.local]
        for host in hosts:
            share = len(range(hosts.index(host), n, len(hosts)))
            if share > host.room():
                raise UsageError(f"{host.name} has room for {host.room()} more peers within its file descriptor "
                                 f"limit, not {share}; add workers")
        started = time.perf_counter()
        plan = []
        for index in range(len(self.peers), len(self.peers) + n):
            peer_id = new_id(self._rng)
            plan.append((peer_id, self._rng.randrange(index) if index else None))
        for start in range(0, n, SPAWN_BATCH):
            batch = plan[start:start + SPAWN_BATCH]
            for peer, (_, bootstrap) in zip(self._spawn(batch, hosts, start), batch):
                if bootstrap is not None:
                    self._command(peer.contact, m.Join, self.peers[bootstrap].contact)
                self.peers.insert(0, peer)
                if self.config.pace:
                    gevent.sleep(self.config.pace)
        self.seconds["create"] += time.perf_counter() - started
        return {"n": len(self.peers), "created": n}

    def _spawn(self, batch: list[tuple[int, int | None]], hosts: list, offset: int) -> list:
        """Start the peers of ``batch`` on their hosts (peer ``offset + i`` on ``hosts[(offset + i) % len]``)."""
        shares: dict[int, list[int]] = collections.defaultdict(list)
        for position, (peer_id, _) in enumerate(batch, start=offset):
            shares[position % len(hosts)].append(peer_id)
        started = {slot: iter(hosts[slot].spawn(ids)) for slot, ids in shares.items()}
        peers = []
        for position in range(offset, offset + len(batch)):
            host = hosts[position % len(hosts)]
            peer = next(started[position % len(hosts)])
            if host is not self.local:
                self._host_of[peer.contact.client] = host
            peers.append(peer)
        return peers

    def attach(self, endpoint: str, peers: int = 0) -> dict:
        """Take on the worker listening at ``endpoint`` and create ``peers`` new peers on it."""
        if self.config.transport != "tcp":
            raise UsageError("workers need --transport tcp (inproc endpoints cannot leave a process)")
        if type(peers) is not int or peers < 0:
            raise UsageError(f"peers must be a non-negative integer, not {peers!r}")
        if self._link is None:
            self._link = self._ctx.router(max_connections=1 << 16)
            if self._keys is not None:
                self._keys.dial(self._link)
            self._watch = Watch(self._ctx, self.config, self._keys)
        worker = RemoteHost(endpoint, self._link, self.config)
        worker.hello()
        self.workers.append(worker)
        self._watch.hosts.append(worker)
        if peers:
            self.create(peers, [worker])
        return {"worker": worker.describe(), "n": len(self.peers)}

    def _alive(self, contact: Contact) -> bool:
        host = self._host_of.get(contact.client)
        return host is None or host.alive

    # -- commands -------------------------------------------------------------------------------------------------

    def ping(self) -> dict:
        """The number of peers; with workers, also each worker and how many peers are unreachable (worker gone)."""
        if not self.workers:
            return {"n": len(self.peers)}
        return {"n": len(self.peers), "workers": [worker.describe() for worker in self.workers],
                "unreachable": self._unreachable()}

    def _unreachable(self) -> int:
        return sum(len(worker.peers) for worker in self.workers if not worker.alive)

    def stats(self) -> dict:
        """Counters since start, this process's memory and file descriptors, and time spent per phase."""
        dropped = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped.")}
        return {"peers": len(self.peers), "requests": self.counters["requests"], "replies": self.counters["replies"],
                "timeouts": self.counters["timeouts"], "dropped": self.counters["dropped"],
                "dropped_by_kind": dropped, "rss_bytes": rss_bytes(), "fds": open_fds(),
                "seconds": {phase: round(seconds, 6) for phase, seconds in self.seconds.items()},
                **self._worker_stats()}

    def _worker_stats(self) -> dict:
        """Each live worker's own counters, memory and fds (a gone worker shows only that it is gone)."""
        if not self.workers:
            return {}
        return {"workers": [{**worker.describe(), **(_without_link_fields(worker.stats()) if worker.alive else {})}
                            for worker in self.workers]}

    def tables(self) -> list[Table]:
        """Every peer's current table, in list order (newest first), fetched from the peers' clients."""
        return self._tables_of(self.peers)

    def _tables_of(self, peers: list) -> list[Table]:
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in peers])
        return [Table.from_preorder(reply.table if reply else [], metric=self.config.metric,
                                    capacity=self.config.table_capacity) for reply in replies]

    def net_status(self) -> dict:
        """Table size and greedy-routing reach of every peer (§4.8), all N² routes driven by messages, plus the
        hop counts of the routes that arrived (``hops``: histogram, mean, and the overall lookup success rate).

        Routes advance in rounds: each round asks every client that currently holds some routes for one step of
        all of them in a single ``find_peer`` batch, so the cost is messages per round, not per route.
        """
        started = time.perf_counter()
        peers = self.peers
        sizes = [len(table) for table in self.tables()]
        reached, hops = self._route_all([peer.contact for peer in peers], [peer.id for peer in peers])
        n = len(peers)
        rows = []
        for index, (peer, size, count) in enumerate(zip(peers, sizes, reached), start=1):
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": size, "reachable": count,
                         "percent": int(count / n * 100)})
        connectivity = int(sum(row["percent"] for row in rows) / n)
        self.seconds["net_status"] += time.perf_counter() - started
        status = {"n": n, "connectivity": connectivity, "peers": rows, "hops": _hop_summary(hops, n * n)}
        if self.workers:
            status.update(workers=[worker.describe() for worker in self.workers], unreachable=self._unreachable())
        return status

    def route_sample(self, size: int, seed: int = 0) -> dict:
        """Greedy routing between ``size`` sources and ``size`` targets drawn with ``random.Random(seed)``: the
        same hop summary as :meth:`net_status` at a cost of size² routes instead of N² (for very large networks)."""
        if type(size) is not int or size < 1:
            raise UsageError(f"the sample size must be a positive integer, not {size!r}")
        started = time.perf_counter()
        picker = random.Random(seed)
        sources = picker.sample(self.peers, min(size, len(self.peers)))
        targets = picker.sample(self.peers, min(size, len(self.peers)))
        sizes = [len(table) for table in self._tables_of(sources)]
        _, hops = self._route_all([peer.contact for peer in sources], [peer.id for peer in targets])
        self.seconds["net_status"] += time.perf_counter() - started
        return {"n": len(self.peers), "sources": len(sources), "targets": len(targets),
                "mean_tree_size": round(sum(sizes) / len(sizes), 3), "hops": _hop_summary(hops, len(sources) *
                                                                                           len(targets))}

    def _route_all(self, sources: list[Contact], targets: list[int]) -> tuple[list[int], collections.Counter]:
        """Greedy-route from every source to every target within ``max_hops`` forwarding steps: how many targets
        each source reaches, and how many forwarding steps the successful routes took."""
        max_hops = self.config.max_hops
        reached = [0] * len(sources)
        hop_counts: collections.Counter = collections.Counter()
        # Active routes: (source index, target id, hops left) grouped by the contact currently holding them.
        holding: dict[Contact, list[tuple[int, int, int]]] = collections.defaultdict(list)
        for index, source in enumerate(sources):
            if self._alive(source):
                holding[source] = [(index, target, max_hops) for target in targets]
        while holding:
            asks = []
            for contact, routes in holding.items():
                if not self._alive(contact):
                    continue  # its worker is gone: every route through it fails
                live = []
                for route in routes:
                    if route[1] == contact.id:
                        reached[route[0]] += 1
                        hop_counts[max_hops - route[2]] += 1
                    elif route[2] > 0:
                        live.append(route)
                if live:
                    asks.append((contact, live))
            replies = self._command_many([(contact, m.FindPeers, ([route[1] for route in live],))
                                          for contact, live in asks])
            holding = collections.defaultdict(list)
            for (contact, live), reply in zip(asks, replies):
                if reply is None:
                    continue  # its worker went away meanwhile
                if len(reply.picks) != len(live):
                    raise ProtocolError(f"find_peer answered {len(reply.picks)} of {len(live)} targets")
                for (index, target, hops), pick in zip(live, reply.picks):
                    answer = reply.contacts[pick]
                    if answer.id != contact.id:  # a peer that names itself is as close as the route gets
                        holding[answer].append((index, target, hops - 1))
        return reached, hop_counts

    def refresh_peers(self) -> dict:
        """Refresh every peer in list order, one at a time, each waiting for the previous one's ``done``."""
        started = time.perf_counter()
        refreshed = 0
        for peer in self.peers:
            refreshed += self._command(peer.contact, m.Refresh) is not None
        self.seconds["refresh"] += time.perf_counter() - started
        return {"refreshed": refreshed}

    def output_tgf(self, path: str) -> dict:
        """Write the network as TGF (§4.8) to ``path``."""
        ids = [peer.id for peer in self.peers]
        edges = graph.write_tgf(path, ids, self.tables())
        return {"path": path, "nodes": len(ids), "edges": edges}

    def time_lapse(self, steps: int, directory: str = ".") -> dict:
        """``steps`` times: refresh every peer, then write ``time-lapse-<i>.tgf`` in ``directory``."""
        if type(steps) is not int or steps < 0:
            raise UsageError(f"time-lapse steps must be a non-negative integer, not {steps!r}")
        files = []
        for step in range(1, steps + 1):
            self.refresh_peers()
            path = os.path.join(directory, f"time-lapse-{step}.tgf")
            self.output_tgf(path)
            files.append(path)
        return {"files": files}

    def die(self) -> dict:
        """Stop every peer and close every socket; nothing is left running. Idempotent."""
        if not self.closed:
            self.closed = True
            if self._watch is not None:
                self._watch.stop()
            for worker in self.workers:
                worker.stop()
            self.local.stop()
            if self._link is not None:
                self._link.close()
            self._sock.close()
            self.sockets_left_open = self._ctx.term()
            if self.sockets_left_open:
                log.warning("%d sockets were still open at shutdown", self.sockets_left_open)
        return {"stopping": True}

    # -- talking to clients ---------------------------------------------------------------------------------------

    def _command(self, contact: Contact, kind, *args):
        return self._command_many([(contact, kind, args)])[0]

    def _command_many(self, calls: list[tuple[Contact, type, tuple]], window: int = COMMAND_WINDOW) -> list:
        """Send each command to its contact's client and return the replies in order.

        Up to ``COMMAND_WINDOW`` commands are in flight at once. Join and refresh may take long (a walk of 160
        targets), so they wait up to ``command_timeout``; other commands are quick and must show progress within
        ``client_timeout``. A client that does not answer in time raises :class:`RpcTimeout`. A peer whose worker
        is gone gets no command; its result is None.
        """
        results: list = [None] * len(calls)
        for start in range(0, len(calls), window):
            batch = calls[start:start + window]
            waiting = {}
            for offset, (contact, kind, args) in enumerate(batch):
                if not self._alive(contact):
                    continue
                req_id, cookie = next(self._request_ids), new_cookie(self._cookies)
                route = self._sock.route(contact.client)
                if not self._send(contact, route, m.encode(kind(req_id, cookie, *args))):
                    continue
                self.counters["requests"] += 1
                waiting[req_id] = (start + offset, cookie, route, _REPLY_TO[kind], contact)
            slow = any(kind in (m.Join, m.Refresh) for _, kind, _ in batch)
            self._collect(waiting, results, self.config.command_timeout if slow else self.config.client_timeout)
        return results

    def _send(self, contact: Contact, route: bytes, frames: list[bytes]) -> bool:
        """Send a command to ``contact``'s client; False if its worker is (declared) gone before it could be sent.

        A tcp connection to a process that died never comes up again, and ``send_to`` would retry it forever: the
        retries are cut into ``heartbeat_interval`` slices, checking the worker's liveness between them.
        """
        deadline = time.monotonic() + self.config.heartbeat_timeout + self.config.client_timeout
        while True:
            with gevent.Timeout(self.config.heartbeat_interval, False):
                self._sock.send_to(route, frames)
                return True
            if not self._alive(contact):
                return False
            if time.monotonic() > deadline:
                self.counters["timeouts"] += 1
                raise RpcTimeout(f"cannot reach the client of peer {contact.id}")

    def _collect(self, waiting: dict, results: list, timeout: float) -> None:
        """Receive the replies in ``waiting``; ``timeout`` bounds the wait for each next one. Requests to peers
        whose worker is declared gone meanwhile stop being waited for (checked every ``heartbeat_interval``), and
        with workers the wait is ``heartbeat_timeout`` longer, so that a death is declared before we give up."""
        if self.workers:
            timeout += self.config.heartbeat_timeout
        last_progress = time.monotonic()
        while waiting:
            frames = None
            if self.workers:
                with gevent.Timeout(min(timeout, self.config.heartbeat_interval), False):
                    frames = self._sock.recv()
            else:
                with gevent.Timeout(timeout, False):
                    frames = self._sock.recv()
            if frames is None:
                for req_id in [req for req, entry in waiting.items() if not self._alive(entry[4])]:
                    del waiting[req_id]
                if waiting and time.monotonic() - last_progress >= timeout:
                    self.counters["timeouts"] += 1
                    # Late replies will not match any request id and cookie: they are dropped when they come.
                    raise RpcTimeout(f"{len(waiting)} peer client(s) did not answer")
                continue
            sender, *frames = frames
            try:
                msg = self._codec.decode(frames)
            except ProtocolError as exc:
                self._drop(exc)
                continue
            expected = waiting.get(msg.req_id) if isinstance(msg, m.REPLIES) else None
            if expected is None or (expected[1], expected[2], expected[3]) != (msg.cookie, sender, type(msg)):
                self._drop(f"unmatched {type(msg).__name__}")
                continue
            del waiting[msg.req_id]
            self.counters["replies"] += 1
            results[expected[0]] = msg
            last_progress = time.monotonic()

    def _drop(self, why) -> None:
        self.counters["dropped.supervisor"] += 1
        self.counters["dropped"] += 1
        log.debug("supervisor dropped a message: %s", why)


def _hop_summary(hop_counts: collections.Counter, lookups: int) -> dict:
    """Histogram of forwarding steps over successful lookups (keys are strings: JSON), their mean, success rate."""
    successes = sum(hop_counts.values())
    mean = sum(hops * count for hops, count in hop_counts.items()) / successes if successes else 0.0
    return {"histogram": {str(hops): hop_counts[hops] for hops in sorted(hop_counts)}, "mean": round(mean, 4),
            "success_rate": round(successes / lookups, 6) if lookups else 0.0}


def _without_link_fields(reply: dict) -> dict:
    return {key: value for key, value in reply.items() if key not in ("req", "ok")}
