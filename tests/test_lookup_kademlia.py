"""Kademlia's iterative lookup (p2pzmq.protocols.kademlia.lookup): hand-worked rounds, the rules one by one,
independence from reply order, and the true k closest on seeded networks whose tables are complete."""
from __future__ import annotations

import random

import pytest

from p2pzmq.ids import new_id
from p2pzmq.protocols.kademlia.kbuckets import KBuckets
from p2pzmq.protocols.kademlia.lookup import Lookup, LookupResult, Simulator, simulate
from p2pzmq.contact import Contact

pytestmark = pytest.mark.timeout(30)


def contact(peer_id: int) -> Contact:
    return Contact(peer_id, f"inproc://server/{peer_id}", f"inproc://client/{peer_id}")


def drive(lookup: Lookup, replies: dict, order=None) -> list[list[int]]:
    """Run ``lookup`` to the end on scripted ``replies`` (id -> ids it returns, None: it fails); the ids each
    round asked. ``order(batch)`` permutes the order in which a round's outcomes are reported."""
    rounds = []
    while batch := lookup.next_round():
        rounds.append([c.id for c in batch])
        for asked in (order(batch) if order else batch):
            reply = replies.get(asked.id, [])
            if reply is None:
                lookup.failed(asked)
            else:
                lookup.answered(asked, [contact(peer_id) for peer_id in reply])
    assert lookup.done and lookup.next_round() == []
    return rounds


# -- hand-worked cases (target 0, so a contact's distance is its id) --------------------------------------------

def test_a_hand_worked_lookup_with_failures():
    lookup = Lookup(own_id=99, target=0, seeds=[contact(i) for i in (20, 24, 28)], k=3, alpha=2)
    replies = {20: [9, 12], 24: None, 9: [5, 30], 12: [6], 5: [24, 3], 6: None, 3: [5, 9]}
    # 1: the two closest seeds; 24 fails. 2: 9 and 12 (20 was asked). 3: 5 and 6; 6 fails, 5 names 24 again,
    # which stays out. 4: only 3 is left unasked among the three closest (3, 5, 9); it brings nothing closer,
    # so the next round would widen, but every one of the three closest has answered: done.
    assert drive(lookup, replies) == [[20, 24], [9, 12], [5, 6], [3]]
    assert (lookup.rounds, lookup.requests) == (4, 7)
    assert [c.id for c in lookup.result()] == [3, 5, 9]
    assert lookup.found(3) and not lookup.found(6) and not lookup.found(20)


def test_a_round_without_progress_makes_the_next_ask_all_k_closest_not_yet_asked():
    lookup = Lookup(own_id=99, target=0, seeds=[contact(40)], k=4, alpha=1)
    replies = {40: [10, 11, 12, 13], 10: [50], 13: [2]}
    # 2 asks 10, which brings nothing closer than 10: round 3 asks 11, 12 and 13 at once; 13 brings 2, progress,
    # so round 4 asks alpha = 1 again.
    assert drive(lookup, replies) == [[40], [10], [11, 12, 13], [2]]
    assert (lookup.rounds, lookup.requests) == (4, 6)
    assert [c.id for c in lookup.result()] == [2, 10, 11, 12]


def test_the_owner_is_never_asked_and_a_lookup_without_seeds_is_done_at_once():
    lookup = Lookup(own_id=5, target=5, seeds=[contact(5), contact(7)], k=3, alpha=3)
    assert drive(lookup, {7: [5, 4]}) == [[7], [4]]
    assert [c.id for c in lookup.result()] == [4, 7] and not lookup.found(5)
    empty = Lookup(own_id=5, target=1, seeds=[], k=3, alpha=3)
    assert empty.done and empty.next_round() == [] and empty.result() == [] and empty.rounds == 0


def test_when_everyone_fails_the_lookup_ends_with_nothing():
    lookup = Lookup(own_id=99, target=0, seeds=[contact(i) for i in (1, 2, 3, 4)], k=2, alpha=1)
    # Losing the closest is no progress: the next round asks both of the two closest left.
    assert drive(lookup, {1: None, 2: None, 3: None, 4: None}) == [[1], [2, 3], [4]]
    assert lookup.result() == [] and lookup.requests == 4


def test_outcomes_are_checked():
    lookup = Lookup(own_id=99, target=0, seeds=[contact(1), contact(2)], k=2, alpha=2)
    first, second = lookup.next_round()
    with pytest.raises(ValueError):
        lookup.answered(contact(3), [])  # never asked
    lookup.answered(first, [])
    with pytest.raises(ValueError):
        lookup.failed(first)  # already heard from
    with pytest.raises(RuntimeError):
        lookup.next_round()  # second is outstanding
    assert not lookup.done
    lookup.failed(second)
    assert lookup.next_round() == [] and lookup.done
    with pytest.raises(ValueError):
        Lookup(own_id=1, target=0, seeds=[], k=0)


# -- rules on random scripted networks --------------------------------------------------------------------------

def scripted(rng: random.Random, size: int, fail_rate: float) -> tuple[dict, list[int]]:
    """Replies from a random little world: each id fails or answers with a few random ids."""
    ids = rng.sample(range(1, 10_000), size)
    replies = {i: None if rng.random() < fail_rate else rng.sample(ids, rng.randrange(0, 8)) for i in ids}
    return replies, ids


