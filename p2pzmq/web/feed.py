"""What the web view sends its page besides command replies (docs/DESIGN.md §9): the live event feed and the graph
snapshot, thinned to what a browser can draw.

:func:`thin` is pure. :class:`Feed` only queues events and hands them out in batches: its subscription callback
runs in the greenlet that emitted the event and never blocks it. :class:`Snapshots` reads the network through
``network.entries()``, one read at a time however many pages ask, and at most a bounded share of the time.
"""
from __future__ import annotations

import collections
import json
import math
import time
from typing import Callable, Iterator

import gevent
import gevent.event

from ..config import (WEB_FEED_BACKLOG, WEB_FEED_HEARTBEAT, WEB_FEED_INTERVAL, WEB_GRAPH_DUTY, WEB_GRAPH_EDGES,
                      WEB_READ_SLICE)


def thin(targets: list[int], keep: int) -> list[int]:
    """At most ``keep`` of ``targets``, spread evenly over the list and in its order, the first always kept: a
    table's entries are in id order, so near and far contacts both stay in the picture."""
    if keep <= 0:
        return []
    if len(targets) <= keep:
        return list(targets)
    return [targets[k * len(targets) // keep] for k in range(keep)]


class Feed:
    """The events of ``events`` (a network's :class:`~p2pzmq.events.Events`) since the feed opened, as
    Server-Sent Events: one ``data:`` line a batch, ``{"events": [...], "dropped": N}``, where ``dropped`` counts
    the events a slow reader lost since the feed opened (at most ``backlog`` wait)."""

    def __init__(self, events, backlog: int = WEB_FEED_BACKLOG) -> None:
        self._queue: collections.deque[dict] = collections.deque()
        self._backlog = backlog
        self._arrived = gevent.event.Event()
        self.dropped = 0
        self._unsubscribe = events.subscribe(self._take)

    def _take(self, event: dict) -> None:
        if len(self._queue) >= self._backlog:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._arrived.set()

    def stream(self, closing: gevent.event.Event, interval: float = WEB_FEED_INTERVAL,
               heartbeat: float = WEB_FEED_HEARTBEAT) -> Iterator[bytes]:
        """The response body: batches until ``closing`` is set (the server stops) or the reader goes away (the
        server stops iterating); the subscription ends with it."""
        try:
            yield b"retry: 2000\n\n"
            while not closing.is_set():
                gevent.wait([self._arrived, closing], timeout=heartbeat, count=1)
                if closing.is_set():
                    return
                if not self._queue:
                    yield b": idle\n\n"
                    continue
                batch = list(self._queue)
                self._queue.clear()
                self._arrived.clear()
                yield b"data: " + json.dumps({"events": batch, "dropped": self.dropped}).encode() + b"\n\n"
                closing.wait(interval)  # the next batch gathers meanwhile
        finally:
            self._unsubscribe()


class Snapshots:
    """The overlay as the page draws it, read from ``network`` (:meth:`Network.entries
    <p2pzmq.network.Network.entries>`, in slices of about ``slice_seconds`` between which the event loop runs) and
    kept: pages asking while a read is under way
    share it, and a new read starts only once the last one is ``(1 / duty - 1)`` times its own duration old, so
    however many pages ask and however large the network, reading it takes at most ``duty`` of the supervisor's
    time; until then every page gets the last read. The last read also answers questions about single peers."""

    def __init__(self, network, edges: int = WEB_GRAPH_EDGES, slice_seconds: float = WEB_READ_SLICE,
                 duty: float = WEB_GRAPH_DUTY, clock: Callable[[], float] = time.monotonic) -> None:
        self._network = network
        self._edges = edges
        self._slice = slice_seconds
        self._duty = duty
        self._clock = clock
        self._reading: gevent.event.AsyncResult | None = None
        self._body = b""  # the last read, as JSON
        self._peers: dict[str, dict] = {}
        self.version = 0  # how many reads there were
        self._fresh_at = -math.inf  # when the next read may start

    def graph(self, have: int | None = None) -> bytes:
        """The last read as JSON, after a new one if it is due: ``version`` (which read), ``ids`` (decimal,
        newest first), per peer ``size`` (table entries), ``alive`` and ``host``; ``edges`` as a flat list of index
        pairs (self-loops and entries naming no listed peer left out), ``edges_total`` the edges before thinning
        and ``per_peer`` the most kept from one peer; ``read_seconds`` (what it cost: its waits for the channel
        left out) and ``fresh_in`` (seconds
        until a new read may start). A page that already has version ``have`` gets only ``version``,
        ``unchanged`` and ``fresh_in``."""
        if self._reading is not None:
            self._reading.get()
        elif self._clock() >= self._fresh_at:
            self._reading = reading = gevent.event.AsyncResult()
            try:
                self._read()
                reading.set()
            except BaseException as exc:  # every page waiting on this read hears how it ended
                reading.set_exception(exc)
                raise
            finally:
                self._reading = None
        fresh_in = round(max(0.0, self._fresh_at - self._clock()), 3)
        if have == self.version:
            return json.dumps({"version": self.version, "unchanged": True, "fresh_in": fresh_in}).encode()
        return self._body[:-1] + f', "fresh_in": {fresh_in}}}'.encode()

    def _read(self) -> None:
        ids, entries, extras, asking = self._network.entries(self._slice)
        started = self._clock()
        index = {peer_id: position for position, peer_id in enumerate(ids)}
        per_peer = max(1, self._edges // max(1, len(ids)))
        edges: list[int] = []
        total = 0
        peers = {}
        known_by: collections.Counter[int] = collections.Counter()
        resumed = self._clock()
        for position, (peer_id, table) in enumerate(zip(ids, entries)):
            targets = [index[entry] for entry in table if entry != peer_id and entry in index]
            total += len(targets)
            known_by.update(targets)
            for target in thin(targets, per_peer):
                edges += (position, target)
            peers[str(peer_id)] = {"table": [str(ids[target]) for target in targets], **extras[position]}
            if self._clock() - resumed > self._slice:  # thousands of tables: let the control socket answer between
                gevent.sleep(0)
                resumed = self._clock()
        for position, peer in enumerate(peers.values()):
            peer["known_by"] = known_by[position]
        self.version += 1
        self._peers = peers
        body = {"version": self.version, "ids": [str(peer_id) for peer_id in ids], "size": list(map(len, entries)),
                "alive": [extra["alive"] for extra in extras], "host": [extra["host"] for extra in extras],
                "edges": edges, "edges_total": total, "per_peer": per_peer,
                "read_seconds": round(asking + self._clock() - started, 3)}
        # kept encoded (a megabyte at 5,000 peers): each answer only splices its own fresh_in before the last brace
        self._body = json.dumps(body, separators=(",", ":")).encode()
        # what the read cost: its own asking (not its waits for a command's turn on the channel) and the rest
        self._fresh_at = self._clock() + (asking + self._clock() - started) * (1 / self._duty - 1)

    def peer(self, peer_id: str) -> dict | None:
        """One peer as the last graph read saw it: ``id``, ``table`` (every entry naming a listed peer), ``alive``,
        ``host``, ``process``, ``known_by`` (how many tables held it); None when that read had no such peer."""
        found = self._peers.get(peer_id)
        return None if found is None else {"id": peer_id, **found}
