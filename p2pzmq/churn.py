"""Churn: the random schedule of peers joining and departing. Pure: no sockets, no clock.

Joins arrive as a Poisson process (``join_rate`` per second); every peer alive during churn, old or new, stays for an
exponentially distributed session (mean ``1 / leave_rate`` seconds) and then departs, crashing (killed, no goodbye)
with probability ``crash_fraction`` and otherwise leaving gracefully. The supervisor (``Network.churn``) turns the
schedule into ``add_peers``, ``kill_peers`` and ``leave_peers``.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random

from .errors import UsageError


@dataclasses.dataclass
class ChurnPlan:
    join_rate: float
    leave_rate: float
    crash_fraction: float
    duration: float
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.join_rate < 0 or self.leave_rate < 0:
            raise UsageError("churn rates must not be negative")
        if not 0 <= self.crash_fraction <= 1:
            raise UsageError("crash_fraction must be between 0 and 1")
        if not 0 < self.duration <= 7 * 86400:
            raise UsageError("churn duration must be positive and at most a week")
        self._rng = random.Random(self.seed)

    def join_gap(self) -> float:
        """Seconds until the next join."""
        return self._rng.expovariate(self.join_rate) if self.join_rate else math.inf

    def session(self) -> float:
        """Seconds a peer stays."""
        return self._rng.expovariate(self.leave_rate) if self.leave_rate else math.inf

    def fate(self) -> str:
        """How a peer departs: ``killed`` or ``left``."""
        return "killed" if self._rng.random() < self.crash_fraction else "left"


class Schedule:
    """A queue of timed events, each ``("join", None)`` or ``("depart", peer_id)``, in time order."""

    def __init__(self, plan: ChurnPlan, peer_ids: list[int], start: float) -> None:
        self.plan = plan
        self.end = start + plan.duration
        self._events: list = []
        self._order = itertools.count()
        for peer_id in peer_ids:
            self.arrived(peer_id, start)
        self._push(start + plan.join_gap(), "join", None)

    def _push(self, when: float, kind: str, peer_id: int | None) -> None:
        if when <= self.end:
            heapq.heappush(self._events, (when, next(self._order), kind, peer_id))

    def arrived(self, peer_id: int, now: float) -> None:
        """A peer joined at ``now``: schedule its departure."""
        self._push(now + self.plan.session(), "depart", peer_id)

    def next(self) -> tuple[float, str, int | None] | None:
        """The next event (time, kind, peer id), or None when nothing more happens before the end. Taking a join
        schedules the one after it."""
        if not self._events:
            return None
        when, _, kind, peer_id = heapq.heappop(self._events)
        if kind == "join":
            self._push(when + self.plan.join_gap(), "join", None)
        return when, kind, peer_id
