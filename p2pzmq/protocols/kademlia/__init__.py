"""Kademlia (Maymounkov & Mazières 2002; docs/DESIGN.md §10): everything that is its own.

- :mod:`.kbuckets`: the k-buckets (pure: least recently seen first, replacement cache, suspects);
- :mod:`.lookup`: the round-based iterative lookup and its simulator on fetched tables (pure);
- :mod:`.peer`: one peer's side (its messages' handling, join, refresh) and its table as the supervisor reads it;
- :mod:`.supervisor`: what ``net_status`` and ``lookup FROM ID`` add for it (iterative lookups, computed or driven).

Its settings are ``k`` (contacts per bucket and per FIND_NODE answer) and ``alpha`` (requests a round sends).
"""
from __future__ import annotations

from ... import messages as m
from ...errors import UsageError
from ...ids import ID_BITS
from . import supervisor
from .kbuckets import K
from .lookup import ALPHA
from .peer import Kademlia, KademliaTable
from .. import Descriptor, register


def check(config) -> None:
    if not 1 <= config.k <= m.MAX_K or config.alpha < 1:
        raise UsageError(f"k must be between 1 and {m.MAX_K}, and alpha at least 1")


def start(config, node, cookies) -> Kademlia:
    """A peer's Kademlia; its random ids come from a stream of its own, not from ``cookies`` (docs/DESIGN.md §10)."""
    return Kademlia(config, node)


def table_from_wire(config, contacts) -> KademliaTable:
    return KademliaTable.from_wire(contacts, config.k)


DESCRIPTOR = register(Descriptor(
    name="kademlia",
    settings={"k": K, "alpha": ALPHA},
    check=check,
    start=start,
    table_from_wire=table_from_wire,
    requests=(m.Ping, m.FindNode),
    queries=(m.ClientNodes,),
    status=supervisor.status,
    lookup=supervisor.drive,
    capacity=lambda config: 1 + ID_BITS * config.k,  # the owner, and at most k in each bucket
    # An iterative lookup on fetched tables against one greedy route: 65 against 1.6 µs of CPU a pair at 200 peers
    # (tools/kademlia_bench.py prints the status seconds of both protocols).
    status_cost=40.0,
))
