"""Kademlia's routing table (p2pzmq.protocols.kademlia.kbuckets) against brute force and a literal reference.

The reference below keeps every bucket, cache and suspect in plain lists and follows the rules word by word;
random operation sequences crowded into a few small buckets must leave both in the same state after every step.
"""
from __future__ import annotations

import random

import pytest

from p2pzmq.ids import ID_BITS, new_id
from p2pzmq.protocols.kademlia.kbuckets import CACHE_SIZE, K, KBuckets, bucket_index
from p2pzmq.contact import Contact

pytestmark = pytest.mark.timeout(30)


def contact(peer_id: int, tag: str = "") -> Contact:
    return Contact(peer_id, f"inproc://server/{peer_id}{tag}", f"inproc://client/{peer_id}{tag}")


def near(own: int, distance: int, tag: str = "") -> Contact:
    """The contact at exactly this XOR distance from ``own``."""
    return contact(own ^ distance, tag)


def filled(own: int, index: int, count: int, k: int = K, cache_size: int = CACHE_SIZE) -> tuple[KBuckets, list]:
    """A table whose bucket ``index`` received ``count`` distinct contacts, in order."""
    table = KBuckets(own, k, cache_size)
    contacts = [near(own, (1 << index) + offset) for offset in range(count)]
    for each in contacts:
        table.seen(each)
    return table, contacts


def random_table(rng: random.Random, n: int, k: int) -> tuple[KBuckets, list[Contact]]:
    """A table that has seen ``n`` random contacts, a third of them close to the owner so low buckets fill too."""
    own = new_id(rng)
    offered = []
    for _ in range(n):
        peer_id = new_id(rng) if rng.random() < 0.66 else own ^ rng.randrange(1, 1 << rng.randrange(1, 40))
        if peer_id != own:
            offered.append(contact(peer_id))
    table = KBuckets(own, k)
    for each in offered:
        table.seen(each)
    return table, offered


# -- bucket indexes ---------------------------------------------------------------------------------------------

def test_bucket_index_is_the_bit_length_of_the_distance_minus_one():
    rng = random.Random(1)
    for _ in range(2000):
        own = new_id(rng)
        other = own ^ rng.randrange(1, 1 << rng.randrange(1, ID_BITS + 1))
        index = bucket_index(own, other)
        assert 1 << index <= own ^ other < 1 << (index + 1)
    assert bucket_index(0, 1) == 0 and bucket_index(0, (1 << ID_BITS) - 1) == ID_BITS - 1
    with pytest.raises(ValueError):
        bucket_index(5, 5)


def test_every_contact_sits_in_its_bucket_and_buckets_hold_at_most_k():
    rng = random.Random(2)
    for _ in range(30):
        table, _ = random_table(rng, 300, k=rng.choice([1, 3, 20]))
        for index in range(ID_BITS):
            bucket = table.bucket(index)
            assert len(bucket) <= table.k
            assert all(bucket_index(table.own_id, each.id) == index for each in bucket)
        assert len(table) == len(table.contacts()) == sum(len(table.bucket(i)) for i in range(ID_BITS))


# -- seen, suspects, failures: hand-made cases ------------------------------------------------------------------

def test_seen_appends_unknown_contacts_and_never_stores_the_owner():
    table = KBuckets(0b1000, k=3)
    table.seen(contact(0b1000))
    assert len(table) == 0 and 0b1000 not in table
    table.seen(contact(0b1001))
    table.seen(contact(0b1100))
    table.seen(contact(0b1101))
    assert table.bucket(0) == [contact(0b1001)]
    assert table.bucket(2) == [contact(0b1100), contact(0b1101)]
    assert table.contacts() == [contact(0b1001), contact(0b1100), contact(0b1101)]
    assert table.get(0b1100) == contact(0b1100) and table.get(0b1110) is None and table.get(0b1000) is None


def test_seen_moves_a_known_contact_to_the_tail_with_its_new_endpoints():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    moved = near(0, a.id, tag="-new")
    table.seen(moved)
    assert table.bucket(5) == [b, c, moved]
    assert table.get(a.id).server.endswith("-new")
    assert table.suspects() == [] and table.cache(5) == []


