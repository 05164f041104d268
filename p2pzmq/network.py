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

from . import discovery, graph, status
from . import messages as m
from .churn import ChurnPlan, Schedule
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
        self.peers: list[Peer] = []  # newest first, as the original keeps them; only peers not killed or gone
        #: Peers that were killed or left, oldest first, as (contact, "killed" | "left").
        self.departed: collections.deque[tuple[Contact, str]] = collections.deque(maxlen=MAX_DEPARTED)
        self._lock = gevent.lock.RLock()
        self._churn: gevent.Greenlet | None = None
        #: What the last churn did so far.
        self.churned: dict = {"joined": 0, "killed": 0, "left": 0, "running": False}
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
            self._report("create", n - remaining, n)
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
        """Counters since start (drops by where and by reason), memory, file descriptors, time spent per phase, what
        background churn did and how many peers departed."""
        dropped = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped.")}
        reasons = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped_reason.")}
        return {"peers": len(self.peers), "requests": self.counters["requests"], "replies": self.counters["replies"],
                "timeouts": self.counters["timeouts"], "dropped": self.counters["dropped"],
                "dropped_by_kind": dropped, "dropped_by_reason": reasons, "rss_bytes": _rss_bytes(), "fds": _open_fds(),
                "seconds": {phase: round(seconds, 6) for phase, seconds in self.seconds.items()},
                "churn": dict(self.churned), "dead": len(self.departed)}

    @_serialized
    def tables(self) -> list[Table]:
        """Every peer's current table, in list order (newest first), fetched from the peers' clients."""
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in self.peers])
        return [Table.from_preorder(reply.table, metric=self.config.metric, capacity=self.config.table_capacity)
                for reply in replies]

    @_serialized
    def net_status(self, sample: int | None = None, routing: str = "auto") -> dict:
        """Table size and greedy-routing reach of every alive peer (§4.8), plus the hop counts of the routes that
        arrived (``hops``: histogram, mean, and the overall lookup success rate).

        Only peers that are alive count: those killed or gone, and those whose client does not answer within
        ``client_timeout``, are listed in ``dead`` (``{"id", "state"}``, state ``killed``, ``left`` or
        ``unresponsive``); ``n`` and ``connectivity`` are over the alive ones (``alive`` = ``n``). A route whose
        next hop is a dead peer fails (with message routing, after ``client_timeout``); ``failed_hops`` counts them.

        ``sample``: None routes all N² pairs up to ``status_exact_limit`` peers and samples ``status_sample``
        targets per peer above; 0 forces all pairs; K > 0 samples K seeded random targets per peer and adds
        ``sample``, ``estimate`` and ``ci95`` (percent) to the result. ``routing``: ``messages`` drives every route
        with ``find_peer`` commands, batched per round (each round asks every client that holds some routes for one
        step of all of them); ``local`` fetches each table once and routes on them (same result, see
        :mod:`p2pzmq.status`); ``auto`` uses messages up to ``status_local_above`` peers.
        """
        if sample is not None and (type(sample) is not int or sample < 0):
            raise UsageError(f"sample must be a non-negative integer, not {sample!r}")
        if routing not in ROUTINGS:
            raise UsageError(f"unknown routing {routing!r}; choose one of {', '.join(ROUTINGS)}")
        started = time.perf_counter()
        listed = list(self.peers)
        replies = self._command_many([(peer.contact, m.ClientPeers, ()) for peer in listed], tolerate=True)
        alive = [(index, peer, reply) for index, (peer, reply) in enumerate(zip(listed, replies), start=1)
                 if reply is not NO_REPLY]
        dead = [{"id": str(peer.id), "state": "unresponsive"} for peer, reply in zip(listed, replies)
                if reply is NO_REPLY]
        dead += [{"id": str(contact.id), "state": state} for contact, state in self.departed]
        n = len(alive)
        if sample is None:
            sample = 0 if n <= self.config.status_exact_limit else self.config.status_sample
        ids = [peer.id for _, peer, _ in alive]
        targets = [ids] * n if sample == 0 else status.sample_targets(self._status_rng, ids, sample)
        if routing == "local" or (routing == "auto" and n > self.config.status_local_above):
            tables = {peer.id: Table.from_preorder(reply.table, metric=self.config.metric,
                                                   capacity=self.config.table_capacity) for _, peer, reply in alive}
            reached, hops, failed = self._route_locally(tables, ids, targets)
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
        return result

    def _route_locally(self, tables: dict[int, Table], ids: list[int], targets: list[list[int]]):
        """Like :meth:`_route_pairs`, computed on the tables instead of by messages."""
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
            holding[source] = [(index, target, max_hops) for target in row]
        rounds = 0
        while holding:
            self._report("net_status", rounds, max_hops + 1)  # a route takes at most max_hops + 1 rounds
            rounds += 1
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
                                          for contact, live in asks], tolerate=True)
            holding = collections.defaultdict(list)
            for (contact, live), reply in zip(asks, replies):
                if reply is NO_REPLY:
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
    def refresh_peers(self) -> dict:
        """Refresh every peer in list order, one at a time, each waiting for the previous one's ``done``."""
        started = time.perf_counter()
        for done, peer in enumerate(list(self.peers), start=1):
            self._command(peer.contact, m.Refresh)
            self._report("refresh", done, len(self.peers))
        self.seconds["refresh"] += time.perf_counter() - started
        return {"refreshed": len(self.peers)}

    @_serialized
    def output_tgf(self, path: str) -> dict:
        """Write the network as TGF (§4.8) to ``path``."""
        ids = [peer.id for peer in self.peers]
        edges = graph.write_tgf(path, ids, self.tables())
        return {"path": path, "nodes": len(ids), "edges": edges}

    @_serialized
    def output_graph(self, path: str, format: str = "tgf") -> dict:
        """Write the network to ``path`` as ``format`` (tgf, graphml, gexf, dot or json; see :mod:`.graph`)."""
        ids, tables, extras = self.snapshot()
        edges = graph.write_graph(path, format, ids, tables, extras)
        return {"path": path, "format": format, "nodes": len(ids), "edges": edges}

    @_serialized
    def output_png(self, path: str, width: int = 1000, height: int = 1000) -> dict:
        """Draw the overlay to a ``width`` x ``height`` pixel PNG (needs matplotlib: the ``plot`` extra)."""
        from . import plot

        ids, tables, extras = self.snapshot()
        drawn = graph.to_networkx(ids, tables, extras)
        plot.draw_overlay(drawn, path, width, height)
        return {"path": path, "width": width, "height": height, "nodes": drawn.number_of_nodes(),
                "edges": drawn.number_of_edges()}

    def snapshot(self) -> tuple[list[int], list[Table], list[dict]]:
        """Peer ids (newest first), their tables, and per peer the node attributes ``alive``, ``host`` (the tcp
        host, or ``inproc``) and ``process`` (the pid of the process hosting it)."""
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
            alive = reply is not NO_REPLY
            rows.append(_peer_row(peer.contact, "alive" if alive else "unresponsive",
                                  len(reply.table) if alive else None))
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
        for peer in chosen:
            self._remove(peer, "killed")
        return {"killed": [str(peer.id) for peer in chosen], "n": len(self.peers)}

    @_serialized
    def leave_peers(self, count: int | None = None, seed: int | None = None, ids: list | None = None) -> dict:
        """Peers leave gracefully: each tells the peers in its table (``Leave``, they remove it), then stops."""
        chosen = self._choose(count, seed, ids)
        self._command_many([(peer.contact, m.Depart, ()) for peer in chosen], tolerate=True)
        for peer in chosen:
            self._remove(peer, "left")
        return {"left": [str(peer.id) for peer in chosen], "n": len(self.peers)}

    def _choose(self, count: int | None, seed: int | None, ids: list | None) -> list[Peer]:
        """The peers named by ``ids`` (decimal strings) or ``count`` drawn with ``seed``, in list order."""
        if (count is None) == (ids is None):
            raise UsageError("give either count (with an optional seed) or ids")
        if ids is not None:
            by_id = {str(peer.id): peer for peer in self.peers}
            unknown = [peer_id for peer_id in ids if peer_id not in by_id]
            if unknown or len(set(ids)) != len(ids):
                raise UsageError(f"not the ids of distinct alive peers: {', '.join(map(str, unknown)) or ids}")
            wanted = set(ids)
            return [peer for peer in self.peers if str(peer.id) in wanted]
        if type(count) is not int or not 0 <= count <= len(self.peers):
            raise UsageError(f"count must be an integer between 0 and {len(self.peers)}, not {count!r}")
        wanted = set(random.Random(seed).sample(range(len(self.peers)), count))
        return [peer for index, peer in enumerate(self.peers) if index in wanted]

    def _remove(self, peer: Peer, state: str) -> None:
        peer.stop()
        self.peers.remove(peer)
        self._sock.forget(peer.contact.client)
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
            for peer in self.peers:
                peer.stop()
            self._sock.close()
            self.sockets_left_open = self._ctx.term()
            if self.sockets_left_open:
                log.warning("%d sockets were still open at shutdown", self.sockets_left_open)
        return {"stopping": True}

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    # -- talking to clients ---------------------------------------------------------------------------------------

    def _command(self, contact: Contact, kind, *args):
        return self._command_many([(contact, kind, args)])[0]

    def _command_many(self, calls: list[tuple[Contact, type, tuple]], tolerate: bool = False) -> list:
        """Send each command to its contact's client and return the replies in order.

        Up to ``COMMAND_WINDOW`` commands are in flight at once. Join, refresh and depart may take long (a walk of
        160 targets), so they wait up to ``command_timeout``; other commands are quick and must show progress
        within ``client_timeout``. A client that does not answer in time raises :class:`RpcTimeout`, or with
        ``tolerate`` gets :data:`NO_REPLY` in its place (the caller decides what a dead peer means); either way the
        connection to it is dropped, so nothing piles up for a peer that will never read it.
        """
        results: list = [None] * len(calls)
        for start in range(0, len(calls), COMMAND_WINDOW):
            window = calls[start:start + COMMAND_WINDOW]
            waiting = {}
            for offset, (contact, kind, args) in enumerate(window):
                req_id, cookie = next(self._request_ids), new_cookie(self._cookies)
                try:
                    with gevent.Timeout(self.config.client_timeout, RpcTimeout(f"cannot reach {contact.client}")):
                        route = self._sock.route(contact.client)
                        self._sock.send_to(route, m.encode(kind(req_id, cookie, *args)))
                except TransportError as exc:
                    self._unanswered(contact, exc, tolerate)
                    results[start + offset] = NO_REPLY
                    continue
                self.counters["requests"] += 1
                waiting[req_id] = (start + offset, cookie, route, _REPLY_TO[kind], contact)
            self._collect(waiting, results, max(self._patience(kind) for _, kind, _ in window), tolerate)
        return results

    def _patience(self, kind) -> float:
        """How long the supervisor waits for the next reply to a command of ``kind``."""
        config = self.config
        if kind in (m.Join, m.Refresh):
            return config.command_timeout  # a walk of 160 targets
        if kind is m.Depart:  # tells up to a table of peers goodbye, max_connections at a time
            return config.client_timeout * (math.ceil(config.table_capacity / config.max_connections) + 1)
        return config.client_timeout

    def _collect(self, waiting: dict, results: list, timeout: float, tolerate: bool) -> None:
        """Receive the replies in ``waiting``; ``timeout`` bounds the wait for each next one."""
        while waiting:
            try:
                with gevent.Timeout(timeout, RpcTimeout(f"{len(waiting)} peer client(s) did not answer")):
                    sender, *frames = self._sock.recv()
            except RpcTimeout as exc:
                # Late replies will not match any request id and cookie: they are dropped if they ever come.
                for index, _, _, _, contact in waiting.values():
                    self._unanswered(contact, exc, tolerate)
                    results[index] = NO_REPLY
                return
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
    """A peer id given as an int or a decimal string; anything else is a usage error."""
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    raise UsageError(f"{name} must be a peer id (decimal digits), not {value!r}")


def _host(endpoint: str) -> str:
    """``inproc`` for an inproc endpoint, else the host part of ``tcp://host:port``."""
    scheme, _, rest = endpoint.partition("://")
    return "inproc" if scheme == "inproc" else rest.rsplit(":", 1)[0]


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
