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

from . import graph, status
from . import messages as m
from .config import Config
from .errors import ProtocolError, RpcTimeout, TransportError, UsageError
from .ids import new_cookie, new_id
from .peer import Peer
from .table import Contact, Table
from .transport import Context, Endpoints

log = logging.getLogger(__name__)

#: At most this many commands are in flight from the supervisor at once (and as many live connections).
COMMAND_WINDOW = 256
#: The reply each client command must get.
_REPLY_TO = {m.ClientPeers: m.PeersReply, m.FindPeers: m.FoundPeers, m.Join: m.Done, m.Refresh: m.Done}
_COOKIE_STREAM = 0x9E3779B97F4A7C15  # cookies come from their own stream, so ids and bootstraps never depend on them
_STATUS_STREAM = 0x5DEECE66D  # so do net_status's sampled targets
#: How net_status may drive its routes (see :meth:`Network.net_status`).
ROUTINGS = ("auto", "messages", "local")


class Network:
    """A simulated network in this process. Use as a context manager, or call :meth:`die` when done."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        seed = self.config.seed
        self._rng = random.Random(seed)
        self._cookies = random.Random(None if seed is None else seed ^ _COOKIE_STREAM)
        self._status_rng = random.Random(None if seed is None else seed ^ _STATUS_STREAM)
        self.counters: collections.Counter = collections.Counter()
        self._codec = m.Codec(self.config.max_message_bytes)
        self._ctx = Context(max_message_bytes=self.config.max_message_bytes, tcp_backlog=self.config.tcp_backlog)
        self._endpoints = Endpoints(self.config.transport, self._ctx.namespace, self.config.host)
        self._sock = self._ctx.router(max_connections=COMMAND_WINDOW)
        self._request_ids = itertools.count(1)
        self.peers: list[Peer] = []  # newest first, as the original keeps them
        self.seconds: dict[str, float] = {"create": 0.0, "refresh": 0.0, "net_status": 0.0}
        self.closed = False
        #: Sockets that were still open when the context was terminated (owners should have closed them all).
        self.sockets_left_open = 0

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.die()

    # -- building -------------------------------------------------------------------------------------------------

    def create(self, n: int) -> dict:
        """Add ``n`` peers, each bootstrapped from a uniformly random existing peer (the first one alone).

        With ``join_concurrency`` J > 1, up to J new peers join at once, each from a peer that existed before its
        batch, and tables depend on how the joins interleave: the result no longer matches the sequential build
        (nor the message-free oracle), though the same seed and J still draw the same ids and bootstrap choices.
        """
        if type(n) is not int or n < 1:
            raise UsageError(f"the number of peers must be a positive integer, not {n!r}")
        started = time.perf_counter()
        remaining = n
        while remaining:
            batch = 1 if not self.peers else min(self.config.join_concurrency, remaining)
            joins, fresh = [], []
            for _ in range(batch):
                peer = self._spawn_peer()
                fresh.append(peer)
                if self.peers:
                    bootstrap = self.peers[self._rng.randrange(len(self.peers))]
                    joins.append((peer.contact, m.Join, (bootstrap.contact,)))
            self._command_many(joins)
            for peer in fresh:
                self.peers.insert(0, peer)
            remaining -= batch
            if self.config.pace:
                gevent.sleep(self.config.pace)
        self.seconds["create"] += time.perf_counter() - started
        return {"n": len(self.peers), "created": n}

    def _spawn_peer(self) -> Peer:
        peer = Peer(new_id(self._rng), ctx=self._ctx, endpoints=self._endpoints, config=self.config,
                    cookies=self._cookies, codec=self._codec, counters=self.counters)
        return peer.start()

    # -- commands -------------------------------------------------------------------------------------------------

    def ping(self) -> dict:
        return {"n": len(self.peers)}

    def stats(self) -> dict:
        """Counters since start, this process's memory and file descriptors, and time spent per phase."""
        dropped = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped.")}
        return {"peers": len(self.peers), "requests": self.counters["requests"], "replies": self.counters["replies"],
                "timeouts": self.counters["timeouts"], "dropped": self.counters["dropped"],
                "dropped_by_kind": dropped, "rss_bytes": _rss_bytes(), "fds": _open_fds(),
                "seconds": {phase: round(seconds, 6) for phase, seconds in self.seconds.items()}}

    def tables(self) -> list[Table]:
        """Every peer's current table, in list order (newest first), fetched from the peers' clients."""
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in self.peers])
        return [Table.from_preorder(reply.table, metric=self.config.metric, capacity=self.config.table_capacity)
                for reply in replies]

    def net_status(self, sample: int | None = None, routing: str = "auto") -> dict:
        """Table size and greedy-routing reach of every peer (§4.8), plus the hop counts of the routes that arrived
        (``hops``: histogram, mean, and the overall lookup success rate).

        ``sample``: None routes all N² pairs up to ``status_exact_limit`` peers and samples ``status_sample``
        targets per peer above; 0 forces all pairs; K > 0 samples K seeded random targets per peer and adds
        ``sample``, ``estimate`` and ``ci95`` (percent) to the result. ``routing``: ``messages`` drives every route
        with ``find_peer`` commands, ``local`` fetches each table once and routes on them (same result, see
        :mod:`p2pzmq.status`), ``auto`` uses messages up to ``status_local_above`` peers.
        """
        if sample is not None and (type(sample) is not int or sample < 0):
            raise UsageError(f"sample must be a non-negative integer, not {sample!r}")
        if routing not in ROUTINGS:
            raise UsageError(f"unknown routing {routing!r}; choose one of {', '.join(ROUTINGS)}")
        started = time.perf_counter()
        peers = self.peers
        n = len(peers)
        if sample is None:
            sample = 0 if n <= self.config.status_exact_limit else self.config.status_sample
        ids = [peer.id for peer in peers]
        targets = [ids] * n if sample == 0 else status.sample_targets(self._status_rng, ids, sample)
        tables = self.tables()
        if routing == "local" or (routing == "auto" and n > self.config.status_local_above):
            reached, hops = self._route_locally(dict(zip(ids, tables)), ids, targets)
        else:
            reached, hops = self._route_pairs([peer.contact for peer in peers], targets)
        per_peer = sample or n
        rows = []
        for index, (peer, table, count) in enumerate(zip(peers, tables, reached), start=1):
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": len(table), "reachable": count,
                         "percent": int(count / per_peer * 100)})
        result = {"n": n, "connectivity": int(sum(row["percent"] for row in rows) / n), "peers": rows,
                  "hops": _hop_summary(hops, n * per_peer)}
        if sample:
            result.update(status.estimate(reached, sample), sample=sample)
        self.seconds["net_status"] += time.perf_counter() - started
        return result

    def _route_locally(self, tables: dict[int, Table], ids: list[int], targets: list[list[int]]):
        """Like :meth:`_route_pairs`, computed on the tables instead of by messages."""
        steps = status.route_steps(tables, ((source, target) for source, row in zip(ids, targets) for target in row),
                                   self.config.max_hops)
        reached, hop_counts, position = [], collections.Counter(), 0
        for row in targets:
            arrived = [step for step in steps[position:position + len(row)] if step is not None]
            position += len(row)
            reached.append(len(arrived))
            hop_counts.update(arrived)
        return reached, hop_counts

    def _route_pairs(self, sources: list[Contact], targets: list[list[int]]) -> tuple[list[int], collections.Counter]:
        """Greedy-route from each source to each of its own targets within ``max_hops`` forwarding steps, driven by
        ``find_peer`` messages: how many targets each source reaches, and how many steps the successful routes took.

        Routes advance in rounds: each round asks every client that currently holds some routes for one step of
        all of them in a single ``find_peer`` batch, so the cost is messages per round, not per route.
        """
        max_hops = self.config.max_hops
        reached = [0] * len(sources)
        hop_counts: collections.Counter = collections.Counter()
        # Active routes: (source index, target id, hops left) grouped by the contact currently holding them.
        holding: dict[Contact, list[tuple[int, int, int]]] = collections.defaultdict(list)
        for index, (source, row) in enumerate(zip(sources, targets)):
            holding[source] = [(index, target, max_hops) for target in row]
        while holding:
            asks = []
            for contact, routes in holding.items():
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
        for peer in self.peers:
            self._command(peer.contact, m.Refresh)
        self.seconds["refresh"] += time.perf_counter() - started
        return {"refreshed": len(self.peers)}

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
            for peer in self.peers:
                peer.stop()
            self._sock.close()
            self.sockets_left_open = self._ctx.term()
            if self.sockets_left_open:
                log.warning("%d sockets were still open at shutdown", self.sockets_left_open)
        return {"stopping": True}

    # -- talking to clients ---------------------------------------------------------------------------------------

    def _command(self, contact: Contact, kind, *args):
        return self._command_many([(contact, kind, args)])[0]

    def _command_many(self, calls: list[tuple[Contact, type, tuple]]) -> list:
        """Send each command to its contact's client and return the replies in order.

        Up to ``COMMAND_WINDOW`` commands are in flight at once. Join and refresh may take long (a walk of 160
        targets), so they wait up to ``command_timeout``; other commands are quick and must show progress within
        ``client_timeout``. A client that does not answer in time raises :class:`RpcTimeout`.
        """
        results: list = [None] * len(calls)
        for start in range(0, len(calls), COMMAND_WINDOW):
            window = calls[start:start + COMMAND_WINDOW]
            waiting = {}
            for offset, (contact, kind, args) in enumerate(window):
                req_id, cookie = next(self._request_ids), new_cookie(self._cookies)
                route = self._sock.route(contact.client)
                self._sock.send_to(route, m.encode(kind(req_id, cookie, *args)))
                self.counters["requests"] += 1
                waiting[req_id] = (start + offset, cookie, route, _REPLY_TO[kind])
            slow = any(kind in (m.Join, m.Refresh) for _, kind, _ in window)
            self._collect(waiting, results, self.config.command_timeout if slow else self.config.client_timeout)
        return results

    def _collect(self, waiting: dict, results: list, timeout: float) -> None:
        """Receive the replies in ``waiting``; ``timeout`` bounds the wait for each next one."""
        while waiting:
            try:
                with gevent.Timeout(timeout, RpcTimeout(f"{len(waiting)} peer client(s) did not answer")):
                    sender, *frames = self._sock.recv()
            except RpcTimeout:
                self.counters["timeouts"] += 1
                raise  # late replies will not match any request id and cookie: they are dropped when they come
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


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; 0 where unavailable)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