@pytest.mark.parametrize("seed", range(20))
def test_reply_order_within_a_round_changes_nothing(seed):
    rng = random.Random(seed)
    replies, ids = scripted(rng, 120, fail_rate=0.2)
    target, k, alpha = rng.randrange(10_000), rng.choice([2, 5, 20]), rng.choice([1, 3])
    seeds = [contact(i) for i in rng.sample(ids, 5)]
    in_order = Lookup(0, target, seeds, k, alpha)
    shuffled = Lookup(0, target, seeds, k, alpha)
    rounds = drive(in_order, replies)
    assert drive(shuffled, replies, order=lambda batch: rng.sample(batch, len(batch))) == rounds
    assert shuffled.result() == in_order.result() and shuffled.requests == in_order.requests


@pytest.mark.parametrize("seed", range(20))
def test_rules_hold_on_random_worlds(seed):
    rng = random.Random(100 + seed)
    replies, ids = scripted(rng, 150, fail_rate=0.25)
    own, target, k, alpha = ids[0], rng.choice([rng.randrange(10_000), ids[1]]), rng.choice([1, 3, 8]), 2
    replies[ids[2]] = [own] + ids[3:10]  # a reply that names the owner
    seeds = rng.sample(ids, 6)
    lookup = Lookup(own, target, [contact(i) for i in seeds], k, alpha)
    rounds = drive(lookup, replies)
    asked = [i for batch in rounds for i in batch]
    assert len(asked) == len(set(asked)) == lookup.requests and own not in asked
    assert lookup.rounds == len(rounds) and all(batch == sorted(batch, key=target.__xor__) for batch in rounds)
    result = [c.id for c in lookup.result()]
    assert all(replies[i] is not None for i in result)  # failures left the shortlist
    assert result == sorted(result, key=target.__xor__) and len(result) <= k
    # Done: the k closest of everything heard that did not fail have all answered.
    heard = set(seeds) | {named for i in asked if replies[i] for named in replies[i]}
    alive = sorted((i for i in heard - {own} if replies[i] is not None), key=target.__xor__)
    assert result == alive[:k]


# -- simulate on seeded networks --------------------------------------------------------------------------------

def network(rng: random.Random, n: int, k: int, complete: bool) -> dict[int, KBuckets]:
    """``n`` peers; complete: each has seen every other in random order (each bucket holds min(k, its range));
    else each has seen a random handful."""
    contacts = [contact(new_id(rng)) for _ in range(n)]
    tables = {}
    for me in contacts:
        table = KBuckets(me.id, k)
        others = [c for c in contacts if c is not me]
        for other in rng.sample(others, len(others) if complete else min(len(others), rng.randrange(1, 12))):
            table.seen(other)
        tables[me.id] = table
    return tables


def lookup_by_hand(tables, source, target, k, alpha):
    """The lookup of simulate, driven step by step to watch whom it asks."""
    lookup = Lookup(source, target, tables[source].closest(target, k), k, alpha)
    asked = []
    while batch := lookup.next_round():
        for asked_contact in batch:
            asked.append(asked_contact.id)
            table = tables.get(asked_contact.id)
            if table is None:
                lookup.failed(asked_contact)
            else:
                lookup.answered(asked_contact, table.closest(target, k, exclude=(source,)))
    return lookup, asked


@pytest.mark.parametrize("seed", range(10))
def test_complete_tables_give_the_true_k_closest_of_the_whole_network(seed):
    rng = random.Random(seed)
    k, alpha = rng.choice([1, 2, 3, 5, 8, 20]), rng.choice([1, 2, 3])
    tables = network(rng, rng.randrange(2, 120), k, complete=True)
    ids = list(tables)
    for _ in range(30):
        source, target = rng.choice(ids), rng.choice(ids + [new_id(rng)])
        lookup, asked = lookup_by_hand(tables, source, target, k, alpha)
        truth = sorted((i for i in ids if i != source), key=target.__xor__)[:k]
        assert [c.id for c in lookup.result()] == truth
        assert len(asked) == len(set(asked)) and source not in asked
        assert simulate(tables, source, target, k, alpha) == LookupResult(lookup.result(), lookup.rounds,
                                                                           lookup.requests)


@pytest.mark.parametrize("seed", range(6))
def test_simulator_agrees_with_simulate_and_changes_no_table(seed):
    rng = random.Random(50 + seed)
    k = rng.choice([2, 5, 20])
    tables = network(rng, 60, k, complete=False)
    for dead in rng.sample(list(tables), 10):
        del tables[dead]
    before = {i: (t.contacts(), t.suspects(), [t.cache(b) for b in range(160)]) for i, t in tables.items()}
    simulator = Simulator(tables, k, alpha=3)
    for source in tables:
        for target in list(tables)[:15] + [new_id(rng)]:
            if source != target:
                assert simulator.lookup(source, target) == simulate(tables, source, target, k, 3)
    assert {i: (t.contacts(), t.suspects(), [t.cache(b) for b in range(160)]) for i, t in tables.items()} == before


@pytest.mark.parametrize("seed", range(8))
def test_the_simulator_makes_the_decisions_of_a_lookup_driven_round_by_round(seed):
    # Sparse tables and dead peers: answers that name the source, the dead and the owner, rounds that widen.
    rng = random.Random(70 + seed)
    k, alpha = rng.choice([1, 2, 4, 20]), rng.choice([1, 2, 3])
    tables = network(rng, 80, k, complete=False)
    for dead in rng.sample(list(tables), 16):
        del tables[dead]
    simulator = Simulator(tables, k, alpha)
    alive = list(tables)
    for _ in range(150):
        source, target = rng.choice(alive), rng.choice([rng.choice(alive), new_id(rng)])
        lookup, _ = lookup_by_hand(tables, source, target, k, alpha)
        assert simulator.lookup(source, target) == LookupResult(lookup.result(), lookup.rounds, lookup.requests)
