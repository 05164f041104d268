"""Kademlia's routing table (Maymounkov & Mazières 2002, §2.2 and §4.1): pure data, no I/O, no clock.

One peer's table is 160 k-buckets: bucket ``i`` holds up to ``k`` contacts whose XOR distance to the owner has bit
length ``i + 1``, least-recently-seen first. The owner never stores itself. A full bucket prefers the contacts it
already has, as the paper does, because long-lived contacts are the likeliest to stay: a newcomer waits in the
bucket's small replacement cache while the bucket's least-recently-seen contact is marked *suspect*. The owner pings
its suspects when it next acts (the paper's "delay probing", §4.1): a suspect that answers stays, one that does not
is dropped for the newest cached contact. Nothing here sends the pings; :meth:`KBuckets.suspects` says whom to ask.

Only non-empty buckets and caches exist, each a dict (insertion order is recency order), so the thousands of tables
one process holds cost little, and moving a contact to the tail is O(1). A table has one owner; not thread-safe.
"""
from __future__ import annotations

import random
from typing import Collection, Iterable

from ...ids import ID_BITS
from ...contact import Contact

#: Contacts per bucket (the paper's k, its suggested value).
K = 20
#: Contacts each full bucket keeps in reserve. A replacement is needed only when a stored contact fails, and the far
#: buckets, the ones that fill, hear newcomers all the time, so a freed place is soon taken anyway: in the message-free
#: model (tests/kademlia_model.py, 300 peers, six rounds of 10 % crashes, 10 % joins and a refresh) caches of 0, 1, 3,
#: 5 and 20 gave the same lookup success (100 %) and mean table size (95.8-95.9). Three cover a few failures in one
#: bucket between newcomers, and the newest entries, the ones used, are the likeliest to be alive.
CACHE_SIZE = 3


def bucket_index(own_id: int, peer_id: int) -> int:
    """The bucket ``peer_id`` belongs to in ``own_id``'s table. Raises ``ValueError`` when they are equal."""
    distance = own_id ^ peer_id
    if not distance:
        raise ValueError("a peer has no bucket for itself")
    return distance.bit_length() - 1


