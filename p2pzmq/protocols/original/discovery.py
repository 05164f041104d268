"""Discovery: the target walk (multi-hop lookup) and building a new table from it (docs/DESIGN.md §4.6–4.7).

No sockets here: the one network step, "ask this contact's server for its closest entry to a target", is passed in
as a function. Peers pass a function that sends ``find_closest``; the tests' message-free model passes a plain call.
"""
from __future__ import annotations

from typing import Callable

from ...errors import TransportError
from ...ids import discovery_targets
from ...contact import Contact
from .table import Table

#: ``find_closest(contact, target)`` asks ``contact``'s server; may raise :class:`TransportError` (e.g. RpcTimeout).
FindClosest = Callable[[Contact, int], Contact]


def walk(me: Contact, table: Table, target: int, find_closest: FindClosest, max_hops: int) -> Contact:
    """The closest peer to ``target`` that a greedy walk from ``table`` finds, asking at most ``max_hops`` servers.

    The walk stops when the budget is spent, an answer repeats the contact just asked, or it leads back to ``me``.
    A server that does not answer is a dead end (§4.9): the walk returns the last contact that did answer, or the
    local best guess when the very first one fails.
    """
    if target == me.id:
        return me
    current = table.closest(target)
    if current.id == target:
        return current
    previous: Contact | None = None
    hops = max_hops
    while hops > 0 and current.id != me.id and (previous is None or current.id != previous.id):
        try:
            answer = find_closest(current, target)
        except TransportError:
            return current if previous is None else previous
        previous, current, hops = current, answer, hops - 1
    return current


def build_table(me: Contact, start: Table, find_closest: FindClosest, max_hops: int,
                capacity: int | None = None) -> Table:
    """A new table: the walk result of every discovery target, in target order, then ``start``'s entries in
    descending id order; the capacity rule of the table applies to every add (§4.7)."""
    fresh = Table(metric=start.metric) if capacity is None else Table(metric=start.metric, capacity=capacity)
    for target in discovery_targets(me.id):
        fresh.add(walk(me, start, target, find_closest, max_hops))
    for contact in start.descending():
        fresh.add(contact)
    return fresh
