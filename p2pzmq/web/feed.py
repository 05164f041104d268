"""What the web view sends its page besides command replies (docs/DESIGN.md §9): the live event feed and the graph
snapshot, thinned to what a browser can draw.

:func:`thin` is pure. :class:`Feed` only queues events and hands them out in batches: its subscription callback
runs in the greenlet that emitted the event and never blocks it. :class:`Snapshots` reads the network through
``network.snapshot()``, one read at a time however many pages ask.
"""
from __future__ import annotations

import collections
import json
from typing import Iterator

import gevent
import gevent.event

from ..config import WEB_FEED_BACKLOG, WEB_FEED_HEARTBEAT, WEB_FEED_INTERVAL, WEB_GRAPH_EDGES


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
    """The overlay as the page draws it, read from ``network`` on demand: pages asking while a read is under way
    share its result, and the last one answers questions about single peers without asking the network again."""

    def __init__(self, network, edges: int = WEB_GRAPH_EDGES) -> None:
        self._network = network
        self._edges = edges
        self._reading: gevent.event.AsyncResult | None = None
        self._peers: dict[str, dict] = {}

    def graph(self) -> dict:
        """``ids`` (decimal, newest first), per peer ``size`` (table entries), ``alive`` and ``host``; ``edges``
        as a flat list of index pairs (self-loops and entries naming no listed peer left out), ``edges_total``
        the edges before thinning and ``per_peer`` the most kept from one peer."""
        if self._reading is None:
            self._reading = gevent.event.AsyncResult()
            reading = self._reading
            try:
                reading.set(self._read())
            except BaseException as exc:  # every page waiting on this read hears how it ended
                reading.set_exception(exc)
                raise
            finally:
                self._reading = None
            return reading.get()
        return self._reading.get()

    def _read(self) -> dict:
        ids, tables, extras = self._network.snapshot()
        index = {peer_id: position for position, peer_id in enumerate(ids)}
        per_peer = max(1, self._edges // max(1, len(ids)))
        edges: list[int] = []
        total = 0
        peers = {}
        for position, (peer_id, table) in enumerate(zip(ids, tables)):
            targets = [index[contact.id] for contact in table.descending()
                       if contact.id != peer_id and contact.id in index]
            total += len(targets)
            for target in thin(targets, per_peer):
                edges += (position, target)
            peers[str(peer_id)] = {"table": [str(ids[target]) for target in targets], **extras[position]}
            if position % 500 == 499:
                gevent.sleep(0)  # thousands of tables: let the control socket answer in between
        self._peers = peers
        return {"ids": [str(peer_id) for peer_id in ids], "size": [len(table) for table in tables],
                "alive": [extra["alive"] for extra in extras], "host": [extra["host"] for extra in extras],
                "edges": edges, "edges_total": total, "per_peer": per_peer}

    def peer(self, peer_id: str) -> dict | None:
        """One peer as the last graph read saw it: ``id``, ``table`` (every entry naming a listed peer), ``alive``,
        ``host``, ``process``, ``known_by`` (how many tables held it); None when that read had no such peer."""
        found = self._peers.get(peer_id)
        if found is None:
            return None
        known_by = sum(peer_id in other["table"] for other in self._peers.values())
        return {"id": peer_id, **found, "known_by": known_by}
