"""A message-free model of DESIGN.md §4: the test oracle.

Plain function calls stand in for messages. Given the same seed it draws ids and bootstrap choices from the same
stream as :class:`p2pzmq.network.Network`, so it must end with exactly the same tables and the same statistics as
the real network on any transport. It reuses the pure modules (ids, table, discovery) and nothing else.
"""
from __future__ import annotations

import random

from p2pzmq.discovery import build_table
from p2pzmq.ids import new_id
from p2pzmq.table import Contact, Table


class ModelNetwork:
    def __init__(self, seed: int, metric: str = "tree", max_hops: int = 8) -> None:
        self.rng = random.Random(seed)
        self.metric = metric
        self.max_hops = max_hops
        self.peers: list[Contact] = []  # newest first
        self.tables: dict[int, Table] = {}

    def create(self, n: int) -> None:
        for _ in range(n):
            peer_id = new_id(self.rng)
            me = Contact(peer_id, f"inproc://server/{peer_id}", f"inproc://client/{peer_id}")
            table = Table(metric=self.metric)
            table.add(me)
            self.tables[peer_id] = table
            if self.peers:
                remote = self.peers[self.rng.randrange(len(self.peers))]
                start = self._get_peers(remote, me)
                self.tables[peer_id] = build_table(me, start, self._find_closest_as(me), self.max_hops)
            self.peers.insert(0, me)

    def refresh_peers(self) -> None:
        for me in self.peers:
            self.tables[me.id] = build_table(me, self.tables[me.id], self._find_closest_as(me), self.max_hops)

    def _get_peers(self, server: Contact, sender: Contact) -> Table:
        table = self.tables[server.id]
        answer = Table.from_preorder(table.preorder(), metric=self.metric)
        table.add(sender)
        return answer

    def _find_closest_as(self, sender: Contact):
        def find_closest(server: Contact, target: int) -> Contact:
            table = self.tables[server.id]
            answer = table.closest(target)
            table.add(sender)
            return answer
        return find_closest

    def route(self, source: Contact, target: int) -> int | None:
        """Forwarding steps greedy routing takes from ``source`` to ``target``, or None if it fails."""
        current, steps = source, 0
        while current.id != target:
            if steps == self.max_hops:
                return None
            answer = self.tables[current.id].closest(target)
            if answer.id == current.id:
                return None
            current, steps = answer, steps + 1
        return steps

    def net_status(self) -> dict:
        n = len(self.peers)
        rows, steps = [], []
        for index, peer in enumerate(self.peers, start=1):
            routes = [self.route(peer, other.id) for other in self.peers]
            count = sum(route is not None for route in routes)
            steps += [route for route in routes if route is not None]
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": len(self.tables[peer.id]),
                         "reachable": count, "percent": int(count / n * 100)})
        histogram = {str(h): steps.count(h) for h in sorted(set(steps))}
        hops = {"histogram": histogram, "mean": round(sum(steps) / len(steps), 4),
                "success_rate": round(len(steps) / (n * n), 6)}
        return {"n": n, "connectivity": int(sum(r["percent"] for r in rows) / n), "peers": rows, "hops": hops}

    def preorders(self) -> list[list[int]]:
        """Each peer's table as its preorder id list, newest peer first (shape included)."""
        return [[c.id for c in self.tables[p.id].preorder()] for p in self.peers]
