"""Kademlia's iterative node lookup (Maymounkov & Mazières 2002, §2.3) as a round-based state machine: pure, no
sockets, no clock, no randomness.

The caller sends the requests :meth:`Lookup.next_round` names and reports each outcome with
:meth:`Lookup.answered` or :meth:`Lookup.failed`, in any order; a round takes effect only when its last outcome is
in, and then in the round's request order, so a lookup over a real network and the message-free model make the same
decisions. For their routing tables to agree as well, the requester's own ``seen(replier)`` and ``failed(id)``
calls must follow that order too (e.g. made when the round is complete). :class:`Simulator` and :func:`simulate`
run whole lookups on a snapshot of routing tables, for statistics and tests.
"""
from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

from ...contact import Contact
from .kbuckets import K, KBuckets

#: Requests a round sends while the lookup is making progress (the paper's α).
ALPHA = 3


class Lookup:
    """One lookup of ``target`` by the peer ``own_id``, starting from ``seeds`` (usually its k closest contacts).

    Rules: the shortlist is the ``k`` closest contacts heard of that have not failed; a round asks the ``alpha``
    closest of them not yet asked, or all such when the previous round brought nothing closer than the closest
    contact known before it; a contact that fails leaves the shortlist for good; the lookup is done when the ``k``
    closest have all been asked and have answered. The owner is never asked, even if a reply names it.
    """

    __slots__ = ("own_id", "target", "k", "alpha", "rounds", "requests", "_heard", "_order", "_asked",
                 "_answered", "_round", "_pending", "_replies", "_widen")

    def __init__(self, own_id: int, target: int, seeds: Iterable[Contact], k: int = K, alpha: int = ALPHA) -> None:
        if k < 1 or alpha < 1:
            raise ValueError("k and alpha must be positive")
        self.own_id = own_id
        self.target = target
        self.k = k
        self.alpha = alpha
        self.rounds = 0
        self.requests = 0
        # Every id heard of: its contact while it is a candidate, None for the owner and for those that failed, so
        # that neither is ever added again.
        self._heard: dict[int, Contact | None] = {own_id: None}
        self._order: list[int] = []  # the candidates' ids, nearest the target first
        self._asked: set[int] = set()
        self._answered: set[int] = set()
        self._round: list[Contact] = []
        self._pending: set[int] = set()  # ids of the round yet to answer or fail
        self._replies: dict[int, list[Contact] | None] = {}  # id -> the contacts it returned, None if it failed
        self._widen = False
        self._learn(seeds)
        self._order.sort(key=target.__xor__)

    @property
    def done(self) -> bool:
        """True once the round is complete and the k closest candidates have all answered."""
        return not self._pending and all(peer_id in self._asked for peer_id in self._order[:self.k])

    def next_round(self) -> list[Contact]:
        """The contacts to ask now, nearest first; ``[]`` when the lookup is done.

        Raises ``RuntimeError`` while a request of the current round has neither answered nor failed.
        """
        if self._pending:
            raise RuntimeError("the current round still has requests outstanding")
        fresh = [peer_id for peer_id in self._order[:self.k] if peer_id not in self._asked]
        if not self._widen:
            del fresh[self.alpha:]
        self._round = [self._heard[peer_id] for peer_id in fresh]
        self._pending = set(fresh)
        self._replies = {}
        if fresh:
            self._asked.update(fresh)
            self.rounds += 1
            self.requests += len(fresh)
        return list(self._round)

    def answered(self, contact: Contact, contacts: Iterable[Contact]) -> None:
        """``contact`` replied with ``contacts``. Raises ``ValueError`` unless it was asked in this round and has
        not replied or failed yet."""
        self._record(contact, list(contacts))

    def failed(self, contact: Contact) -> None:
        """``contact`` did not answer. Raises ``ValueError`` as :meth:`answered` does."""
        self._record(contact, None)

    def result(self) -> list[Contact]:
        """The ``k`` closest contacts that answered, nearest first."""
        answered = self._answered
        return [self._heard[peer_id] for peer_id in self._order if peer_id in answered][:self.k]

    def found(self, peer_id: int) -> bool:
        """True if ``peer_id`` is among :meth:`result`."""
        return any(contact.id == peer_id for contact in self.result())

    def _record(self, contact: Contact, reply: list[Contact] | None) -> None:
        if contact.id not in self._pending:
            raise ValueError(f"{contact.id} was not asked in this round or has already been heard from")
        self._pending.remove(contact.id)
        self._replies[contact.id] = reply
        if not self._pending:
            self._apply_round()

    def _apply_round(self) -> None:
        heard, order, target = self._heard, self._order, self.target
        closest_before = order[0]
        for contact in self._round:
            reply = self._replies[contact.id]
            if reply is None:
                heard[contact.id] = None
                order.remove(contact.id)
            else:
                self._answered.add(contact.id)
                self._learn(reply)
        order.sort(key=target.__xor__)
        self._widen = not order or order[0] ^ target >= closest_before ^ target

    def _learn(self, contacts: Iterable[Contact]) -> None:
        """Add the contacts never heard of to the candidates, unsorted."""
        heard = self._heard
        new = {contact.id: contact for contact in contacts if contact.id not in heard}
        heard.update(new)
        self._order += new


