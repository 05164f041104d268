"""Kademlia (Maymounkov & Mazières 2002) on p2pzmq's peers: one peer's side, and its table as the supervisor reads
it (docs/DESIGN.md §10). The rules live in the pure core, :mod:`.kbuckets` and :mod:`.lookup`; this module turns
them into messages.

Server: ``FindNode(target)`` is answered with the k contacts closest to ``target``, the sender left out, computed
before the sender is learnt; ``Ping`` with ``Done``. Every request lets the server learn its sender (``seen``).

Client: a lookup runs :class:`~.lookup.Lookup` rounds, each round's requests in flight at once, and applies their
outcomes (the lookup's and the table's own ``seen(replier)`` or ``failed(id)``) in the round's request order once
the round is complete, so that a build joining one peer at a time gives exactly the tables of the message-free
model (tests/kademlia_model.py). A join learns its bootstrap contact, looks up its own id, then refreshes every
bucket farther than its closest neighbour; a refresh does every bucket from the closest neighbour's on. Both first
ping the suspects of full buckets (the paper's delayed probing, §4.1): one that does not answer is replaced by the
newest contact of its bucket's replacement cache. Refresh targets come from the peer's own stream,
``random.Random(f"{seed}:{id}")``, so they do not depend on where the peer lives. Leaving needs no message: the
others forget a departed peer when it fails to answer them, as the paper says.
"""
from __future__ import annotations

import random

from ... import messages as m
from ...config import Config
from ...contact import Contact
from .kbuckets import KBuckets
from .lookup import Lookup


class Kademlia:
    """One peer's side of Kademlia."""

    def __init__(self, config: Config, node) -> None:
        self.config = config
        self._node = node
        self._me = node.contact
        self._k = config.k
        self._alpha = config.alpha
        # A lookup round's requests are all in flight at once, so its connections must fit the client's LRU.
        self._window = min(config.k, config.max_connections)
        self.table = KBuckets(self._me.id, config.k)
        self._rng = random.Random(None if config.seed is None else f"{config.seed}:{self._me.id}")

    # -- server ---------------------------------------------------------------------------------------------------

    def serve(self, msg):
        sender = msg.sender
        if type(msg) is m.FindNode:
            reply = m.NodesReply(msg.req_id, msg.cookie, self.table.closest(msg.target, self._k, (sender.id,)))
        else:
            reply = m.Done(msg.req_id, msg.cookie)
        self.table.seen(sender)  # after the answer was taken from the table
        return reply

    def query(self, msg: m.ClientNodes) -> m.NodesReply:
        """What ``FindNode(target)`` from ``asker`` would get, learning nobody."""
        return m.NodesReply(msg.req_id, msg.cookie, self.table.closest(msg.target, self._k, (msg.asker,)))

    # -- what the supervisor reads --------------------------------------------------------------------------------

    def contacts(self) -> list[Contact]:
        return [self._me, *self.table.contacts()]

    def closest(self, target: int) -> Contact:
        return closest_or_owner(self._me, self.table, target)

    # -- client ---------------------------------------------------------------------------------------------------

    def join(self, contact: Contact) -> None:
        """Learn ``contact``, look up our own id, then refresh the buckets beyond our closest neighbour (§2.3)."""
        self.table.seen(contact)
        self._ping_suspects()
        self.lookup(self._me.id)
        for target in self.table.refresh_targets(self._rng):
            self.lookup(target)

    def install(self, contacts: list[Contact]) -> None:
        """Take ``contacts`` (:meth:`contacts`' form: the owner, then the buckets) as the table, as a snapshot saved
        it (docs/DESIGN.md §17); replacement caches and suspects are not part of it. Raises ``ValueError`` for a
        table that does not start with its owner or breaks the buckets' rules."""
        if not contacts or contacts[0].id != self._me.id:
            raise ValueError(f"the table of peer {self._me.id} does not start with it")
        self.table = KBuckets.from_wire(self._me.id, contacts[1:], self._k)

    def refresh(self) -> None:
        """Ping the suspects, then refresh every bucket from our closest neighbour's on (a lookup in each)."""
        self._ping_suspects()
        for target in self.table.refresh_targets(self._rng, include_closest=True):
            self.lookup(target)

    def depart(self) -> int:
        """Leave without a word (the others find out by failing to reach us): 0 peers told."""
        return 0

    def lookup(self, target: int) -> Lookup:
        """One iterative lookup of ``target`` (the finished :class:`~.lookup.Lookup`); it updates our table."""
        me, table = self._me, self.table
        lookup = Lookup(me.id, target, table.closest(target, self._k), self._k, self._alpha)
        while batch := lookup.next_round():
            results = self._node.call_many([(contact.server, m.FindNode, (me, target), m.NodesReply)
                                            for contact in batch], self._window)
            for contact, result in zip(batch, results):
                if result.replied:
                    lookup.answered(contact, result.reply.contacts)
                    table.seen(contact)
                else:
                    lookup.failed(contact)
                    table.failed(contact.id)
        return lookup

    def _ping_suspects(self) -> None:
        suspects = self.table.suspects()
        if not suspects:
            return
        results = self._node.call_many([(suspect.server, m.Ping, (self._me,), m.Done) for suspect in suspects],
                                       self._alpha)
        for suspect, result in zip(suspects, results):
            if result.replied:
                self.table.ping_answered(suspect)
            else:
                self.table.failed(suspect.id)


class KademliaTable:
    """A Kademlia peer's table as the supervisor reads it: its owner and its buckets (:attr:`buckets`), from the wire
    form ``[owner, *buckets in wire order]``. Like the original's tables it counts its owner, lists it among its
    entries (graph files give every peer a self-loop) and routes greedily including it: ``closest(target)`` is the
    owner when no entry is nearer, and a greedy route stops there. Read-only."""

    __slots__ = ("owner", "buckets")

    def __init__(self, owner: Contact | None, buckets: KBuckets | None) -> None:
        self.owner = owner
        self.buckets = buckets

    @classmethod
    def from_wire(cls, contacts: list[Contact], k: int) -> "KademliaTable":
        """The table of :meth:`Kademlia.contacts`; ``[]`` (a peer that could not be asked) is an empty table. Raises
        ``ValueError`` as :meth:`KBuckets.from_wire` does."""
        if not contacts:
            return cls(None, None)
        owner = contacts[0]
        return cls(owner, KBuckets.from_wire(owner.id, contacts[1:], k))

    def __len__(self) -> int:
        return 0 if self.owner is None else 1 + len(self.buckets)

    def __iter__(self):
        return iter(self.contacts())

    def contacts(self) -> list[Contact]:
        """The wire form: the owner, then the buckets by index, each least recently seen first."""
        return [] if self.owner is None else [self.owner, *self.buckets.contacts()]

    def descending(self) -> list[Contact]:
        return sorted(self.contacts(), key=lambda contact: contact.id, reverse=True)

    def closest(self, target: int) -> Contact:
        """The entry nearest ``target`` by XOR distance, the owner included. Raises ``LookupError`` when empty."""
        if self.owner is None:
            raise LookupError("an empty table has no closest entry")
        return closest_or_owner(self.owner, self.buckets, target)


def closest_or_owner(owner: Contact, buckets: KBuckets, target: int) -> Contact:
    """One greedy-routing step: the contact of ``buckets`` nearest ``target``, or ``owner`` if none is nearer."""
    nearest = buckets.closest(target, 1)
    return nearest[0] if nearest and nearest[0].id ^ target < owner.id ^ target else owner
