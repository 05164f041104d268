"""A message-free model of Kademlia on p2pzmq's peers: the test oracle for the protocol's network glue.

Plain function calls stand in for messages, and the pure core (p2pzmq.protocols) makes every decision. Ids and
bootstrap choices come from one ``random.Random(seed)`` drawn exactly as tests/model.py draws them, and each peer's
refresh targets from ``random.Random(f"{seed}:{peer_id}")``, so a real network built one join at a time with the
same seed must end with the same tables, bucket order included.

Message rules: a request makes its server compute the answer (its k closest to the target, the sender excluded) and
then ``seen(sender)``; the reply makes the requester ``seen(server)``; a request to a departed peer fails, and the
requester calls ``failed``. Within a lookup round the outcomes are applied in the round's request order.
"""
from __future__ import annotations

import collections
import random
import statistics

from p2pzmq.ids import new_id
from p2pzmq.protocols.kademlia.kbuckets import CACHE_SIZE, K, KBuckets
from p2pzmq.protocols.kademlia.lookup import ALPHA, Lookup, LookupResult, Simulator, simulate
from p2pzmq.contact import Contact


class KademliaModel:
    """A Kademlia network of plain tables: ``create``, ``refresh_peers``, ``kill`` and ``leave`` as the supervisor
    would drive them, one peer at a time, and statistics on the tables as they stand."""

    def __init__(self, seed: int, k: int = K, alpha: int = ALPHA, cache_size: int = CACHE_SIZE,
                 max_hops: int = 8) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.k = k
        self.alpha = alpha
        self.cache_size = cache_size
        self.max_hops = max_hops
        self.peers: list[Contact] = []  # newest first, alive only
        self.departed: list[tuple[Contact, str]] = []  # killed or left, oldest first
        self.tables: dict[int, KBuckets] = {}  # alive peers only: a departed peer's requests fail
        self.peer_rngs: dict[int, random.Random] = {}
        self.requests = 0  # every request sent: lookups' FIND_NODEs and pings
        self.join_requests: list[int] = []  # requests of each join, in join order

    def create(self, n: int) -> None:
        for _ in range(n):
            peer_id = new_id(self.rng)
            me = Contact(peer_id, f"inproc://server/{peer_id}", f"inproc://client/{peer_id}")
            self.tables[peer_id] = KBuckets(peer_id, self.k, self.cache_size)
            self.peer_rngs[peer_id] = random.Random(f"{self.seed}:{peer_id}")
            if self.peers:
                bootstrap = self.peers[self.rng.randrange(len(self.peers))]
                before = self.requests
                self.join(me, bootstrap)
                self.join_requests.append(self.requests - before)
            self.peers.insert(0, me)

    def join(self, me: Contact, bootstrap: Contact) -> None:
        """Learn the bootstrap, ping suspects, look up one's own id, then refresh every bucket farther than the
        closest neighbour (paper §2.3)."""
        table = self.tables[me.id]
        table.seen(bootstrap)
        self.ping_suspects(me)
        self.lookup(me, me.id)
        for target in table.refresh_targets(self.peer_rngs[me.id]):
            self.lookup(me, target)

    def refresh_peers(self) -> None:
        """Each peer in list order pings its suspects, then refreshes every bucket from its closest neighbour's
        outward."""
        for me in self.peers:
            self.ping_suspects(me)
            for target in self.tables[me.id].refresh_targets(self.peer_rngs[me.id], include_closest=True):
                self.lookup(me, target)

    def kill(self, ids: set[int]) -> None:
        """Crash these peers: their contacts stay in other tables until a request to them fails."""
        self._depart(ids, "killed")

    def leave(self, ids: set[int]) -> None:
        """These peers leave: their sockets close, and the others learn it only by failing to reach them."""
        self._depart(ids, "left")

    def _depart(self, ids: set[int], state: str) -> None:
        self.departed += [(peer, state) for peer in self.peers if peer.id in ids]
        self.peers = [peer for peer in self.peers if peer.id not in ids]
        for peer_id in ids:
            self.tables.pop(peer_id, None)

    # -- messages as calls ------------------------------------------------------------------------------------

    def ping_suspects(self, me: Contact) -> None:
        table = self.tables[me.id]
        for suspect in table.suspects():
            self.requests += 1
            server = self.tables.get(suspect.id)
            if server is None:
                table.failed(suspect.id)
            else:
                server.seen(me)
                table.ping_answered(suspect)

    def lookup(self, me: Contact, target: int) -> Lookup:
        table = self.tables[me.id]
        lookup = Lookup(me.id, target, table.closest(target, self.k), self.k, self.alpha)
        exclude = (me.id,)
        while batch := lookup.next_round():
            self.requests += len(batch)
            for contact in batch:
                server = self.tables.get(contact.id)
                if server is None:
                    lookup.failed(contact)
                    table.failed(contact.id)
                else:
                    answer = server.closest(target, self.k, exclude)
                    server.seen(me)
                    lookup.answered(contact, answer)
                    table.seen(contact)
        return lookup

    # -- statistics on the tables as they are -----------------------------------------------------------------

    def route(self, source: int, target: int) -> int | None:
        """Forwarding steps greedy routing takes from ``source`` to ``target`` (next hop: the XOR-closest of the
        current peer's table and itself, as net_status routes the original), None if it fails."""
        steps = self._route(source, target)
        return None if steps == "dead" else steps

    def _route(self, source: int, target: int) -> int | str | None:
        """As :meth:`route`, but "dead" when the route fails because its next hop, which it still had the budget to
        ask, is a departed peer."""
        current, steps = source, 0
        while current != target:
            table = self.tables.get(current)
            if table is None:
                return "dead"
            if steps == self.max_hops:
                return None
            best = table.closest(target, 1)
            if not best or best[0].id ^ target > current ^ target:
                return None
            current, steps = best[0].id, steps + 1
        return steps

    def simulate(self, source: int, target: int) -> LookupResult:
        """An iterative lookup on the tables as they are, changing none."""
        return simulate(self.tables, source, target, self.k, self.alpha)

    def wires(self) -> list[list[int]]:
        """Each alive peer's table as a real peer sends it (its own id, then the buckets in wire order), newest
        peer first."""
        return [[peer.id] + [contact.id for contact in self.tables[peer.id].contacts()] for peer in self.peers]

    def net_status(self) -> dict:
        """What the supervisor's net_status must say of these tables (all pairs): a table counts its owner, greedy
        routes run from every peer to every peer, itself included, and iterative lookups to every other peer."""
        n = len(self.peers)
        rows, steps, failed = [], [], 0
        for index, peer in enumerate(self.peers, start=1):
            routes = [self._route(peer.id, other.id) for other in self.peers]
            failed += routes.count("dead")
            arrived = [route for route in routes if route not in (None, "dead")]
            steps += arrived
            rows.append({"id": str(peer.id), "tgf": index, "tree_size": len(self.tables[peer.id]) + 1,
                         "reachable": len(arrived), "percent": int(len(arrived) / n * 100)})
        lookups = [(self.simulate(a, b), b) for a, b in self.pairs()]
        rounds = collections.Counter(result.rounds for result, _ in lookups)
        return {"n": n, "connectivity": int(sum(row["percent"] for row in rows) / n), "peers": rows,
                "hops": {"histogram": {str(h): steps.count(h) for h in sorted(set(steps))},
                         "mean": round(statistics.fmean(steps), 4), "success_rate": round(len(steps) / (n * n), 6)},
                "alive": n, "dead": [{"id": str(peer.id), "state": state} for peer, state in self.departed],
                "failed_hops": failed,
                "lookups": {"success_rate": round(sum(result.found(b) for result, b in lookups) / len(lookups), 6),
                            "rounds": {"histogram": {str(r): rounds[r] for r in sorted(rounds)},
                                       "mean": round(statistics.fmean(result.rounds for result, _ in lookups), 4)},
                            "requests_mean": round(statistics.fmean(result.requests for result, _ in lookups), 4),
                            "sample": 0, "lookups": len(lookups)}}

    def pairs(self, sample: int | None = None, seed: int = 0) -> list[tuple[int, int]]:
        """Ordered pairs of distinct alive peers: all of them, or ``sample`` drawn uniformly with ``seed``."""
        ids = [peer.id for peer in self.peers]
        if sample is None:
            return [(a, b) for a in ids for b in ids if a != b]
        rng = random.Random(seed)
        drawn = []
        while len(drawn) < sample:
            a, b = rng.choice(ids), rng.choice(ids)
            if a != b:
                drawn.append((a, b))
        return drawn

    def stats(self, sample: int | None = None, seed: int = 0) -> dict:
        """Table sizes, requests per join, and greedy routing and iterative lookups over :meth:`pairs`."""
        pairs = self.pairs(sample, seed)
        routes = [self.route(a, b) for a, b in pairs]
        reached = [steps for steps in routes if steps is not None]
        simulator = Simulator(self.tables, self.k, self.alpha)
        lookups = [simulator.lookup(a, b) for a, b in pairs]
        sizes = [len(self.tables[peer.id]) for peer in self.peers]
        return {
            "n": len(self.peers),
            "pairs": len(pairs),
            "requests_per_join": statistics.fmean(self.join_requests) if self.join_requests else 0.0,
            "table_size": {"mean": statistics.fmean(sizes), "min": min(sizes), "max": max(sizes)},
            "greedy": {"reach": len(reached) / len(pairs), "mean_hops": statistics.fmean(reached or [0])},
            "lookup": {"success": sum(result.found(b) for result, (_, b) in zip(lookups, pairs)) / len(pairs),
                       "mean_rounds": statistics.fmean(result.rounds for result in lookups),
                       "max_rounds": max(result.rounds for result in lookups),
                       "mean_requests": statistics.fmean(result.requests for result in lookups)},
        }
