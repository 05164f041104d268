"""A third protocol, outside the package: a random graph (docs/DESIGN.md §11, "Writing a protocol").

Each peer keeps a bounded random sample of the peers it heard of: at most ``SAMPLE`` others besides itself. A peer
that hears of a new one while full replaces a random entry, drawn from the peer's own stream
(``random.Random(f"{seed}:{id}")``), so tables depend only on the seed and the order of events, not on where the
peer lives. Its messages are its own (:func:`p2pzmq.messages.define`): the server answers ``Gossip`` with its table
(``GossipReply``: owner first, then the others by id), then learns the sender. A join asks its bootstrap peer; a
refresh asks every entry of its table, in id order. Leaving says nothing. Routing is greedy by XOR distance, the
owner included. It has no settings of its own.

Importing this module registers the protocol as ``random_graph``; ``Config(protocol_module=...)`` names it so that
worker processes import it too. Nothing in p2pzmq knows it.
"""
from __future__ import annotations

import random
from typing import NamedTuple

from p2pzmq import messages as m
from p2pzmq import protocols, wire
from p2pzmq.contact import Contact
from p2pzmq.errors import TransportError

NAME = "random_graph"
#: Other peers a table holds at most.
SAMPLE = 6


class Gossip(NamedTuple):
    """Which peers do you know? (the server learns the sender)."""

    req_id: int
    cookie: int
    sender: Contact


class GossipReply(NamedTuple):
    req_id: int
    cookie: int
    contacts: list[Contact]


# Kinds from the top of the byte, clear of those the package's schema may add later.
m.define(250, Gossip, (wire.REQUEST_ID, wire.COOKIE, wire.CONTACT))
m.define(251, GossipReply, (wire.REQUEST_ID, wire.COOKIE, wire.contacts(1 + SAMPLE)), reply=True)


class SampleTable:
    """A table: its owner and up to :data:`SAMPLE` others. It is also what the supervisor reads (it answers
    ``len``, iteration, ``closest`` and ``descending``)."""

    def __init__(self, owner: Contact | None, others=()) -> None:
        self.owner = owner
        self.others: dict[int, Contact] = {contact.id: contact for contact in others}

    def __len__(self) -> int:
        return 0 if self.owner is None else 1 + len(self.others)

    def __iter__(self):
        return iter(self.contacts())

    def contacts(self) -> list[Contact]:
        """The wire form: the owner, then the others by id."""
        return [] if self.owner is None else [self.owner, *(self.others[key] for key in sorted(self.others))]

    def descending(self) -> list[Contact]:
        return sorted(self.contacts(), key=lambda contact: contact.id, reverse=True)

    def closest(self, target: int) -> Contact:
        if self.owner is None:
            raise LookupError("an empty table has no closest entry")
        return min(self.contacts(), key=lambda contact: contact.id ^ target)

    def learn(self, contact: Contact, rng: random.Random) -> None:
        if contact.id == self.owner.id or contact.id in self.others:
            return
        if len(self.others) >= SAMPLE:
            del self.others[sorted(self.others)[rng.randrange(SAMPLE)]]
        self.others[contact.id] = contact


class RandomGraph:
    """One peer's side of the random graph."""

    def __init__(self, config, node, cookies: random.Random) -> None:
        self._node = node
        self._me = node.contact
        self._timeout = config.client_timeout
        self._rng = random.Random(None if config.seed is None else f"{config.seed}:{self._me.id}")
        self.table = SampleTable(self._me)

    def serve(self, msg: Gossip) -> GossipReply:
        reply = GossipReply(msg.req_id, msg.cookie, self.table.contacts())
        self.table.learn(msg.sender, self._rng)
        return reply

    def contacts(self) -> list[Contact]:
        return self.table.contacts()

    def closest(self, target: int) -> Contact:
        return self.table.closest(target)

    def join(self, contact: Contact) -> None:
        self.table.learn(contact, self._rng)
        self._ask(contact)

    def refresh(self) -> None:
        for contact in list(self.table.contacts())[1:]:
            self._ask(contact)

    def depart(self) -> int:
        return 0

    def install(self, contacts: list[Contact]) -> None:
        self.table = table_from_wire(None, contacts)

    def _ask(self, contact: Contact) -> None:
        try:
            reply = self._node.call(contact.server, Gossip, (self._me,), GossipReply, self._timeout)
        except TransportError:
            return
        for heard in reply.contacts:
            self.table.learn(heard, self._rng)


def table_from_wire(config, contacts: list[Contact]) -> SampleTable:
    if len(contacts) > 1 + SAMPLE:
        raise ValueError(f"a random-graph table holds at most {1 + SAMPLE} contacts, not {len(contacts)}")
    return SampleTable(contacts[0], contacts[1:]) if contacts else SampleTable(None)


DESCRIPTOR = protocols.register(protocols.Descriptor(
    name=NAME, settings={}, start=RandomGraph, table_from_wire=table_from_wire,
    requests=(Gossip,)))
