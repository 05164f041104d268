"""Who is in the network: the one record of membership (docs/DESIGN.md §8). No sockets here.

Peers that are in (alive, or held by a worker that is gone) are listed newest first, as the original keeps them;
each is a :class:`~p2pzmq.peer.Peer` of this process or a :class:`~p2pzmq.hosting.RemotePeer`, and knows its host.
Peers that were killed or left are remembered (up to a bound) with how they went. Every question "may a command go
to this contact?" is answered here, so departed peers are never asked anything: a command to a dead tcp peer would
cost ``client_timeout``, and with workers ``heartbeat_timeout`` more.
"""
from __future__ import annotations

import collections
import random

from ..errors import UsageError
from ..ids import parse_id
from ..rpc import Outcome, Result
from ..contact import Contact

#: How many departed peers (killed or left) are remembered for ``peers`` and ``net_status``.
MAX_DEPARTED = 10_000
#: States of a listed peer: it answers; it answered nothing in time; its worker is gone; its own greenlets died in
#: this process.
ALIVE, UNRESPONSIVE, UNREACHABLE, CRASHED = "alive", "unresponsive", "unreachable", "crashed"


class Members:
    """The peers in the network (:attr:`listed`, newest first), their hosts, and the departed."""

    def __init__(self) -> None:
        self.listed: list = []
        self._by_client: dict[str, object] = {}  # client endpoint -> listed peer
        self._per_host: collections.Counter = collections.Counter()  # worker host -> listed peers it holds
        self.departed: collections.deque[tuple[Contact, str]] = collections.deque(maxlen=MAX_DEPARTED)

    def __len__(self) -> int:
        return len(self.listed)

    def add(self, peers: list) -> None:
        """List ``peers`` (oldest first) as the newest members."""
        for peer in peers:
            self.listed.insert(0, peer)
            self._by_client[peer.contact.client] = peer
            self._per_host[getattr(peer, "host", None)] += 1

    def reachable(self, contact: Contact) -> bool:
        """True if ``contact`` is a listed peer whose host is there and whose greenlets run."""
        peer = self._by_client.get(contact.client)
        return peer is not None and peer.alive

    def state(self, peer, result: Result) -> str:
        """A listed peer's state from what became of a command to it: ``alive`` if it answered; else
        ``unreachable`` (its worker is gone, even if it was found out after its port refused the command),
        ``crashed`` (its greenlets died here) or ``unresponsive``."""
        if result.replied:
            return ALIVE
        host = getattr(peer, "host", None)
        if host is not None and not host.alive:
            return UNREACHABLE
        if result.outcome is Outcome.SILENT:
            return UNRESPONSIVE
        return CRASHED if not peer.alive else UNRESPONSIVE

    def count_on(self, host) -> int:
        """How many listed peers ``host`` holds (without looking at every peer: ping asks it of every worker)."""
        return self._per_host[host]

    def unreachable(self) -> int:
        """Listed peers whose worker is gone."""
        return sum(count for host, count in self._per_host.items() if host is not None and not host.alive)

    def by_id(self, peer_id: int):
        for peer in self.listed:
            if peer.id == peer_id:
                return peer
        raise UsageError(f"no peer has id {peer_id}")

    def choose(self, count: int | None, seed: int | None, ids: list | None) -> list:
        """The peers named by ``ids`` (decimal strings) or else ``count`` drawn with ``seed``, in list order."""
        if ids is not None:
            wanted = [parse_id(value) for value in ids]
            unknown = set(wanted) - {peer.id for peer in self.listed}
            if unknown:
                raise UsageError(f"not the ids of alive peers: {', '.join(map(str, sorted(unknown)))}")
            chosen = set(wanted)
            return [peer for peer in self.listed if peer.id in chosen]
        if count > len(self.listed):
            raise UsageError(f"count must be an integer between 0 and {len(self.listed)}, not {count!r}")
        wanted = set(random.Random(seed).sample(range(len(self.listed)), count))
        return [peer for index, peer in enumerate(self.listed) if index in wanted]

    def remove(self, peers: list, state: str) -> None:
        """Unlist ``peers`` and remember them as departed with ``state`` (``killed`` or ``left``)."""
        gone = {peer.contact.client for peer in peers}
        self.listed = [peer for peer in self.listed if peer.contact.client not in gone]
        for peer in peers:
            del self._by_client[peer.contact.client]
            self._per_host[getattr(peer, "host", None)] -= 1
            self.departed.append((peer.contact, state))

