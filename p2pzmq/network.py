"""The supervisor: builds a network of peers and drives it (DESIGN.md §4.8). It returns data; callers format it.

Commands to peers go through the supervisor's own ROUTER socket to each peer's client, tagged with a request id and
cookie, so a stray message is never taken for a reply (§4.9). Whoever drives a :class:`Network` (the CLI's main
greenlet or the control server's greenlet) owns that socket; a network is driven by one greenlet at a time.
"""
from __future__ import annotations

import collections
import functools
import itertools
import json
import logging
import math
import os
import random
import time
from typing import Callable

import gevent
import gevent.lock
from gevent.threadpool import ThreadPool

from . import discovery, graph, security, status
from . import messages as m
from .churn import ChurnPlan, Schedule
from .config import Config
from .errors import ProtocolError, RpcTimeout, TransportError, UsageError
from .hosting import LocalHost, RemoteHost, Watch, process_usage
from .ids import new_cookie, new_id, parse_id
from .peer import Peer
from .table import Contact, Table
from .transport import Context, Endpoints

log = logging.getLogger(__name__)

#: At most this many commands are in flight from the supervisor at once (and as many live connections).
COMMAND_WINDOW = 256
#: Peers are started this many at a time (sockets bound, one link message per worker), then joined one by one.
SPAWN_BATCH = 64
#: The reply each client command must get.
_REPLY_TO = {m.ClientPeers: m.PeersReply, m.FindPeers: m.FoundPeers, m.Join: m.Done, m.Refresh: m.Done,
             m.Depart: m.Done}
#: How many departed peers (killed or left) are remembered for ``peers`` and ``net_status``.
MAX_DEPARTED = 10_000


class _NoReply:
    """The result of a command whose client did not answer in time (``_command_many(..., tolerate=True)``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = _NoReply()


class _Departed:
    """Where a killed or departed peer lives in ``Network._host_of``: nowhere, so no command is sent to it (a command
    to a dead tcp peer would cost ``client_timeout``, and with workers ``heartbeat_timeout`` more)."""

    __slots__ = ()
    alive = False


DEPARTED = _Departed()


def _serialized(method):
    """Run ``method`` holding the network's lock: the supervisor socket is used by one greenlet at a time, and
    a command (e.g. net_status) never sees the peer list change under it while churn runs in the background."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            with self._lock:
                return method(self, *args, **kwargs)
        finally:
            gevent.sleep(0)  # let a greenlet waiting for the lock have it before this one asks again
    return run


def _outcome(function: Callable, args: tuple) -> tuple[bool, object]:
    """``(True, function(*args))``, or ``(False, the exception it raised)``: a task of gevent's thread pool that
    raises gets its traceback printed on stderr, so errors travel back as values and are raised in the caller."""
    try:
        return True, function(*args)
    except Exception as exc:  # raised again by the greenlet that waits for it
        return False, exc


_COOKIE_STREAM = 0x9E3779B97F4A7C15  # cookies come from their own stream, so ids and bootstraps never depend on them
_STATUS_STREAM = 0x5DEECE66D  # so do net_status's sampled targets
#: How net_status may drive its routes (see :meth:`Network.net_status`).
ROUTINGS = ("auto", "messages", "local")


#: ``progress(phase, done, total)``: told how far a long operation (create, refresh, net_status, time_lapse) is.
Progress = Callable[[str, int, int], None]