class KBuckets:
    """The routing table of the peer ``own_id``: k-buckets with replacement caches and suspects."""

    __slots__ = ("own_id", "k", "cache_size", "_buckets", "_caches", "_suspects")

    def __init__(self, own_id: int, k: int = K, cache_size: int = CACHE_SIZE) -> None:
        if not 0 <= own_id < 1 << ID_BITS:
            raise ValueError(f"an id is an integer in [0, 2**{ID_BITS})")
        if k < 1 or cache_size < 0:
            raise ValueError("k must be positive and cache_size not negative")
        self.own_id = own_id
        self.k = k
        self.cache_size = cache_size
        self._buckets: dict[int, dict[int, Contact]] = {}  # index -> {id: contact}, least recently seen first
        self._caches: dict[int, dict[int, Contact]] = {}  # index -> {id: contact}, oldest first
        # index -> id of the bucket's one suspect, always its least recently seen: it stays the head until it is
        # seen (moved to the tail) or removed, and either clears the mark
        self._suspects: dict[int, int] = {}

    @classmethod
    def from_wire(cls, own_id: int, contacts: Iterable[Contact], k: int = K,
                  cache_size: int = CACHE_SIZE) -> KBuckets:
        """Rebuild the buckets of :meth:`contacts`, each in the same order (caches and suspects do not travel).

        Raises ``ValueError`` for an id out of range, the owner's id, a repeated id or a bucket over ``k``.
        """
        table = cls(own_id, k, cache_size)
        for contact in contacts:
            if not 0 <= contact.id < 1 << ID_BITS:
                raise ValueError(f"an id is an integer in [0, 2**{ID_BITS})")
            bucket = table._buckets.setdefault(bucket_index(own_id, contact.id), {})
            if contact.id in bucket:
                raise ValueError(f"duplicate id {contact.id} in a table")
            if len(bucket) == k:
                raise ValueError(f"more than k = {k} contacts in one bucket")
            bucket[contact.id] = contact
        return table

    # -- reading ----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))

    def __contains__(self, peer_id: int) -> bool:
        return self.get(peer_id) is not None

    def get(self, peer_id: int) -> Contact | None:
        """The stored contact with this id (replacement caches excluded), else None."""
        distance = self.own_id ^ peer_id
        bucket = self._buckets.get(distance.bit_length() - 1) if distance else None
        return None if bucket is None else bucket.get(peer_id)

    def contacts(self) -> list[Contact]:
        """Every stored contact in wire order: buckets by index, each least recently seen first."""
        return [contact for index in sorted(self._buckets) for contact in self._buckets[index].values()]

    def bucket(self, index: int) -> list[Contact]:
        """Bucket ``index``, least recently seen first."""
        return list(self._buckets.get(index, {}).values())

    def cache(self, index: int) -> list[Contact]:
        """Bucket ``index``'s replacement cache, oldest first."""
        return list(self._caches.get(index, {}).values())

    def suspects(self) -> list[Contact]:
        """The contacts to ping, at most one per bucket, by bucket index."""
        return [self._buckets[index][peer_id] for index, peer_id in sorted(self._suspects.items())]

    def closest(self, target: int, count: int, exclude: Collection[int] = ()) -> list[Contact]:
        """Up to ``count`` stored contacts nearest ``target`` by XOR distance, nearest first, none in ``exclude``.

        It runs for every request a peer answers, so it sorts only the contacts of the nearest buckets that hold
        ``count`` (and whatever ``exclude`` may remove), not the whole table. Bucket ``i`` holds exactly the
        distances to ``target`` whose bits above ``i`` are those of ``d = own_id ^ target`` and whose bit ``i`` is
        the opposite of ``d``'s: the buckets where ``d`` has a 1 are nearer, highest index first (a longer shared
        prefix), then come those where ``d`` has a 0, lowest index first.
        """
        buckets = self._buckets
        d = self.own_id ^ target
        need = count + len(exclude)
        pool: dict[int, Contact] = {}
        indexes = sorted(buckets)
        for index in reversed(indexes):
            if d >> index & 1:
                pool.update(buckets[index])
                if len(pool) >= need:
                    break
        else:
            for index in indexes:
                if not d >> index & 1:
                    pool.update(buckets[index])
                    if len(pool) >= need:
                        break
        nearest = sorted(pool, key=target.__xor__)
        if exclude:
            return [pool[peer_id] for peer_id in nearest if peer_id not in exclude][:count]
        return [pool[peer_id] for peer_id in nearest[:count]]

    def closest_neighbour_index(self) -> int:
        """The index of the lowest non-empty bucket (where the owner's nearest contact is). Raises ``LookupError``
        on an empty table."""
        if not self._buckets:
            raise LookupError("an empty table has no closest neighbour")
        return min(self._buckets)

    def refresh_targets(self, rng: random.Random, include_closest: bool = False) -> list[int]:
        """One id drawn uniformly inside each bucket farther than the closest neighbour's (a join's refresh, §2.3),
        or from the closest neighbour's bucket on with ``include_closest``, nearest bucket first: looking each up
        refreshes its bucket. An empty table has no neighbour and nothing to refresh: ``[]``."""
        if not self._buckets:
            return []
        first = min(self._buckets) + (0 if include_closest else 1)
        return [self.own_id ^ (1 << index | rng.getrandbits(index)) for index in range(first, ID_BITS)]

    # -- writing ----------------------------------------------------------------------------------------------

    def seen(self, contact: Contact) -> None:
        """A message (request or reply) came from ``contact``: it is alive and the most recently seen.

        Known: moved to its bucket's tail with its endpoints updated, and no longer suspect. Unknown with room:
        appended. Unknown in a full bucket: cached as the newest replacement (the oldest falls out when the cache
        is full), and the bucket's least-recently-seen contact becomes its suspect unless it already has one.
        """
        peer_id = contact.id
        distance = self.own_id ^ peer_id
        if not distance:
            return
        index = distance.bit_length() - 1
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = {}
        elif peer_id in bucket:
            del bucket[peer_id]
            bucket[peer_id] = contact
            if self._suspects.get(index) == peer_id:
                del self._suspects[index]
            return
        if len(bucket) < self.k:
            bucket[peer_id] = contact
            self._uncache(index, peer_id)
            return
        if self.cache_size:
            cache = self._caches.setdefault(index, {})
            cache.pop(peer_id, None)
            cache[peer_id] = contact
            if len(cache) > self.cache_size:
                del cache[next(iter(cache))]
        self._suspects.setdefault(index, next(iter(bucket)))

    def ping_answered(self, contact: Contact) -> None:
        """``contact`` answered a ping: like any reply, it is seen (moved to the tail, no longer suspect)."""
        self.seen(contact)

    def failed(self, peer_id: int) -> None:
        """``peer_id`` did not answer (a suspect's ping, or a request during a lookup): forget it, and fill its
        place with the newest contact of the bucket's replacement cache, if any."""
        distance = self.own_id ^ peer_id
        if not distance:
            return
        index = distance.bit_length() - 1
        bucket = self._buckets.get(index)
        was_stored = bucket is not None and peer_id in bucket
        self.remove(peer_id)
        cache = self._caches.get(index)
        if was_stored and cache:
            replacement = cache.pop(next(reversed(cache)))
            self._buckets.setdefault(index, {})[replacement.id] = replacement
            if not cache:
                del self._caches[index]

    def remove(self, peer_id: int) -> bool:
        """Forget ``peer_id`` from its bucket and its replacement cache, without refilling; True if it was in
        either."""
        distance = self.own_id ^ peer_id
        if not distance:
            return False
        index = distance.bit_length() - 1
        bucket = self._buckets.get(index)
        stored = bucket is not None and bucket.pop(peer_id, None) is not None
        if stored:
            if not bucket:
                del self._buckets[index]
            if self._suspects.get(index) == peer_id:
                del self._suspects[index]
        return self._uncache(index, peer_id) or stored

    def _uncache(self, index: int, peer_id: int) -> bool:
        cache = self._caches.get(index)
        if cache is None or cache.pop(peer_id, None) is None:
            return False
        if not cache:
            del self._caches[index]
        return True