class LookupResult(NamedTuple):
    """What a simulated lookup found: the k closest peers that answered, nearest first, and what it cost."""

    contacts: list[Contact]
    rounds: int
    requests: int

    def found(self, peer_id: int) -> bool:
        """True if ``peer_id`` is among the contacts found."""
        return any(contact.id == peer_id for contact in self.contacts)


class Simulator:
    """Lookups on a snapshot of every alive peer's routing table, changing none: for statistics and tests.

    Each asked peer answers ``closest(target, k, exclude=(source,))`` from its table; a peer absent from ``tables``
    is dead, and its request fails. The rules are :class:`Lookup`'s, applied to the contacts' XOR distances to the
    target rather than to the contacts (net_status runs a lookup from every peer to every other: millions of them),
    and tests/test_lookup_kademlia.py checks that both make the same decisions. A peer's answer for a target hardly
    depends on who asks, so the simulator keeps, per target, each asked peer's ``k + 1`` closest (their distances)
    and drops the source from them: lookups from many sources to one target then cost a fraction of a fresh lookup.
    That memory, about 3.5 KB per peer asked per target, is only of use to lookups of the same target, so a caller
    can bound it by taking one simulator per target. Make a new simulator whenever a table changes.
    """

    def __init__(self, tables: Mapping[int, KBuckets], k: int = K, alpha: int = ALPHA) -> None:
        self.tables = tables
        self.k = k
        self.alpha = alpha
        # target -> {a peer's distance to it: (its k closest as a frozenset of distances, its k + 1 closest in order)
        # or None for a dead peer}
        self._answers: dict[int, dict[int, tuple[frozenset, tuple] | None]] = {}
        self._contacts: dict[int, Contact] = {}  # id -> contact, of every contact an answer named

    def lookup(self, source: int, target: int) -> LookupResult:
        """The lookup of ``target`` by the alive peer ``source``."""
        k, alpha = self.k, self.alpha
        answers = self._answers.get(target)
        if answers is None:
            answers = self._answers[target] = {}
        contacts = self._contacts
        own = source ^ target
        seeds = self.tables[source].closest(target, k)
        for contact in seeds:
            contacts[contact.id] = contact
        order = sorted([contact.id ^ target for contact in seeds])  # the candidates, nearest first
        heard = set(order)  # every distance heard of, failed ones and the source's own included
        heard.add(own)
        asked: set[int] = set()
        widen = False
        rounds = requests = 0
        while True:
            fresh = [distance for distance in order[:k] if distance not in asked]
            if not fresh:
                break
            if not widen:
                del fresh[alpha:]
            rounds += 1
            requests += len(fresh)
            asked.update(fresh)
            closest_before = order[0]
            new: set[int] = set()
            for distance in fresh:
                answer = answers.get(distance, _UNKNOWN)
                if answer is _UNKNOWN:
                    answer = self._answer(answers, distance, target)
                if answer is None:  # dead: out of the shortlist for good (it stays heard)
                    order.remove(distance)
                elif own in answer[1]:  # the source is among its k + 1 closest: the answer leaves it out
                    new.update([other for other in answer[1] if other != own])
                else:
                    new |= answer[0]
            new -= heard
            if new:
                heard |= new
                order += new
                order.sort()
            widen = not order or order[0] >= closest_before
        # every candidate asked has answered (a failed one left the candidates)
        return LookupResult([contacts[distance ^ target] for distance in order if distance in asked][:k], rounds,
                            requests)

    def _answer(self, answers: dict, distance: int, target: int) -> tuple[frozenset, tuple] | None:
        """The answer of the peer at ``distance`` from ``target``, remembered in ``answers``."""
        table = self.tables.get(distance ^ target)
        if table is None:
            answers[distance] = None
            return None
        wider = table.closest(target, self.k + 1)
        for contact in wider:
            self._contacts[contact.id] = contact
        distances = tuple([contact.id ^ target for contact in wider])
        answer = answers[distance] = (frozenset(distances[:self.k]), distances)
        return answer


#: What :meth:`Simulator.lookup` finds for a peer it has not asked about the target yet.
_UNKNOWN = object()


def simulate(tables: Mapping[int, KBuckets], source: int, target: int, k: int = K,
             alpha: int = ALPHA) -> LookupResult:
    """One lookup of ``target`` by ``source`` on a snapshot of tables (see :class:`Simulator`)."""
    return Simulator(tables, k, alpha).lookup(source, target)