class Network:
    """A simulated network in this process. Use as a context manager, or call :meth:`die` when done.

    ``Network(config)`` builds an empty network from a :class:`Config`; ``Network(n, seed=1, metric="xor")`` takes
    the config's fields as keywords and creates ``n`` peers at once (both forms take keywords that override the
    config). Every control command has a method of the same name returning the same data.
    """

    def __init__(self, config: Config | int | None = None, *, progress: Progress | None = None,
                 **options) -> None:
        n = None
        if isinstance(config, int) and not isinstance(config, bool):
            n, config = config, None
        if config is None:
            config = Config(**options)
        elif options:
            config = config.replace(**options)
        self.config = config
        seed = self.config.seed
        self._rng = random.Random(seed)
        self._cookies = random.Random(None if seed is None else seed ^ _COOKIE_STREAM)
        self._status_rng = random.Random(None if seed is None else seed ^ _STATUS_STREAM)
        self.counters: collections.Counter = collections.Counter()
        self._codec = m.Codec(self.config.max_message_bytes)
        self._ctx = Context(max_message_bytes=self.config.max_message_bytes, tcp_backlog=self.config.tcp_backlog)
        self._endpoints = Endpoints(self.config.transport, self._ctx.namespace, self.config.host)
        self._sock = self._ctx.router(max_connections=COMMAND_WINDOW,
                                      handshake_timeout=self.config.client_timeout)
        self._request_ids = itertools.count(1)
        self.peers: list = []  # newest first, as the original keeps them; Peer here, RemotePeer in a worker; only
        # peers not killed or gone
        #: Peers that were killed or left, oldest first, as (contact, "killed" | "left").
        self.departed: collections.deque[tuple[Contact, str]] = collections.deque(maxlen=MAX_DEPARTED)
        self._lock = gevent.lock.RLock()
        self._churn: gevent.Greenlet | None = None
        #: What the last churn did so far.
        self.churned: dict = {"joined": 0, "killed": 0, "left": 0, "running": False}
        self.local = LocalHost(ctx=self._ctx, endpoints=self._endpoints, config=self.config, cookies=self._cookies,
                               codec=self._codec, counters=self.counters)
        self.workers: list[RemoteHost] = []
        self._host_of: dict[str, object] = {}  # client endpoint -> the host of a worker's or a departed peer
        self._link = None  # socket to the workers, created with the first one
        self._keys = security.load(self.config.curve_dir)
        self._watch: Watch | None = None
        self._pool: ThreadPool | None = None  # one native thread for pure CPU work, made on first use
        self.seconds: dict[str, float] = {"create": 0.0, "refresh": 0.0, "net_status": 0.0}
        self.closed = False
        #: Sockets that were still open when the context was terminated (owners should have closed them all).
        self.sockets_left_open = 0
        #: Called as long operations advance (see :data:`Progress`); None: nobody is watching.
        self.progress = progress
        if n is not None:
            try:
                self.create(n)
            except BaseException:
                self.die()
                raise

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.die()

    # -- building -------------------------------------------------------------------------------------------------

    @_serialized
    def create(self, n: int, hosts: list | None = None, concurrency: int | None = None) -> dict:
        """Add ``n`` peers, each bootstrapped from a uniformly random existing peer (the first one alone).

        Peers go round-robin to ``hosts`` (default: the live workers, else this process). Ids and bootstrap choices
        are drawn up front in exactly the order one process would draw them, so where a peer lives never changes
        the network. A host without room for its share refuses before any peer is made.

        With ``concurrency`` (default: ``join_concurrency``) J > 1, up to J new peers join at once, each from a
        peer that existed before its batch, and tables depend on how the joins interleave: the result no longer
        matches the sequential build (nor the message-free oracle), though the same seed and J still draw the same
        ids and bootstrap choices.
        """
        if type(n) is not int or n < 1:
            raise UsageError(f"the number of peers must be a positive integer, not {n!r}")
        concurrency = _concurrency(concurrency, self.config)
        hosts = hosts or [worker for worker in self.workers if worker.alive] or [self.local]
        for host in hosts:
            share = len(range(hosts.index(host), n, len(hosts)))
            if share > host.room():
                raise UsageError(f"{host.name} has room for {host.room()} more peers within its file descriptor "
                                 f"limit, not {share}; add workers")
        started = time.perf_counter()
        batches: list[list[tuple[int, int | None]]] = []  # join batches of (id, index of the bootstrap peer)
        count = len(self.peers)
        while count < len(self.peers) + n:
            size = 1 if count == 0 else min(concurrency, len(self.peers) + n - count)
            batches.append([(new_id(self._rng), self._rng.randrange(count) if count else None)
                            for _ in range(size)])
            count += size
        plan = [item for batch in batches for item in batch]
        spawned: collections.deque = collections.deque()
        done = 0
        for batch in batches:
            while len(spawned) < len(batch):  # start peers on their hosts SPAWN_BATCH at a time
                chunk = plan[done + len(spawned): done + len(spawned) + SPAWN_BATCH]
                spawned.extend(self._spawn(chunk, hosts, done + len(spawned)))
            fresh = [spawned.popleft() for _ in batch]
            self._command_many([(peer.contact, m.Join, (self.peers[bootstrap].contact,))
                                for peer, (_, bootstrap) in zip(fresh, batch) if bootstrap is not None])
            for peer in fresh:
                self.peers.insert(0, peer)
            done += len(batch)
            self._report("create", done, n)
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
        """Counters since start (drops by where and by reason), memory, file descriptors, time spent per phase, what
        background churn did and how many peers departed."""
        dropped = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped.")}
        reasons = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped_reason.")}
        return {"peers": len(self.peers), "requests": self.counters["requests"], "replies": self.counters["replies"],
                "timeouts": self.counters["timeouts"], "dropped": self.counters["dropped"],
                "dropped_by_kind": dropped, "dropped_by_reason": reasons, **process_usage(),
                "seconds": {phase: round(seconds, 6) for phase, seconds in self.seconds.items()},
                "churn": dict(self.churned), "dead": len(self.departed), **self._worker_stats()}

    def _worker_stats(self) -> dict:
        """Each live worker's own counters, memory and fds (a gone worker shows only that it is gone)."""
        if not self.workers:
            return {}
        return {"workers": [{**worker.describe(), **(_without_link_fields(worker.stats()) if worker.alive else {})}
                            for worker in self.workers]}

    @_serialized
    def tables(self) -> list[Table]:
        """Every peer's current table, in list order (newest first), fetched from the peers' clients."""
        return self._tables_of(self.peers)

    def _tables_of(self, peers: list) -> list[Table]:
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in peers])
        return self._off_loop(self._tables_from, [reply.table if reply else [] for reply in replies])

    def _tables_from(self, preorders: list[list[Contact]]) -> list[Table]:
        return [Table.from_preorder(preorder, metric=self.config.metric, capacity=self.config.table_capacity)
                for preorder in preorders]

    @_serialized
    def net_status(self, sample: int | None = None, routing: str = "auto") -> dict:
        """Table size and greedy-routing reach of every alive peer (§4.8), plus the hop counts of the routes that
        arrived (``hops``: histogram, mean, and the overall lookup success rate).

        Only peers that are alive count: those killed or gone, and those whose client does not answer within
        ``client_timeout``, are listed in ``dead`` (``{"id", "state"}``, state ``killed``, ``left`` or
        ``unresponsive``); ``n`` and ``connectivity`` are over the alive ones (``alive`` = ``n``). A route whose
        next hop is a dead peer fails (peers killed or gone are not asked; an unresponsive one costs
        ``client_timeout`` with message routing); ``failed_hops`` counts them.

        ``sample``: None routes all N² pairs up to ``status_exact_limit`` peers and samples ``status_sample``
        targets per peer above; 0 forces all pairs; K > 0 samples K seeded random targets per peer and adds
        ``sample``, ``estimate`` and ``ci95`` (percent) to the result. ``routing``: ``messages`` drives every route
        with ``find_peer`` commands, batched per round (each round asks every client that holds some routes for one
        step of all of them); ``local`` fetches each table once and routes on them (same result, see
        :mod:`p2pzmq.status`); ``auto`` uses messages up to ``status_local_above`` peers.
        """
        if sample is not None and (type(sample) is not int or not 0 <= sample <= len(self.peers)):
            raise UsageError(f"sample must be an integer from 0 (all pairs) to {len(self.peers)} (the number of "
                             f"peers), not {sample!r}")
        if routing not in ROUTINGS:
            raise UsageError(f"unknown routing {routing!r}; choose one of {', '.join(ROUTINGS)}")
        started = time.perf_counter()
        listed = list(self.peers)
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in listed], tolerate=True)
        alive = [(index, peer, reply) for index, (peer, reply) in enumerate(zip(listed, replies), start=1)
                 if reply is not NO_REPLY and reply is not None]
        dead = [{"id": str(peer.id), "state": _state_of(reply)} for peer, reply in zip(listed, replies)
                if reply is NO_REPLY or reply is None]
        dead += [{"id": str(contact.id), "state": state} for contact, state in self.departed]
        n = len(alive)
        if sample is None:
            sample = 0 if n <= self.config.status_exact_limit else self.config.status_sample
        ids = [peer.id for _, peer, _ in alive]
        targets = [ids] * n if sample == 0 else self._off_loop(status.sample_targets, self._status_rng, ids, sample)
        if routing == "local" or (routing == "auto" and n > self.config.status_local_above):
            preorders = [reply.table for _, _, reply in alive]
            reached, hops, failed = self._off_loop(self._route_locally, preorders, ids, targets)
        else:
            reached, hops, failed = self._route_pairs([peer.contact for _, peer, _ in alive], targets)
        per_peer = sample or n
        rows = []
        for (index, peer, reply), count in zip(alive, reached):
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": len(reply.table), "reachable": count,
                         "percent": int(count / per_peer * 100)})
        result = {"n": n, "connectivity": int(sum(row["percent"] for row in rows) / n) if n else 0, "peers": rows,
                  "hops": _hop_summary(hops, n * per_peer), "alive": n, "dead": dead, "failed_hops": failed}
        if sample and n:
            result.update(status.estimate(reached, sample), sample=sample)
        self._report("net_status", self.config.max_hops + 1, self.config.max_hops + 1)
        self.seconds["net_status"] += time.perf_counter() - started
        if self.workers:
            result.update(workers=[worker.describe() for worker in self.workers], unreachable=self._unreachable())
        return result

    def route_sample(self, size: int, seed: int = 0) -> dict:
        """Greedy routing between ``size`` sources and ``size`` targets drawn with ``random.Random(seed)``: the
        same hop summary as :meth:`net_status` at a cost of size² routes instead of N² (for very large networks)."""
        if type(size) is not int or size < 1:
            raise UsageError(f"the sample size must be a positive integer, not {size!r}")
        started = time.perf_counter()
        picker = random.Random(seed)
        sources = picker.sample(self.peers, min(size, len(self.peers)))
        targets = [peer.id for peer in picker.sample(self.peers, min(size, len(self.peers)))]
        sizes = [len(table) for table in self._tables_of(sources)]
        _, hops, _ = self._route_pairs([peer.contact for peer in sources], [targets] * len(sources))
        self.seconds["net_status"] += time.perf_counter() - started
        return {"n": len(self.peers), "sources": len(sources), "targets": len(targets),
                "mean_tree_size": round(sum(sizes) / len(sizes), 3), "hops": _hop_summary(hops, len(sources) *
                                                                                           len(targets))}

    def _route_locally(self, preorders: list[list[Contact]], ids: list[int], targets: list[list[int]]):
        """Like :meth:`_route_pairs`, computed on the tables (``preorders``, of the peers ``ids``) instead of by
        messages. Pure: run it with :meth:`_off_loop`."""
        tables = dict(zip(ids, self._tables_from(preorders)))
        steps = status.route_steps(tables, ((source, target) for source, row in zip(ids, targets) for target in row),
                                   self.config.max_hops)
        reached, hop_counts, position = [], collections.Counter(), 0
        for row in targets:
            arrived = [step for step in steps[position:position + len(row)] if step is not None and step >= 0]
            position += len(row)
            reached.append(len(arrived))
            hop_counts.update(arrived)
        return reached, hop_counts, steps.count(status.DEAD)

    def _route_pairs(self, sources: list[Contact],
                     targets: list[list[int]]) -> tuple[list[int], collections.Counter, int]:
        """Greedy-route from each source to each of its own targets within ``max_hops`` forwarding steps, driven by
        ``find_peer`` messages: how many targets each source reaches, how many steps the successful routes took,
        and how many routes failed because the peer holding them did not answer (dead)."""
        max_hops = self.config.max_hops
        reached = [0] * len(sources)
        hop_counts: collections.Counter = collections.Counter()
        failed = 0
        # Active routes: (source index, target id, hops left) grouped by the contact currently holding them.
        holding: dict[Contact, list[tuple[int, int, int]]] = collections.defaultdict(list)
        for index, (source, row) in enumerate(zip(sources, targets)):
            if self._alive(source):
                holding[source] = [(index, target, max_hops) for target in row]
        rounds = 0
        while holding:
            self._report("net_status", rounds, max_hops + 1)  # a route takes at most max_hops + 1 rounds
            rounds += 1
            asks = []
            for contact, routes in holding.items():
                if not self._alive(contact):  # departed, or its worker is gone: routes that must ask it fail
                    failed += sum(1 for route in routes if route[2] > 0)
                    continue
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
                                          for contact, live in asks], tolerate=True)
            holding = collections.defaultdict(list)
            for (contact, live), reply in zip(asks, replies):
                if reply is NO_REPLY or reply is None:  # a dead peer, or its worker went away meanwhile
                    failed += len(live)
                    continue
                if len(reply.picks) != len(live):
                    raise ProtocolError(f"find_peer answered {len(reply.picks)} of {len(live)} targets")
                for (index, target, hops), pick in zip(live, reply.picks):
                    answer = reply.contacts[pick]
                    if answer.id != contact.id:  # a peer that names itself is as close as the route gets
                        holding[answer].append((index, target, hops - 1))
        return reached, hop_counts, failed

    @_serialized
    def refresh_peers(self, concurrency: int | None = None) -> dict:
        """Refresh every peer in list order, one at a time, each waiting for the previous one's ``done``; with
        ``concurrency`` (default: ``join_concurrency``) J > 1, J at a time (faster over workers; the tables then
        depend on how the walks interleave)."""
        concurrency = _concurrency(concurrency, self.config)
        started = time.perf_counter()
        listed = list(self.peers)
        refreshed = 0
        for start in range(0, len(listed), concurrency):
            batch = listed[start:start + concurrency]
            replies = self._command_many([(peer.contact, m.Refresh, ()) for peer in batch], window=concurrency)
            refreshed += sum(reply is not None for reply in replies)
            self._report("refresh", start + len(batch), len(listed))
        self.seconds["refresh"] += time.perf_counter() - started
        return {"refreshed": refreshed}

    @_serialized
    def output_tgf(self, path: str) -> dict:
        """Write the network as TGF (§4.8) to ``path`` (see :func:`.graph.output_file`; the result has the
        absolute path written)."""
        path = os.path.abspath(graph.output_file(path, None, ["tgf"])[0])
        ids = [peer.id for peer in self.peers]
        edges = self._off_loop(graph.write_tgf, path, ids, self.tables())
        return {"path": path, "nodes": len(ids), "edges": edges}

    @_serialized
    def output_graph(self, path: str, format: str | None = None) -> dict:
        """Write the network to ``path`` as ``format`` (tgf, graphml, gexf, dot or json; None: as the extension
        says, else tgf; see :func:`.graph.output_file`)."""
        path, format = graph.output_file(path, format, graph.FORMATS)
        path = os.path.abspath(path)
        ids, tables, extras = self.snapshot()
        edges = self._off_loop(graph.write_graph, path, format, ids, tables, extras)
        return {"path": path, "format": format, "nodes": len(ids), "edges": edges}

    @_serialized
    def output_png(self, path: str, width: int = 1000, height: int = 1000) -> dict:
        """Draw the overlay to a ``width`` x ``height`` pixel PNG (needs matplotlib: the ``plot`` extra)."""
        from . import plot

        path = os.path.abspath(graph.output_file(path, None, ["png"])[0])
        plot.check_size("width", width)
        plot.check_size("height", height)
        plot.require_matplotlib()
        ids, tables, extras = self.snapshot()
        drawn = self._off_loop(graph.to_networkx, ids, tables, extras)
        self._off_loop(plot.draw_overlay, drawn, path, width, height)
        return {"path": path, "width": width, "height": height, "nodes": drawn.number_of_nodes(),
                "edges": drawn.number_of_edges()}

    @_serialized
    def snapshot(self) -> tuple[list[int], list[Table], list[dict]]:
        """Peer ids (newest first), their tables, and per peer the node attributes ``alive``, ``host`` (the tcp
        host, or ``inproc``) and ``process`` (the pid of the process hosting it); consistent even while churn runs
        (pairing :attr:`peers` with :meth:`tables` yourself is not: churn may change the list in between)."""
        pid = os.getpid()
        extras = [{"alive": peer.alive, "host": _host(peer.contact.server), "process": pid} for peer in self.peers]
        return [peer.id for peer in self.peers], self.tables(), extras

    @_serialized
    def lookup(self, source: int | str, target: int | str) -> dict:
        """Look ``target`` up from peer ``source`` (ids as ints or decimal strings), two ways, without changing
        any table:

        - ``route``: the greedy route of ``net_status``: ask the current peer's client for its closest entry, one
          hop at a time, within ``max_hops`` forwarding steps. ``reached`` and ``hops`` agree with net_status.
        - ``walk``: the discovery walk of a join or refresh (§4.7). A real walk sends ``find_closest`` to servers,
          which then add the walker to their tables; this one asks each visited peer's client for its table
          instead (a read that adds nobody) and applies the same rule, so it shows the path a refresh would take now.

        Every path is a list of decimal ids starting at ``source``.
        """
        start = self._peer(source).contact
        target_id = _parse_id(target, "id")
        return {"from": str(start.id), "id": str(target_id), "route": self._greedy_route(start, target_id),
                "walk": self._simulated_walk(start, target_id)}

    def _greedy_route(self, start: Contact, target: int) -> dict:
        path, current, hops = [start], start, self.config.max_hops
        while current.id != target and hops > 0:
            reply = self._command(current, m.FindPeers, [target])
            answer = reply.contacts[reply.picks[0]]
            if answer.id == current.id:
                break
            path.append(answer)
            current, hops = answer, hops - 1
        return {"path": [str(contact.id) for contact in path], "hops": len(path) - 1, "reached": current.id == target}

    def _simulated_walk(self, start: Contact, target: int) -> dict:
        tables: dict[int, Table] = {}
        asked: list[Contact] = []

        def table_of(contact: Contact) -> Table:
            if contact.id not in tables:
                reply = self._command(contact, m.ClientPeers)
                tables[contact.id] = Table.from_preorder(reply.table, metric=self.config.metric,
                                                         capacity=self.config.table_capacity)
            return tables[contact.id]

        def find_closest(contact: Contact, wanted: int) -> Contact:
            asked.append(contact)
            return table_of(contact).closest(wanted)

        found = discovery.walk(start, table_of(start), target, find_closest, self.config.max_hops)
        path = [start.id]
        for contact_id in [contact.id for contact in asked] + [found.id]:
            if contact_id != path[-1]:
                path.append(contact_id)
        return {"path": [str(peer_id) for peer_id in path], "queried": len(asked), "found": str(found.id),
                "exact": found.id == target}

    def _peer(self, peer_id: int | str) -> Peer:
        wanted = _parse_id(peer_id, "from")
        for peer in self.peers:
            if peer.id == wanted:
                return peer
        raise UsageError(f"no peer has id {wanted}")

    @_serialized
    def time_lapse(self, steps: int, directory: str = ".", format: str = "tgf", status: bool = False) -> dict:
        """``steps`` times: refresh every peer, then write ``time-lapse-<i>.<format>`` in ``directory``.

        With ``status``, it also runs :meth:`net_status` before the first refresh and after each one, and records
        per step the connectivity, lookup success rate, mean hops and mean table size under ``steps`` in the
        result and in ``time-lapse.json`` in ``directory`` (what ``p2p-network plot --time-lapse`` charts).
        """
        if type(steps) is not int or steps < 0:
            raise UsageError(f"time-lapse steps must be a non-negative integer, not {steps!r}")
        if format not in graph.FORMATS:
            raise UsageError(f"unknown graph format {format!r}; choose one of {', '.join(graph.FORMATS)}")
        directory = os.path.abspath(graph.check_path(directory, "directory"))
        history = [self._step_status(0, None)] if status else []
        files = []
        for step in range(1, steps + 1):
            self._report("time_lapse", step - 1, steps)
            self.refresh_peers()
            path = os.path.join(directory, f"time-lapse-{step}.{graph.FORMATS[format]}")
            self.output_graph(path, format)
            files.append(path)
            if status:
                history.append(self._step_status(step, path))
        self._report("time_lapse", steps, steps)
        if not status:
            return {"files": files}
        graph.write_text(os.path.join(directory, "time-lapse.json"),
                         json.dumps({"n": len(self.peers), "metric": self.config.metric, "steps": history}) + "\n")
        return {"files": files, "steps": history}

    def _step_status(self, step: int, path: str | None) -> dict:
        result = self.net_status()
        sizes = [peer["tree_size"] for peer in result["peers"]]
        return {"step": step, "file": path, "connectivity": result["connectivity"],
                "success_rate": result["hops"]["success_rate"], "mean_hops": result["hops"]["mean"],
                "mean_table_size": round(sum(sizes) / len(sizes), 4)}

    # -- dead peers and churn --------------------------------------------------------------------------------------

    @_serialized
    def peer_list(self) -> dict:
        """Every peer with its endpoints, whether it is alive (answers its client within ``client_timeout``), its
        state (``alive``, ``unresponsive``, ``killed``, ``left``) and its table size (None when not alive)."""
        listed = list(self.peers)
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in listed], tolerate=True)
        rows = []
        for peer, reply in zip(listed, replies):
            state = _state_of(reply)
            rows.append(_peer_row(peer.contact, state, len(reply.table) if state == "alive" else None))
        rows += [_peer_row(contact, state, None) for contact, state in self.departed]
        return {"alive": sum(row["alive"] for row in rows), "peers": rows}

    @_serialized
    def add_peers(self, n: int) -> dict:
        """``n`` more peers, each bootstrapped from a random alive one (as ``create``)."""
        self.create(n)
        return {"added": [str(peer.id) for peer in self.peers[:n]], "n": len(self.peers)}

    @_serialized
    def kill_peers(self, count: int | None = None, seed: int | None = None, ids: list | None = None) -> dict:
        """Crash peers: ``count`` of them drawn with ``seed``, or those in ``ids``. Their greenlets are killed and
        sockets closed, with no goodbye: whoever still lists them finds out by timing out."""
        chosen = self._choose(count, seed, ids)
        self._remove(chosen, "killed")
        return {"killed": [str(peer.id) for peer in chosen], "n": len(self.peers)}

    @_serialized
    def leave_peers(self, count: int | None = None, seed: int | None = None, ids: list | None = None) -> dict:
        """Peers leave gracefully: each tells the peers in its table (``Leave``, they remove it), then stops."""
        chosen = self._choose(count, seed, ids)
        self._command_many([(peer.contact, m.Depart, ()) for peer in chosen], tolerate=True)
        self._remove(chosen, "left")
        return {"left": [str(peer.id) for peer in chosen], "n": len(self.peers)}

    def _choose(self, count: int | None, seed: int | None, ids: list | None) -> list:
        """The peers named by ``ids`` (decimal strings) or ``count`` drawn with ``seed``, in list order."""
        if (count is None) == (ids is None):
            raise UsageError("give either count (with an optional seed) or ids")
        if ids is not None:
            wanted = [_parse_id(peer_id, "ids") for peer_id in ids]
            unknown = set(wanted) - {peer.id for peer in self.peers}
            if unknown or len(set(wanted)) != len(wanted):
                raise UsageError(f"not the ids of distinct alive peers: {', '.join(map(str, sorted(unknown))) or ids}")
            chosen = set(wanted)
            return [peer for peer in self.peers if peer.id in chosen]
        if type(count) is not int or not 0 <= count <= len(self.peers):
            raise UsageError(f"count must be an integer between 0 and {len(self.peers)}, not {count!r}")
        wanted = set(random.Random(seed).sample(range(len(self.peers)), count))
        return [peer for index, peer in enumerate(self.peers) if index in wanted]

    def _remove(self, peers: list, state: str) -> None:
        """Stop ``peers`` where they live (one link request per worker holding some) and list them as departed."""
        by_host: dict = collections.defaultdict(list)
        for peer in peers:
            by_host[self._host_of.get(peer.contact.client, self.local)].append(peer)
        for host, held in by_host.items():
            host.kill(held)
        doomed = {peer.contact.client for peer in peers}
        self.peers = [peer for peer in self.peers if peer.contact.client not in doomed]
        for peer in peers:
            self._sock.forget(peer.contact.client)
            self._host_of[peer.contact.client] = DEPARTED
            self.departed.append((peer.contact, state))
            self.counters[f"peers.{state}"] += 1

    def churn(self, join_rate: float, leave_rate: float, duration: float, crash_fraction: float = 0.5,
              seed: int | None = None, wait: bool = False) -> dict:
        """Start churn in the background for ``duration`` seconds (see :mod:`p2pzmq.churn`); other commands keep
        working meanwhile, each one in between churn events. With ``wait``, return only when it is over."""
        plan = ChurnPlan(join_rate, leave_rate, crash_fraction, duration, seed)
        if self.closed:
            raise UsageError("the network is stopped")
        if self._churn is not None and not self._churn.dead:
            raise UsageError("churn is already running")
        self.churned = {"joined": 0, "killed": 0, "left": 0, "running": True}
        self._churn = gevent.spawn(self._run_churn, plan)
        if wait:
            self._churn.join()
            return dict(self.churned)
        return {"started": True, "duration": duration}

    def _run_churn(self, plan: ChurnPlan) -> None:
        try:
            schedule = Schedule(plan, [peer.id for peer in self.peers], time.monotonic())
            while (event := schedule.next()) is not None and time.monotonic() < schedule.end:
                when, kind, peer_id = event
                gevent.sleep(max(0.0, when - time.monotonic()))
                if kind == "join":
                    schedule.arrived(int(self.add_peers(1)["added"][0]), time.monotonic())
                    self.churned["joined"] += 1
                else:
                    fate = plan.fate()
                    try:
                        (self.kill_peers if fate == "killed" else self.leave_peers)(ids=[str(peer_id)])
                    except UsageError:
                        continue  # a command killed it or made it leave in the meantime
                    self.churned[fate] += 1
            gevent.sleep(max(0.0, schedule.end - time.monotonic()))
        finally:
            self.churned["running"] = False

    def stop_churn(self) -> None:
        """Stop background churn now (if any)."""
        if self._churn is not None:
            self._churn.kill(block=True, timeout=self.config.shutdown_timeout)
            self._churn = None
            self.churned["running"] = False  # also when it was killed before it ever ran

    def die(self) -> dict:
        """Stop every peer and close every socket; nothing is left running. Idempotent."""
        if not self.closed:
            self.closed = True
            self.stop_churn()
            if self._watch is not None:
                self._watch.stop()
            for worker in self.workers:
                worker.stop()
            self.local.stop()
            if self._pool is not None:
                self._pool.kill()  # its thread ends when its task (if any) is done: bounded, then left to exit
                with gevent.Timeout(self.config.shutdown_timeout, False):
                    self._pool.join()
            if self._link is not None:
                self._link.close()
            self._sock.close()
            self.sockets_left_open = self._ctx.term()
            if self.sockets_left_open:
                log.warning("%d sockets were still open at shutdown", self.sockets_left_open)
        return {"stopping": True}

    def _off_loop(self, function: Callable, *args):
        """``function(*args)``, computed in this network's native thread while the calling greenlet waits.

        For pure CPU work on a snapshot of tables: routing a sampled status or writing a graph of 20,000 peers
        takes tens of seconds. Done in a greenlet it would stop this process's event loop for as long: no heartbeat
        would reach the workers, which stop by themselves after ``heartbeat_timeout`` of silence. In a thread the
        loop gets the GIL back every few milliseconds (the interpreter's switch interval). ``function`` must not
        touch sockets or greenlets.
        """
        if self._pool is None:
            self._pool = ThreadPool(1)
        ok, value = self._pool.apply(_outcome, (function, args))
        if not ok:
            raise value
        return value

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    # -- talking to clients ---------------------------------------------------------------------------------------

    def _command(self, contact: Contact, kind, *args):
        return self._command_many([(contact, kind, args)])[0]

    def _command_many(self, calls: list[tuple[Contact, type, tuple]], tolerate: bool = False,
                      window: int = COMMAND_WINDOW) -> list:
        """Send each command to its contact's client and return the replies in order.

        Up to ``window`` commands are in flight at once. Join, refresh and depart may take long (a walk of
        160 targets), so they wait up to ``command_timeout``; other commands are quick and must show progress
        within ``client_timeout``. A client that does not answer in time raises :class:`RpcTimeout`, or with
        ``tolerate`` gets :data:`NO_REPLY` in its place (the caller decides what a dead peer means); either way the
        connection to it is dropped, so nothing piles up for a peer that will never read it. A peer whose worker
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
                try:
                    route = self._sock.route(contact.client)
                    if not self._send(contact, route, m.encode(kind(req_id, cookie, *args))):
                        continue
                except TransportError as exc:
                    self._unanswered(contact, exc, tolerate)
                    results[start + offset] = NO_REPLY
                    continue
                self.counters["requests"] += 1
                waiting[req_id] = (start + offset, cookie, route, _REPLY_TO[kind], contact)
            self._collect(waiting, results, max(self._patience(kind) for _, kind, _ in batch), tolerate)
        return results

    def _patience(self, kind) -> float:
        """How long the supervisor waits for the next reply to a command of ``kind``."""
        config = self.config
        if kind in (m.Join, m.Refresh):
            return config.command_timeout  # a walk of 160 targets
        if kind is m.Depart:  # tells up to a table of peers goodbye, max_connections at a time
            return config.client_timeout * (math.ceil(config.table_capacity / config.max_connections) + 1)
        return config.client_timeout

    def _send(self, contact: Contact, route: bytes, frames: list[bytes]) -> bool:
        """Send a command to ``contact``'s client; False if its worker is (declared) gone before it could be sent.

        A tcp connection to a process that died never comes up again: the retries are cut into
        ``heartbeat_interval`` slices, checking the worker's liveness between them. Raises :class:`RpcTimeout`
        (or the transport's error) if the peer cannot be reached.
        """
        deadline = time.monotonic() + self.config.heartbeat_timeout + self.config.client_timeout
        while True:
            with gevent.Timeout(self.config.heartbeat_interval, False):
                self._sock.send_to(route, frames)
                return True
            if not self._alive(contact):
                return False
            if time.monotonic() > deadline:
                raise RpcTimeout(f"cannot reach the client of peer {contact.id}")

    def _collect(self, waiting: dict, results: list, timeout: float, tolerate: bool) -> None:
        """Receive the replies in ``waiting``; ``timeout`` bounds the wait for each next one. Requests to peers
        whose worker is declared gone meanwhile stop being waited for (checked every ``heartbeat_interval``), and
        with workers the wait is ``heartbeat_timeout`` longer, so that a death is declared before we give up.
        Requests still unanswered then raise, or with ``tolerate`` get :data:`NO_REPLY`."""
        if self.workers:
            timeout += self.config.heartbeat_timeout
        slice_ = min(timeout, self.config.heartbeat_interval) if self.workers else timeout
        last_progress = time.monotonic()
        while waiting:
            frames = None
            with gevent.Timeout(slice_, False):
                frames = self._sock.recv()
            if frames is None:
                for req_id in [req for req, entry in waiting.items() if not self._alive(entry[4])]:
                    del waiting[req_id]
                if waiting and time.monotonic() - last_progress >= timeout:
                    # Late replies will not match any request id and cookie: they are dropped if they ever come.
                    exc = RpcTimeout(f"{len(waiting)} peer client(s) did not answer")
                    for index, _, _, _, contact in waiting.values():
                        self._unanswered(contact, exc, tolerate)
                        results[index] = NO_REPLY
                    return
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

    def _unanswered(self, contact: Contact, exc: TransportError, tolerate: bool) -> None:
        self.counters["timeouts"] += 1
        self._sock.forget(contact.client)
        if not tolerate:
            raise exc

    def _drop(self, why) -> None:
        self.counters["dropped.supervisor"] += 1
        self.counters[f"dropped_reason.{why.reason if isinstance(why, ProtocolError) else 'unmatched'}"] += 1
        self.counters["dropped"] += 1
        log.debug("supervisor dropped a message: %s", why)


def _concurrency(value: int | None, config: Config) -> int:
    """How many joins or refreshes run at once: ``value``, or the configured ``join_concurrency``."""
    if value is None:
        return config.join_concurrency
    if type(value) is not int or value < 1:
        raise UsageError(f"concurrency must be a positive integer, not {value!r}")
    return value


def _state_of(reply) -> str:
    """A listed peer's state from its answer to a command: no answer in time, or its worker is gone."""
    if reply is NO_REPLY:
        return "unresponsive"
    return "unreachable" if reply is None else "alive"


def _peer_row(contact: Contact, state: str, tree_size: int | None) -> dict:
    return {"id": str(contact.id), "server": contact.server, "client": contact.client, "alive": state == "alive",
            "state": state, "tree_size": tree_size}


def _hop_summary(hop_counts: collections.Counter, lookups: int) -> dict:
    """Histogram of forwarding steps over successful lookups (keys are strings: JSON), their mean, success rate."""
    successes = sum(hop_counts.values())
    mean = sum(hops * count for hops, count in hop_counts.items()) / successes if successes else 0.0
    return {"histogram": {str(hops): hop_counts[hops] for hops in sorted(hop_counts)}, "mean": round(mean, 4),
            "success_rate": round(successes / lookups, 6) if lookups else 0.0}


def _parse_id(value: int | str, name: str) -> int:
    """A peer id given as an int or a decimal string (below 2**160); anything else is a usage error."""
    try:
        return parse_id(value)
    except ValueError:
        raise UsageError(f"{name} must be a peer id (decimal digits, below 2**160), not {value!r:.80}") from None


def _host(endpoint: str) -> str:
    """``inproc`` for an inproc endpoint, else the host part of ``tcp://host:port``."""
    scheme, _, rest = endpoint.partition("://")
    return "inproc" if scheme == "inproc" else rest.rsplit(":", 1)[0]


def _without_link_fields(reply: dict) -> dict:
    return {key: value for key, value in reply.items() if key not in ("req", "ok")}
