"""net_status arithmetic (docs/DESIGN.md §4.8): pure, no sockets.

Greedy routing is deterministic: from peer C towards target T the next hop is ``C's table.closest(T)``, so the route
from C is a fixed path and "T reached within ``max_hops`` forwarding steps" depends only on that path's length. Given
a snapshot of every table (fetched once per peer), :func:`route_steps` walks these paths locally and remembers, per
target, how far each peer on a walked path is from it; every later route that meets a known peer stops there. The
result is identical to driving each route hop by hop with ``find_peer`` messages (tests/test_status.py checks it on
the same network), at a fraction of the cost. Tables do not change during a status: ``find_peer`` adds nobody.

Sampling: K targets per peer drawn uniformly (with replacement) from a seeded stream estimate the connectivity; the
95 % confidence interval treats each peer's reach as a binomial proportion of its K draws.
"""
from __future__ import annotations

import collections
import math
import random
from typing import Iterable

from .contact import TableView

#: How net_status may drive its routes (see :meth:`p2pzmq.network.routing.Router.net_status`).
ROUTINGS = ("auto", "messages", "local")

#: z for a two-sided 95 % normal confidence interval.
Z95 = 1.959964


#: In :func:`route_steps` results: the route failed because its next hop was a peer without a table (dead).
DEAD = -1


def route_steps(tables: dict[int, TableView], pairs: Iterable[tuple[int, int]], max_hops: int) -> list[int | None]:
    """Forwarding steps of the greedy route from each ``(source, target)`` id pair; None where it fails (a dead end,
    a loop, or more than ``max_hops`` steps), or :data:`DEAD` where it fails because it must ask a peer that has no
    table (a dead peer) with budget left, as a message-driven route would. Results are in the order of ``pairs``."""
    pairs = list(pairs)
    by_target: dict[int, list[int]] = collections.defaultdict(list)
    for position, (_, target) in enumerate(pairs):
        by_target[target].append(position)
    fail = max_hops + 1
    results: list[int | None] = [None] * len(pairs)
    for target, positions in by_target.items():
        # peer id -> steps to target (capped at ``fail``), or -(k + 1) when a dead peer is k steps ahead
        memo: dict[int, int] = {target: 0}
        for position in positions:
            steps = _steps(tables, memo, pairs[position][0], fail)
            results[position] = DEAD if steps < 0 else steps if steps < fail else None
    return results


def _steps(tables: dict[int, TableView], memo: dict[int, int], source: int, fail: int) -> int:
    path: list[int] = []
    on_path: set[int] = set()
    current = source
    target = next(iter(memo))  # the first entry of every memo is its target
    while True:
        known = memo.get(current)
        if known is not None:
            break
        table = tables.get(current)
        if table is None:  # a dead peer: asking it fails, if the route still has budget to ask it
            known = -1
            break
        if current in on_path:  # a loop that never reaches the target
            known = fail
            break
        path.append(current)
        on_path.add(current)
        following = table.closest(target).id
        if following == current:  # the peer names itself: as close as the route gets
            known = fail
            break
        current = following
    for peer in reversed(path):
        if known < 0:
            ahead = -known  # the dead peer is this many steps ahead of ``peer``
            known = -(ahead + 1) if ahead < fail - 1 else fail
        else:
            known = min(fail, known + 1)
        memo[peer] = known
    return memo[source] if path else known


def sample_targets(rng: random.Random, ids: list[int], k: int) -> list[list[int]]:
    """For each peer (in ``ids`` order), ``k`` target ids drawn uniformly with replacement from ``ids``."""
    n = len(ids)
    return [[ids[rng.randrange(n)] for _ in range(k)] for _ in ids]


def estimate(reached: list[int], k: int) -> dict:
    """Connectivity estimated from each peer's ``reached`` count out of ``k`` sampled targets: the mean reach in
    percent and its 95 % confidence interval (normal approximation; each peer's proportion contributes its binomial
    variance, estimated with ``k - 1`` degrees of freedom)."""
    n = len(reached)
    proportions = [count / k for count in reached]
    mean = sum(proportions) / n
    variance = sum(p * (1 - p) for p in proportions) / (max(k - 1, 1) * n * n)
    half = Z95 * math.sqrt(variance)
    return {"estimate": round(100 * mean, 3),
            "ci95": [round(100 * max(0.0, mean - half), 3), round(100 * min(1.0, mean + half), 3)]}


