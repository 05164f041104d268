"""A message-free model of docs/DESIGN.md §4: the test oracle.

Plain function calls stand in for messages. Given the same seed it draws ids and bootstrap choices from the same
stream as :class:`p2pzmq.network.Network`, so it must end with exactly the same tables and the same statistics as
the real network on any transport. It reuses the pure modules (ids, table, discovery) and nothing else.
"""
from __future__ import annotations

import random

from p2pzmq.protocols.original.discovery import build_table
from p2pzmq.errors import RpcTimeout
from p2pzmq.ids import new_id
from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import Table


class ModelNetwork:
    def __init__(self, seed: int, metric: str = "tree", max_hops: int = 8) -> None:
        self.rng = random.Random(seed)
        self.metric = metric
        self.max_hops = max_hops
        self.peers: list[Contact] = []  # newest first, alive only
        self.departed: list[tuple[Contact, str]] = []  # killed or left, oldest first
        self.dead: set[int] = set()
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

    def refresh_peers(self, count: int | None = None) -> None:
        """Refresh every peer in list order, or only the first ``count`` (a refresh cancelled after them)."""
        for me in self.peers[:count]:
            self.tables[me.id] = build_table(me, self.tables[me.id], self._find_closest_as(me), self.max_hops)

    def kill(self, ids: set[int]) -> None:
        """Crash these peers: their tables stay where they are in everybody else's."""
        self._depart(ids, "killed")

    def leave(self, ids: set[int]) -> None:
        """These peers leave: every peer in a leaver's table drops the leaver's entry."""
        leavers = [peer for peer in self.peers if peer.id in ids]
        for leaver in leavers:
            for contact in self.tables[leaver.id]:
                table = self.tables[contact.id]
                if contact.id not in self.dead and contact.id != leaver.id and table.get(leaver.id) == leaver:
                    table.remove(leaver.id)
        self._depart(ids, "left")

    def _depart(self, ids: set[int], state: str) -> None:
        self.departed += [(peer, state) for peer in self.peers if peer.id in ids]
        self.dead |= ids
        self.peers = [peer for peer in self.peers if peer.id not in ids]

    def _get_peers(self, server: Contact, sender: Contact) -> Table:
        table = self.tables[server.id]
        answer = Table.from_preorder(table.preorder(), metric=self.metric)
        table.add(sender)
        return answer

    def _find_closest_as(self, sender: Contact):
        def find_closest(server: Contact, target: int) -> Contact:
            if server.id in self.dead:
                raise RpcTimeout("a departed peer does not answer")
            table = self.tables[server.id]
            answer = table.closest(target)
            table.add(sender)
            return answer
        return find_closest

    def route(self, source: Contact, target: int) -> int | str | None:
        """Forwarding steps greedy routing takes from ``source`` to ``target``, None if it fails, "dead" if it
        fails at a departed peer."""
        alive = {peer.id for peer in self.peers}
        current, steps = source, 0
        while current.id != target:
            if steps == self.max_hops:
                return None
            if current.id not in alive:
                return "dead"
            answer = self.tables[current.id].closest(target)
            if answer.id == current.id:
                return None
            current, steps = answer, steps + 1
        return steps

    def net_status(self) -> dict:
        n = len(self.peers)
        rows, steps = [], []
        failed = 0
        for index, peer in enumerate(self.peers, start=1):
            routes = [self.route(peer, other.id) for other in self.peers]
            failed += routes.count("dead")
            routes = [route for route in routes if route != "dead"]
            count = sum(route is not None for route in routes)
            steps += [route for route in routes if route is not None]
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": len(self.tables[peer.id]),
                         "reachable": count, "percent": int(count / n * 100)})
        histogram = {str(h): steps.count(h) for h in sorted(set(steps))}
        hops = {"histogram": histogram, "mean": round(sum(steps) / len(steps), 4),
                "success_rate": round(len(steps) / (n * n), 6)}
        dead = [{"id": str(peer.id), "state": state} for peer, state in self.departed]
        return {"n": n, "connectivity": int(sum(r["percent"] for r in rows) / n), "peers": rows, "hops": hops,
                "alive": n, "dead": dead, "failed_hops": failed}

    def preorders(self) -> list[list[int]]:
        """Each peer's table as its preorder id list, newest peer first (shape included)."""
        return [[c.id for c in self.tables[p.id].preorder()] for p in self.peers]
