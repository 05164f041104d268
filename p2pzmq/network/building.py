"""Changing who is in the network and what they know: create, refresh, kill and leave (docs/DESIGN.md §4.8).

Ids and bootstrap choices come from the network's seeded stream in exactly the order one process would draw them,
so where a peer lives never changes the network. Every operation holds the command channel exclusively: a
background churn event never lands in the middle of one.
"""
from __future__ import annotations

import collections
import random
from typing import Callable

from .. import messages as m
from ..config import Config
from ..errors import UsageError
from ..events import Events
from ..ids import new_id
from .channel import CommandChannel
from .members import Members
from .tracking import Timings
from .workforce import Workforce

#: Peers are started this many at a time (sockets bound, one link message per worker), then joined one by one.
SPAWN_BATCH = 64
#: A restore gives tables to this many peers of one host per request (about 1.2 KB each on a worker's link, so a
#: request stays well under its message size) and reports its progress between them.
INSTALL_WAVE = 400


class Builder:
    def __init__(self, config: Config, rng: random.Random, members: Members, channel: CommandChannel,
                 workforce: Workforce, report: Callable[[str, int, int], None], seconds: Timings,
                 events: Events) -> None:
        self.config = config
        self._rng = rng
        self._members = members
        self._channel = channel
        self._workforce = workforce
        self._report = report
        self._seconds = seconds
        self._events = events
        self._joined = 0  # peers that ever joined: the index of the next one's ``joined`` event

    def create(self, n: int, hosts: list | None = None, concurrency: int | None = None) -> dict:
        """Add ``n`` peers, each bootstrapped from a uniformly random existing peer (the first one alone).

        Peers go round-robin to ``hosts`` (default: the live workers, else this process). A host without room for
        its share refuses before any peer is made. With ``concurrency`` (default: ``join_concurrency``) J > 1, up
        to J new peers join at once, each from a peer that existed before its batch, and tables depend on how the
        joins interleave: the result no longer matches the sequential build (nor the message-free oracle), though
        the same seed and J still draw the same ids and bootstrap choices.
        """
        if type(n) is not int or n < 1:
            raise UsageError(f"the number of peers must be a positive integer, not {n!r}")
        concurrency = concurrency_of(concurrency, self.config)
        hosts = self._workforce.builders(hosts)
        self._check_room(n, hosts)
        with self._channel.exclusive(), self._seconds.measure("create"):
            batches = self._draw(n, concurrency)
            plan = [item for batch in batches for item in batch]
            spawned: collections.deque = collections.deque()
            done = 0
            try:
                for batch in batches:
                    while len(spawned) < len(batch):  # start peers on their hosts SPAWN_BATCH at a time
                        offset = done + len(spawned)
                        spawned.extend(self._spawn(plan[offset:offset + SPAWN_BATCH], hosts, offset))
                    fresh = [spawned.popleft() for _ in batch]
                    joins = [(peer.contact, m.Join, (self._members.listed[bootstrap].contact,))
                             for peer, (_, bootstrap) in zip(fresh, batch) if bootstrap is not None]
                    self._members.add(fresh)  # listed first: commands go only to listed peers
                    self._channel.ask(joins, strict=True)
                    self._announce(fresh)
                    done += len(batch)
                    self._report("create", done, n)  # a safe point: cancel stops the build here
                    if self.config.pace:
                        self.config.clock.sleep(self.config.pace)
            except Exception:  # cancelled, or a join failed: the peers started ahead of their batch must not linger
                self._stop_unlisted(spawned)
                raise
        return {"n": len(self._members), "created": n}

    def restore(self, ids: list[int], tables: list[list[int]]) -> dict:
        """Start a peer for each of ``ids`` (newest first) with the table ``tables`` gives it (indexes into ``ids``,
        in its protocol's wire order) and no join: a snapshot restored (docs/DESIGN.md §17). Peers go round-robin
        to the hosts, oldest first, as ``create`` places them; they are started ``SPAWN_BATCH`` at a time, then
        given their tables ``INSTALL_WAVE`` at a time per host, then listed. If anything fails, every peer started
        is stopped again and none is listed."""
        n = len(ids)
        if len(self._members):
            raise UsageError("a snapshot is restored into an empty network only")
        hosts = self._workforce.builders(None)
        self._check_room(n, hosts)
        oldest_first = [(peer_id, None) for peer_id in reversed(ids)]
        spawned: list = []
        with self._channel.exclusive(), self._seconds.measure("create"):
            try:
                for offset in range(0, n, SPAWN_BATCH):
                    spawned.extend(self._spawn(oldest_first[offset:offset + SPAWN_BATCH], hosts, offset))
                    self._report("start", len(spawned), n)
                directory = [spawned[n - 1 - index].contact for index in range(n)]  # snapshot index -> contact
                shares: dict[int, list[tuple[int, list[int]]]] = collections.defaultdict(list)
                for position, (peer_id, _) in enumerate(oldest_first):
                    shares[position % len(hosts)].append((peer_id, tables[n - 1 - position]))
                installed = 0
                for slot, share in shares.items():
                    for start in range(0, len(share), INSTALL_WAVE):
                        wave = share[start:start + INSTALL_WAVE]
                        hosts[slot].install(directory, wave)
                        installed += len(wave)
                        self._report("install", installed, n)
            except Exception:
                self._stop_unlisted(spawned)
                raise
            self._members.add(spawned)
        self._joined += n  # restored peers did not join: no joined events, but later joins count after them
        return {"n": len(self._members), "restored": n}

    def _check_room(self, n: int, hosts: list) -> None:
        """Refuse, before any peer is made, if a host has no room for its round-robin share of ``n`` peers."""
        for slot, host in enumerate(hosts):
            share = len(range(slot, n, len(hosts)))
            if share > host.room():
                raise UsageError(f"{host.name} has room for {host.room()} more peers within its file descriptor "
                                 f"limit, not {share}; add workers")

    def _announce(self, fresh: list) -> None:
        """A ``joined`` event for each peer that has just joined (oldest first), numbered in the order of joining."""
        if self._events.listening:
            for peer in fresh:
                self._events.emit("joined", id=str(peer.id), host=getattr(peer, "host", self._workforce.local).name,
                                  index=self._joined)
                self._joined += 1
        else:
            self._joined += len(fresh)

    def _draw(self, n: int, concurrency: int) -> list[list[tuple[int, int | None]]]:
        """Join batches of (id, index of the bootstrap peer in the list as it will be when the batch joins)."""
        batches = []
        count = total = len(self._members)
        while count < total + n:
            size = 1 if count == 0 else min(concurrency, total + n - count)
            batches.append([(new_id(self._rng), self._rng.randrange(count) if count else None)
                            for _ in range(size)])
            count += size
        return batches

    def _spawn(self, batch: list[tuple[int, int | None]], hosts: list, offset: int) -> list:
        """Start the peers of ``batch`` on their hosts (peer ``offset + i`` on ``hosts[(offset + i) % len]``)."""
        shares: dict[int, list[int]] = collections.defaultdict(list)
        for position, (peer_id, _) in enumerate(batch, start=offset):
            shares[position % len(hosts)].append(peer_id)
        started = {slot: iter(hosts[slot].spawn(ids)) for slot, ids in shares.items()}
        if any(hosts[slot] is not self._workforce.local for slot in shares):
            self._channel.remote = True
        return [next(started[position % len(hosts)]) for position in range(offset, offset + len(batch))]

    def _stop_unlisted(self, peers) -> None:
        """Stop peers that were started but never listed (nor joined): a create that ended early leaves none."""
        by_host: dict = collections.defaultdict(list)
        for peer in peers:
            by_host[getattr(peer, "host", self._workforce.local)].append(peer.id)
        for host, ids in by_host.items():
            host.kill(ids)

    def refresh(self, concurrency: int | None = None) -> dict:
        """Refresh every peer in list order, one at a time, each waiting for the previous one's ``done``; with
        ``concurrency`` (default: ``join_concurrency``) J > 1, J at a time (faster over workers; the tables then
        depend on how the walks interleave)."""
        concurrency = concurrency_of(concurrency, self.config)
        with self._channel.exclusive(), self._seconds.measure("refresh"):
            listed = list(self._members.listed)
            refreshed = 0
            for start in range(0, len(listed), concurrency):
                batch = listed[start:start + concurrency]
                results = self._channel.ask([(peer.contact, m.Refresh, ()) for peer in batch], strict=True,
                                            window=concurrency)
                refreshed += sum(result.replied for result in results)
                self._report("refresh", start + len(batch), len(listed))  # a safe point: every walk is over
        return {"refreshed": refreshed}

    def kill(self, count: int | None = None, seed: int | None = None, ids: list | None = None) -> dict:
        """Crash peers: ``count`` of them drawn with ``seed``, or those in ``ids``. Their greenlets are killed and
        sockets closed, with no goodbye: whoever still lists them finds out by timing out."""
        with self._channel.exclusive():
            chosen = self._members.choose(count, seed, ids)
            self._remove(chosen, "killed")
        return {"killed": [str(peer.id) for peer in chosen], "n": len(self._members)}

    def leave(self, count: int | None = None, seed: int | None = None, ids: list | None = None) -> dict:
        """Peers leave gracefully: each tells the peers in its table (``Leave``, they remove it), then stops."""
        with self._channel.exclusive():
            chosen = self._members.choose(count, seed, ids)
            self._channel.ask([(peer.contact, m.Depart, ()) for peer in chosen])
            self._remove(chosen, "left")
        return {"left": [str(peer.id) for peer in chosen], "n": len(self._members)}

    def _remove(self, peers: list, state: str) -> None:
        """Stop ``peers`` where they live (one request per host holding some) and list them as departed."""
        self._stop_unlisted(peers)
        self._members.remove(peers, state)
        for peer in peers:
            self._channel.forget(peer.contact)
        if self._events.listening:
            for peer in peers:
                if state == "left":
                    self._events.emit("left", id=str(peer.id))
                else:
                    self._events.emit("crashed", id=str(peer.id), reason=state, error=None)


def concurrency_of(value: int | None, config: Config) -> int:
    """How many joins or refreshes run at once: ``value``, or the configured ``join_concurrency``."""
    if value is None:
        return config.join_concurrency
    if type(value) is not int or value < 1:
        raise UsageError(f"concurrency must be a positive integer, not {value!r}")
    return value