def test_a_full_bucket_keeps_its_contacts_caches_the_newcomer_and_suspects_its_oldest():
    table, (a, b, c) = filled(0, 5, 3, k=3, cache_size=2)
    d, e, f = (near(0, (1 << 5) + offset) for offset in (10, 11, 12))
    table.seen(d)
    assert table.bucket(5) == [a, b, c] and table.cache(5) == [d] and table.suspects() == [a]
    table.seen(e)  # one suspect at a time per bucket
    assert table.cache(5) == [d, e] and table.suspects() == [a]
    table.seen(f)  # the cache keeps the newest
    assert table.cache(5) == [e, f]
    table.seen(e)  # a cached contact seen again becomes the newest
    assert table.cache(5) == [f, e] and table.bucket(5) == [a, b, c]
    assert d.id not in table and f.id not in table  # cached contacts are not stored contacts


def test_a_suspect_that_answers_stays_and_the_next_newcomer_suspects_the_new_oldest():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    d, e = near(0, 40), near(0, 41)
    table.seen(d)
    table.ping_answered(a)
    assert table.bucket(5) == [b, c, a] and table.suspects() == [] and table.cache(5) == [d]
    table.seen(e)
    assert table.suspects() == [b] and table.cache(5) == [d, e]
    table.seen(b)  # any message from a suspect clears it, not only the answer to a ping
    assert table.suspects() == [] and table.bucket(5) == [c, a, b]


def test_a_suspect_that_fails_is_replaced_by_the_newest_cached_contact():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    d, e = near(0, 40), near(0, 41)
    table.seen(d)
    table.seen(e)
    table.failed(a.id)
    assert table.bucket(5) == [b, c, e] and table.cache(5) == [d] and table.suspects() == []
    assert a.id not in table


def test_a_contact_found_dead_in_a_lookup_is_replaced_and_the_suspect_stays_suspect():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    d = near(0, 40)
    table.seen(d)
    table.failed(c.id)
    assert table.bucket(5) == [a, b, d] and table.cache(5) == [] and table.suspects() == [a]
    table.failed(b.id)  # nothing cached any more: the bucket just has room
    assert table.bucket(5) == [a, d]
    table.failed(a.id)
    assert table.bucket(5) == [d] and table.suspects() == []


def test_failures_of_unknown_or_cached_contacts():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    d, e = near(0, 40), near(0, 41)
    table.seen(d)
    table.seen(e)
    table.failed(d.id)  # a cached contact that failed is dropped, and takes no one's place
    assert table.cache(5) == [e] and table.bucket(5) == [a, b, c]
    table.failed(near(0, 42).id)
    table.failed(0)
    assert table.bucket(5) == [a, b, c] and table.cache(5) == [e] and table.suspects() == [a]


def test_remove_forgets_without_refilling_and_a_cached_contact_then_takes_a_free_place():
    table, (a, b, c) = filled(0, 5, 3, k=3)
    d = near(0, 40)
    table.seen(d)
    assert table.remove(a.id) is True and table.remove(a.id) is False and table.remove(0) is False
    assert table.bucket(5) == [b, c] and table.cache(5) == [d] and table.suspects() == []
    table.seen(d)  # room now: it moves from the cache into the bucket
    assert table.bucket(5) == [b, c, d] and table.cache(5) == []
    table.seen(near(0, 41))
    assert table.remove(near(0, 41).id) is True and table.cache(5) == []


def test_suspects_are_listed_by_bucket_index():
    own = 0
    table = KBuckets(own, k=1)
    for index in (7, 3, 150, 1):
        table.seen(near(own, 1 << index))
    for index in (150, 1, 7):
        table.seen(near(own, (1 << index) + 1))
    assert table.suspects() == [near(own, 1 << 1), near(own, 1 << 7), near(own, 1 << 150)]
    assert table.cache(3) == [] and table.cache(1) == [near(own, 3)]


def test_a_zero_cache_still_suspects_but_keeps_no_newcomer():
    table, (a, b) = filled(0, 5, 2, k=2, cache_size=0)
    table.seen(near(0, 40))
    assert table.cache(5) == [] and table.suspects() == [a]
    table.failed(a.id)
    assert table.bucket(5) == [b]