def route_counts(tables: dict[int, TableView], ids: list[int], targets: list[list[int]],
                 max_hops: int) -> tuple[list[int], collections.Counter, int]:
    """Greedy routes from each peer of ``ids`` to each of its own ``targets``, on the snapshot ``tables``: how many
    targets each peer reaches, the histogram of forwarding steps of the routes that arrived, and how many routes
    failed at a dead peer (one absent from ``tables``). Every peer towards every peer (the exact status) goes
    through :func:`all_pairs`; a sample goes route by route."""
    if all(row is ids for row in targets):
        return all_pairs(tables, ids, max_hops)
    steps = route_steps(tables, ((source, target) for source, row in zip(ids, targets) for target in row), max_hops)
    reached, hop_counts, position = [], collections.Counter(), 0
    for row in targets:
        arrived = [step for step in steps[position:position + len(row)] if step is not None and step >= 0]
        position += len(row)
        reached.append(len(arrived))
        hop_counts.update(arrived)
    return reached, hop_counts, steps.count(DEAD)


def all_pairs(tables: dict[int, TableView], ids: list[int],
              max_hops: int) -> tuple[list[int], collections.Counter, int]:
    """:func:`route_counts` with every peer of ``ids`` as a target of every other, exactly as :func:`route_steps`
    would give it, a few times faster: each table answers all targets at once (``closest_runs``), and the routes
    towards one target are followed on arrays indexed by peer, each peer's distance computed once."""
    count = len(ids)
    index = {peer_id: position for position, peer_id in enumerate(ids)}
    order = sorted(range(count), key=ids.__getitem__)
    targets = [ids[position] for position in order]
    # following[k][p]: the peer that p's table names for targets[k] (its index; -1 for a peer absent: dead)
    following = [[-1] * count for _ in range(count)]
    for source, peer_id in enumerate(ids):
        for low, high, contact in _closest_runs(tables[peer_id], targets):
            nearest = index.get(contact.id, -1)
            for k in range(low, high):
                following[k][source] = nearest
    fail = max_hops + 1
    reached, hop_counts, dead = [0] * count, collections.Counter(), 0
    for k, target in enumerate(order):
        steps = _distances(following[k], target, count, fail)
        for source, value in enumerate(steps):
            if 0 <= value < fail:
                reached[source] += 1
                hop_counts[value] += 1
            elif value < 0:
                dead += 1
    return reached, hop_counts, dead


def _distances(following: list[int], target: int, count: int, fail: int) -> list[int]:
    """For each peer: forwarding steps to ``target`` (``fail`` and above: not within the budget), or ``-(k + 1)`` when
    the route meets a dead peer k steps ahead with budget left; the same rules as :func:`_steps`."""
    steps: list[int | None] = [None] * count
    steps[target] = 0
    for source in range(count):
        if steps[source] is not None:
            continue
        path, current = [], source
        while True:
            known = steps[current]
            if known is not None:
                break
            steps[current] = fail  # on the path: a route that comes back here loops
            path.append(current)
            ahead = following[current]
            if ahead < 0:
                known = -1
                break
            if ahead == current:
                known = fail
                break
            current = ahead
        for peer in reversed(path):
            if known < 0:
                known = -(1 - known) if -known < fail - 1 else fail
            else:
                known = known + 1 if known < fail else fail
            steps[peer] = known
    return steps


def _closest_runs(table, targets: list[int]):
    """``table.closest_runs(targets)``; a table without it answers target by target."""
    runs = getattr(table, "closest_runs", None)
    if runs is not None:
        return runs(targets)
    return [(index, index + 1, table.closest(target)) for index, target in enumerate(targets)]


def hop_summary(hop_counts: collections.Counter, lookups: int) -> dict:
    """Histogram of forwarding steps over successful lookups (keys are strings: JSON), their mean, success rate."""
    successes = sum(hop_counts.values())
    mean = sum(hops * count for hops, count in hop_counts.items()) / successes if successes else 0.0
    return {"histogram": {str(hops): hop_counts[hops] for hops in sorted(hop_counts)}, "mean": round(mean, 4),
            "success_rate": round(successes / lookups, 6) if lookups else 0.0}
