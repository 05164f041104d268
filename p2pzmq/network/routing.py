"""Greedy routing over the network: ``net_status``, ``route_sample`` and ``lookup`` (docs/DESIGN.md §4.8).

Routes are driven two ways with the same result: by ``find_peer`` messages (each round asks every client holding
some routes for one step of all of them), or locally on tables fetched once per peer (:mod:`p2pzmq.status`, computed
in the offload thread). What a protocol adds to ``net_status`` and ``lookup`` its descriptor computes
(:mod:`p2pzmq.protocols`, docs/DESIGN.md §11), reading peers without changing a table.
"""
from __future__ import annotations

import collections
import random
from typing import Callable

from .. import protocols, status
from .. import messages as m
from ..config import Config
from ..errors import ProtocolError, TransportError, UsageError
from ..contact import Contact
from .channel import CommandChannel
from ..ids import parse_id
from .members import Members
from .tracking import Timings

class Router:
    def __init__(self, config: Config, members: Members, channel: CommandChannel, offload: Callable,
                 status_rng: random.Random, report: Callable[[str, int, int], None], seconds: Timings) -> None:
        self.config = config
        self._members = members
        self._channel = channel
        self._offload = offload
        self._status_rng = status_rng
        self._report = report
        self._seconds = seconds

    def net_status(self, sample: int | None = None, routing: str = "auto") -> dict:
        """Table size and greedy-routing reach of every alive peer (§4.8), plus the hop counts of the routes that
        arrived (``hops``: histogram, mean, and the overall lookup success rate); and what the protocol's descriptor
        adds (its ``status``: under Kademlia the iterative lookups between the same pairs, computed on the same
        tables, ``lookups``).

        Only peers that are alive count: those killed or gone, and those whose client does not answer within
        ``client_timeout``, are listed in ``dead`` (``{"id", "state"}``, state ``killed``, ``left``,
        ``unresponsive``, ``unreachable`` or ``crashed``); ``n`` and ``connectivity`` are over the alive ones
        (``alive`` = ``n``). A route whose next hop is a dead peer fails; ``failed_hops`` counts them.

        ``sample``: None routes all N² pairs while their work fits ``status_budget`` (``Config.status_exact``) and
        samples ``status_sample`` targets per peer beyond; 0 forces all pairs; K > 0 samples K seeded random targets per peer and adds
        ``sample``, ``estimate`` and ``ci95`` (percent) to the result. ``routing``: ``messages`` drives every route
        with ``find_peer`` commands; ``local`` fetches each table once and routes on them (same result);
        ``auto`` uses messages up to ``status_local_above`` peers.
        """
        if sample is not None and sample > len(self._members):
            raise UsageError(f"sample must be an integer from 0 (all pairs) to {len(self._members)} (the number of "
                             f"peers), not {sample!r}")
        with self._channel.exclusive(), self._seconds.measure("net_status"):
            listed = list(self._members.listed)
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in listed])
            alive = [(index, peer, result.reply) for index, (peer, result) in enumerate(zip(listed, results), 1)
                     if result.replied]
            dead = [{"id": str(peer.id), "state": self._members.state(peer, result)}
                    for peer, result in zip(listed, results) if not result.replied]
            dead += [{"id": str(contact.id), "state": state} for contact, state in self._members.departed]
            n = len(alive)
            if sample is None:
                sample = 0 if self.config.status_exact(n) else self.config.status_sample
            ids = [peer.id for _, peer, _ in alive]
            targets = [ids] * n if sample == 0 else self._offload(status.sample_targets, self._status_rng, ids,
                                                                   sample)
            if routing == "local" or (routing == "auto" and n > self.config.status_local_above):
                preorders = [reply.table for _, _, reply in alive]
                reached, hops, failed = self._offload(self._route_locally, preorders, ids, targets)
            else:
                reached, hops, failed = self._route_pairs([peer.contact for _, peer, _ in alive], targets)
            per_peer = sample or n
            rows = [{"id": str(peer.id), "tgf": index, "tree_size": len(reply.table), "reachable": count,
                     "percent": int(count / per_peer * 100)} for (index, peer, reply), count in zip(alive, reached)]
            result = {"n": n, "connectivity": int(sum(row["percent"] for row in rows) / n) if n else 0,
                      "peers": rows, "hops": status.hop_summary(hops, n * per_peer), "alive": n, "dead": dead,
                      "failed_hops": failed}
            if sample and n:
                result.update(status.estimate(reached, sample), sample=sample)
            protocol_status = protocols.of(self.config).status
            if protocol_status is not None:
                result.update(protocol_status(self._offload, self.config, ids, [reply.table for _, _, reply in alive],
                                              targets, sample, self._report))
            self._report("net_status", self.config.max_hops + 1, self.config.max_hops + 1)
        return result

    def route_sample(self, size: int, seed: int = 0) -> dict:
        """Greedy routing between ``size`` sources and ``size`` targets drawn with ``random.Random(seed)``: the
        same hop summary as :meth:`net_status` at a cost of size² routes instead of N² (for very large networks)."""
        if type(size) is not int or size < 1:
            raise UsageError(f"the sample size must be a positive integer, not {size!r}")
        with self._channel.exclusive(), self._seconds.measure("net_status"):
            picker = random.Random(seed)
            listed = self._members.listed
            sources = picker.sample(listed, min(size, len(listed)))
            targets = [peer.id for peer in picker.sample(listed, min(size, len(listed)))]
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in sources], strict=True)
            sizes = [len(result.reply.table) if result.replied else 0 for result in results]
            _, hops, _ = self._route_pairs([peer.contact for peer in sources], [targets] * len(sources))
        return {"n": len(listed), "sources": len(sources), "targets": len(targets),
                "mean_tree_size": round(sum(sizes) / len(sizes), 3),
                "hops": status.hop_summary(hops, len(sources) * len(targets))}

    def _route_locally(self, preorders: list[list[Contact]], ids: list[int], targets: list[list[int]]):
        """:func:`status.route_counts` on the tables rebuilt from ``preorders``; run it in the offload thread."""
        table_from_wire = protocols.of(self.config).table_from_wire
        tables = {peer_id: table_from_wire(self.config, wire) for peer_id, wire in zip(ids, preorders)}
        return status.route_counts(tables, ids, targets, self.config.max_hops)

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
            if self._members.reachable(source):
                holding[source] = [(index, target, max_hops) for target in row]
        rounds = 0
        while holding:
            self._report("net_status", rounds, max_hops + 1)  # a route takes at most max_hops + 1 rounds
            rounds += 1
            asks = []
            for contact, routes in holding.items():
                if not self._members.reachable(contact):  # departed, or its worker is gone: the routes fail
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
            results = self._channel.ask([(contact, m.FindPeers, ([route[1] for route in live],))
                                         for contact, live in asks])
            holding = collections.defaultdict(list)
            for (contact, live), result in zip(asks, results):
                if not result.replied:  # a dead peer, or its worker went away meanwhile
                    failed += len(live)
                    continue
                reply = result.reply
                if len(reply.picks) != len(live):
                    raise ProtocolError(f"find_peer answered {len(reply.picks)} of {len(live)} targets")
                for (index, target, hops), pick in zip(live, reply.picks):
                    answer = reply.contacts[pick]
                    if answer.id != contact.id:  # a peer that names itself is as close as the route gets
                        holding[answer].append((index, target, hops - 1))
        return reached, hop_counts, failed

    def lookup(self, source: int | str, target: int | str) -> dict:
        """Look ``target`` up from peer ``source`` (decimal ids), two ways, without changing
        any table:

        - ``route``: the greedy route of ``net_status``: ask the current peer's client for its closest entry, one
          hop at a time, within ``max_hops`` forwarding steps. ``reached`` and ``hops`` agree with net_status.
        - what the protocol's descriptor adds (its ``lookup``): the original's ``walk``, the discovery walk of a
          join or refresh (§4.7) read from each visited peer's table instead of sending ``find_closest``, so it
          shows the path a refresh would take now; Kademlia's ``lookup``, the rounds of the iterative lookup, each
          contact's client asked for its server's answer.

        Every path is a list of decimal ids starting at ``source``.
        """
        start_id, target_id = parse_id(source), parse_id(target)
        with self._channel.exclusive():
            start = self._members.by_id(start_id).contact
            result = {"from": str(start.id), "id": str(target_id), "route": self._greedy_route(start, target_id)}
            protocol_lookup = protocols.of(self.config).lookup
            if protocol_lookup is not None:
                result.update(protocol_lookup(self._channel, self.config, start, target_id))
            return result

    def _greedy_route(self, start: Contact, target: int) -> dict:
        path, current, hops = [start], start, self.config.max_hops
        while current.id != target and hops > 0:
            try:
                reply = self._channel.ask_one(current, m.FindPeers, [target])
            except TransportError:  # a dead peer: the route fails there, as net_status counts it
                break
            answer = reply.contacts[reply.picks[0]]
            if answer.id == current.id:
                break
            path.append(answer)
            current, hops = answer, hops - 1
        return {"path": [str(contact.id) for contact in path], "hops": len(path) - 1, "reached": current.id == target}