def test_constructor_checks_its_arguments():
    for args in ((-1,), (1 << ID_BITS,), (1, 0), (1, 20, -1)):
        with pytest.raises(ValueError):
            KBuckets(*args)


# -- random sequences against a literal reference ---------------------------------------------------------------

class Reference:
    """The rules, literally: lists for buckets (oldest first) and caches (oldest first), a dict of suspects."""

    def __init__(self, own, k, cache_size):
        self.own, self.k, self.cache_size = own, k, cache_size
        self.buckets = [[] for _ in range(ID_BITS)]
        self.caches = [[] for _ in range(ID_BITS)]
        self.suspect = {}

    def index(self, peer_id):
        return (self.own ^ peer_id).bit_length() - 1

    def seen(self, c):
        if c.id == self.own:
            return
        i = self.index(c.id)
        bucket, cache = self.buckets[i], self.caches[i]
        ids = [x.id for x in bucket]
        if c.id in ids:
            del bucket[ids.index(c.id)]
            bucket.append(c)
            if self.suspect.get(i) == c.id:
                del self.suspect[i]
        elif len(bucket) < self.k:
            bucket.append(c)
            cache[:] = [x for x in cache if x.id != c.id]
        else:
            if self.cache_size:
                cache[:] = [x for x in cache if x.id != c.id] + [c]
                del cache[:-self.cache_size]
            if i not in self.suspect:
                self.suspect[i] = bucket[0].id

    def remove(self, peer_id):
        if peer_id == self.own:
            return False, False
        i = self.index(peer_id)
        stored = any(x.id == peer_id for x in self.buckets[i])
        cached = any(x.id == peer_id for x in self.caches[i])
        self.buckets[i] = [x for x in self.buckets[i] if x.id != peer_id]
        self.caches[i] = [x for x in self.caches[i] if x.id != peer_id]
        if self.suspect.get(i) == peer_id:
            del self.suspect[i]
        return stored, cached

    def failed(self, peer_id):
        stored, _ = self.remove(peer_id)
        if stored and self.caches[self.index(peer_id)]:
            self.buckets[self.index(peer_id)].append(self.caches[self.index(peer_id)].pop())

    def state(self):
        return ([x for b in self.buckets for x in b], [x for c in self.caches for x in c],
                [next(x for x in self.buckets[i] if x.id == s) for i, s in sorted(self.suspect.items())])


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_match_the_reference_step_by_step(seed):
    rng = random.Random(seed)
    own = new_id(rng)
    k, cache_size = rng.choice([(1, 0), (2, 1), (3, 2), (4, 3), (3, 5)])
    table, reference = KBuckets(own, k, cache_size), Reference(own, k, cache_size)
    universe = [own] + [own ^ rng.randrange(1, 64) for _ in range(40)]  # crowds buckets 0..5
    for step in range(1500):
        peer_id = rng.choice(universe)
        operation = rng.choice(["seen", "seen", "seen", "ping", "failed", "remove"])
        tagged = contact(peer_id, tag=str(step % 3))
        if operation == "seen":
            table.seen(tagged)
            reference.seen(tagged)
        elif operation == "ping":
            suspects = table.suspects()
            if suspects:
                chosen = rng.choice(suspects)
                table.ping_answered(chosen)
                reference.seen(chosen)
        elif operation == "failed":
            table.failed(peer_id)
            reference.failed(peer_id)
        else:
            assert table.remove(peer_id) == any(reference.remove(peer_id))
        stored, cached, suspects = reference.state()
        assert table.contacts() == stored
        assert [c for i in range(ID_BITS) for c in table.cache(i)] == cached
        assert table.suspects() == suspects
        assert all(suspect == table.bucket(bucket_index(own, suspect.id))[0] for suspect in suspects)
        assert len(table) == len(stored)


# -- closest against brute force --------------------------------------------------------------------------------

def brute_closest(table, target, count, exclude=()):
    return sorted((c for c in table.contacts() if c.id not in exclude), key=lambda c: c.id ^ target)[:count]


