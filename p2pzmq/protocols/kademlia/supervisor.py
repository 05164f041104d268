"""Kademlia's iterative lookups seen from the supervisor (docs/DESIGN.md §10): net_status's ``lookups``, computed on
the fetched tables exactly as the messages would go, and one lookup driven by messages for ``lookup FROM ID``.

Neither changes a table. The computed lookups run :class:`~.lookup.Simulator` in the offload thread
on every alive peer's table (a peer whose table could not be fetched is dead: asking it fails). The driven lookup
asks each contact's *client* for the answer its server would give (``ClientNodes``, a read that learns nobody)
instead of sending ``FindNode`` to its server, so it shows the rounds a lookup would take now; tests check that
both give the same rounds, requests and result.
"""
from __future__ import annotations

import collections
from typing import Callable

from ... import messages as m
from ...config import Config
from ...contact import Contact
from ...errors import TransportError
from ...timeline import Timeline
from .kbuckets import KBuckets
from .lookup import Lookup, Simulator
from .peer import KademliaTable

#: About this many lookups are computed per task of the offload thread; progress is reported between tasks.
CHUNK = 20_000


def status(offload: Callable, config: Config, ids: list[int], wires: list[list[Contact]],
           targets: list[list[int]], sample: int, report: Callable[[str, int, int], None]) -> dict:
    """``{"lookups": ...}``: the iterative lookup from each peer of ``ids`` (whose tables' wire forms are ``wires``)
    to each of its own ``targets`` but itself, on those tables: ``success_rate`` (the target among the k closest
    found), the histogram and mean of ``rounds`` of every lookup, ``requests_mean``, ``sample`` (targets per peer, 0
    for all pairs) and ``lookups`` (how many). Reports ``("lookups", done, total)`` as chunks of them are done."""
    tables, plan = offload(_prepare, config, ids, wires, targets)
    total = sum(len(sources) for _, sources in plan)
    found = requests = done = size = 0
    rounds: collections.Counter = collections.Counter()
    chunk: list[tuple[int, list[int]]] = []
    for index, (target, sources) in enumerate(plan, 1):
        chunk.append((target, sources))
        size += len(sources)
        if size >= CHUNK or index == len(plan):
            report("lookups", done, total)
            chunk_found, chunk_rounds, chunk_requests = offload(_simulate, tables, chunk, config.k, config.alpha)
            found, requests, done = found + chunk_found, requests + chunk_requests, done + size
            rounds.update(chunk_rounds)
            chunk, size = [], 0
    report("lookups", total, total)
    mean = sum(count * times for count, times in rounds.items()) / total if total else 0.0
    return {"lookups": {
        "success_rate": round(found / total, 6) if total else 0.0,
        "rounds": {"histogram": {str(count): rounds[count] for count in sorted(rounds)}, "mean": round(mean, 4)},
        "requests_mean": round(requests / total, 4) if total else 0.0, "sample": sample, "lookups": total}}


def _prepare(config: Config, ids: list[int], wires: list[list[Contact]],
             targets: list[list[int]]) -> tuple[dict[int, KBuckets], list[tuple[int, list[int]]]]:
    """The buckets of every table, and the lookups grouped by target: ``[(target, [source, ...]), ...]`` in the
    order the targets first appear."""
    tables = {peer_id: KademliaTable.from_wire(wire, config.k).buckets for peer_id, wire in zip(ids, wires)}
    by_target: dict[int, list[int]] = {}
    for source, row in zip(ids, targets):
        for target in row:
            if target != source:
                by_target.setdefault(target, []).append(source)
    return tables, list(by_target.items())


def _simulate(tables: dict[int, KBuckets], chunk: list[tuple[int, list[int]]], k: int,
              alpha: int) -> tuple[int, collections.Counter, int]:
    """Run the lookups of ``chunk``: how many found their target, the histogram of rounds, the requests sent. One
    simulator per target, so its memory goes with the target."""
    found = requests = 0
    rounds: collections.Counter = collections.Counter()
    for target, sources in chunk:
        simulator = Simulator(tables, k, alpha)
        for source in sources:
            result = simulator.lookup(source, target)
            found += result.found(target)
            rounds[result.rounds] += 1
            requests += result.requests
    return found, rounds, requests


def drive(channel, config: Config, start: Contact, target: int) -> dict:
    """``{"lookup": ...}``: the lookup of ``target`` by the peer ``start``, driven round by round by asking each
    contact's client what its server would answer (``ClientNodes``) through ``channel`` (the supervisor's command
    channel): ``rounds`` (per round, each contact asked and whether it answered), ``requests``, ``found`` (the
    target among the k closest found), ``result`` (those k, nearest first), and its timeline on the channel's
    clock (:meth:`~p2pzmq.timeline.Timeline.describe`: every request with its send and reply times, ``seconds``
    from start to end, ``first_seen``; the ask of ``start``'s own closest contacts is the first request). Raises
    :class:`~p2pzmq.errors.TransportError` if ``start`` itself does not answer."""
    timeline = Timeline(channel.now())
    number = timeline.sent(start.id, timeline.started)
    first = channel.ask([(start, m.ClientNodes, (target, start.id))], strict=True)[0]
    if not first.replied:
        raise TransportError(f"peer {start.id} is gone")
    seeds = first.reply.contacts
    timeline.settled(number, *channel.settled(start.id, start, timeline.started, first))
    if any(contact.id == target for contact in seeds):
        timeline.seen_at_start()
    lookup = Lookup(start.id, target, seeds, config.k, config.alpha)
    rounds = []
    while batch := lookup.next_round():
        sent = channel.sent_at(timeline.ended)  # a round starts when the one before has settled
        numbers = [timeline.sent(contact.id, sent) for contact in batch]
        results = channel.ask([(contact, m.ClientNodes, (target, start.id)) for contact in batch])
        answers = []
        for contact, result, number in zip(batch, results, numbers):
            at, answered = channel.settled(start.id, contact, sent, result)
            answers.append(answered)
            if answered:
                timeline.settled(number, at, True, [named.id for named in result.reply.contacts], target)
                lookup.answered(contact, result.reply.contacts)
            else:  # no answer, or under a model a lost request: the lookup routes around it
                timeline.settled(number, at, False)
                lookup.failed(contact)
        rounds.append([{"id": str(contact.id), "answered": answered} for contact, answered in zip(batch, answers)])
    return {"lookup": {"rounds": rounds, "requests": lookup.requests, "found": lookup.found(target),
                       "result": [str(contact.id) for contact in lookup.result()], **timeline.describe()}}