def test_closest_matches_sorting_everything():
    rng = random.Random(3)
    for _ in range(60):
        table, offered = random_table(rng, rng.choice([5, 50, 400]), k=rng.choice([1, 2, 5, 20]))
        stored = table.contacts()
        targets = [new_id(rng), table.own_id, table.own_id ^ 1, table.own_id ^ rng.randrange(1 << 40)]
        targets += [c.id for c in rng.sample(stored, min(3, len(stored)))]
        targets += [c.id ^ rng.randrange(1, 1 << 20) for c in rng.sample(stored, min(3, len(stored)))]
        for target in targets:
            for count in (0, 1, 2, 7, 20, 21, 1000):
                assert table.closest(target, count) == brute_closest(table, target, count)
                exclude = {c.id for c in rng.sample(offered, min(2, len(offered)))} | {target}
                assert table.closest(target, count, exclude) == brute_closest(table, target, count, exclude)
                assert table.closest(target, count, tuple(exclude)) == brute_closest(table, target, count, exclude)


def test_closest_on_an_empty_table():
    assert KBuckets(7).closest(3, 20) == []


# -- wire form --------------------------------------------------------------------------------------------------

def test_wire_order_is_by_bucket_then_least_recently_seen_and_rebuilds_exactly():
    rng = random.Random(4)
    for _ in range(40):
        k = rng.choice([1, 3, 20])
        table, offered = random_table(rng, 300, k)
        for each in rng.sample(offered, 50):  # reorder some buckets
            table.seen(each)
        wire = table.contacts()
        indexes = [bucket_index(table.own_id, c.id) for c in wire]
        assert indexes == sorted(indexes)
        rebuilt = KBuckets.from_wire(table.own_id, wire, k)
        assert rebuilt.contacts() == wire
        assert all(rebuilt.bucket(i) == table.bucket(i) for i in range(ID_BITS))
        target = new_id(rng)
        assert rebuilt.closest(target, k) == table.closest(target, k)


def test_from_wire_refuses_what_no_table_can_hold():
    own = 1000
    for bad in ([contact(own)], [contact(1), contact(1)], [contact(-1)], [contact(1 << ID_BITS)],
                [near(own, 8), near(own, 9), near(own, 10)]):
        with pytest.raises(ValueError):
            KBuckets.from_wire(own, bad, k=2)


# -- closest neighbour and refresh targets ----------------------------------------------------------------------

def test_closest_neighbour_index_is_the_bucket_of_the_nearest_contact():
    rng = random.Random(5)
    for _ in range(100):
        table, _ = random_table(rng, rng.randrange(1, 60), k=rng.choice([1, 20]))
        nearest = min(table.contacts(), key=lambda c: c.id ^ table.own_id)
        assert table.closest_neighbour_index() == bucket_index(table.own_id, nearest.id)
    with pytest.raises(LookupError):
        KBuckets(1).closest_neighbour_index()


def test_refresh_targets_land_one_in_each_bucket_farther_than_the_closest_neighbour():
    rng = random.Random(6)
    for _ in range(100):
        table, _ = random_table(rng, rng.randrange(1, 60), k=20)
        first = table.closest_neighbour_index()
        seed = rng.random()
        targets = table.refresh_targets(random.Random(seed))
        assert [bucket_index(table.own_id, t) for t in targets] == list(range(first + 1, ID_BITS))
        assert table.refresh_targets(random.Random(seed)) == targets
        wider = table.refresh_targets(random.Random(seed), include_closest=True)
        assert [bucket_index(table.own_id, t) for t in wider] == list(range(first, ID_BITS))
    assert KBuckets(1).refresh_targets(random.Random(0)) == []


def test_refresh_targets_are_uniform_inside_their_bucket():
    table = KBuckets(0b101)
    table.seen(contact(0b100))  # closest neighbour in bucket 0; with it, bucket 3 is the fourth target
    rng = random.Random(7)
    draws = [table.refresh_targets(rng, include_closest=True)[3] for _ in range(4000)]
    counts = {target: draws.count(target) for target in set(draws)}
    assert set(counts) == {0b101 ^ distance for distance in range(8, 16)}
    assert all(400 <= count <= 600 for count in counts.values())  # 500 expected each; 4.5 sigma apart
