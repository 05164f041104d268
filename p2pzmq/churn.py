"""Churn: the random schedule of peers joining and departing. Pure: no sockets, no clock.

Joins arrive as a Poisson process (``join_rate`` per second); every peer alive during churn, old or new, stays for a
session and then departs, crashing (killed, no goodbye) with probability ``crash_fraction`` and otherwise leaving
gracefully. Sessions are exponential with mean ``1 / leave_rate`` seconds, or follow the ``law`` studies of
churn use (docs/DESIGN.md §12): ``session=exp:MEAN``, ``weibull:SHAPE:SCALE`` or ``pareto:SHAPE:MIN``, with
``arrival=poisson:RATE``. The supervisor (``Network.churn``) turns the schedule into ``add_peers``,
``kill_peers`` and ``leave_peers``.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random

from . import netmodel
from .errors import UsageError
from .netmodel import SESSION_UNITS, parse_duration, parse_number

SESSION_LAWS = ("exp", "weibull", "pareto")


@dataclasses.dataclass(frozen=True)
class SessionLaw:
    """How long a peer stays: ``exp`` (mean ``scale`` seconds), ``weibull`` (``shape`` k, ``scale`` λ seconds) or
    ``pareto`` (``shape`` α, minimum ``scale`` seconds). Each draw is the inverse CDF of one uniform, so a
    session takes exactly one draw of the plan's stream whatever the law."""

    kind: str
    shape: float
    scale: float

    def draw(self, rng: random.Random) -> float:
        """One session time in seconds."""
        tail = 1.0 - rng.random()  # in (0, 1]: its logarithm and negative powers are finite
        if self.kind == "exp":
            return -self.scale * math.log(tail)
        if self.kind == "weibull":
            return self.scale * (-math.log(tail)) ** (1 / self.shape)
        return self.scale * tail ** (-1 / self.shape)

    @property
    def mean(self) -> float:
        """The closed-form mean (infinite for a Pareto law of shape at most 1)."""
        if self.kind == "exp":
            return self.scale
        if self.kind == "weibull":
            return self.scale * math.gamma(1 + 1 / self.shape)
        return self.shape * self.scale / (self.shape - 1) if self.shape > 1 else math.inf

    @property
    def median(self) -> float:
        if self.kind == "exp":
            return self.scale * math.log(2)
        if self.kind == "weibull":
            return self.scale * math.log(2) ** (1 / self.shape)
        return self.scale * 2 ** (1 / self.shape)

    @property
    def variance(self) -> float:
        """The closed-form variance (infinite for a Pareto law of shape at most 2)."""
        if self.kind == "exp":
            return self.scale ** 2
        if self.kind == "weibull":
            return self.scale ** 2 * (math.gamma(1 + 2 / self.shape) - math.gamma(1 + 1 / self.shape) ** 2)
        if self.shape <= 2:
            return math.inf
        return self.scale ** 2 * self.shape / ((self.shape - 1) ** 2 * (self.shape - 2))

    def density(self, x: float) -> float:
        """The probability density at ``x`` seconds."""
        if self.kind == "exp":
            return math.exp(-x / self.scale) / self.scale
        if self.kind == "weibull":
            k, scale = self.shape, self.scale
            return k / scale * (x / scale) ** (k - 1) * math.exp(-((x / scale) ** k))
        return self.shape * self.scale ** self.shape / x ** (self.shape + 1) if x >= self.scale else 0.0


def parse_session(text: str) -> SessionLaw:
    """``session=exp:MEAN|weibull:SHAPE:SCALE|pareto:SHAPE:MIN``: durations with a unit (``us`` … ``s``, ``m``,
    ``h``, ``d``; positive), shapes positive plain numbers."""
    kind, *fields = text.split(":")
    what = f"session={text:.60}"
    shapes = {"exp": "exp:MEAN", "weibull": "weibull:SHAPE:SCALE", "pareto": "pareto:SHAPE:MIN"}
    if kind not in shapes:
        raise UsageError(f"{what}: unknown law {kind!r:.20}; choose one of {', '.join(SESSION_LAWS)}")
    if len(fields) != shapes[kind].count(":"):
        raise UsageError(f"{what}: expected {shapes[kind]}")
    scale = parse_duration(fields[-1], what, SESSION_UNITS)
    if scale <= 0:
        raise UsageError(f"{what}: the {shapes[kind].rsplit(':', 1)[1]} must be positive")
    shape = 1.0
    if kind != "exp":
        shape = parse_number(fields[0], f"{what}: SHAPE", high=1000)
        if shape <= 0:
            raise UsageError(f"{what}: SHAPE must be positive")
    return SessionLaw(kind, shape, scale)


def parse_arrival(text: str) -> float:
    """``arrival=poisson:RATE``: joins per second, a non-negative plain number."""
    kind, _, rate = text.partition(":")
    if kind != "poisson" or not rate:
        raise UsageError(f"arrival={text:.60}: expected poisson:RATE (joins per second)")
    return parse_number(rate, f"arrival={text:.60}: RATE", high=1e6)


@dataclasses.dataclass
class ChurnPlan:
    join_rate: float
    leave_rate: float
    crash_fraction: float
    duration: float
    seed: int | None = None
    #: Sessions drawn from this law instead of the exponential of ``leave_rate``.
    law: SessionLaw | None = None

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
        if self.law is not None:
            return self.law.draw(self._rng)
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


@dataclasses.dataclass(frozen=True)
class Newcomer:
    """The ``index``-th peer to join during churn (from 0), standing in :func:`events` for the id it will have."""

    index: int


def events(plan: ChurnPlan, peer_ids: list[int], start: float = 0.0):
    """Every event of ``plan`` for peers ``peer_ids`` alive at ``start``, in time order, as ``(time, kind, peer,
    fate)``: a join gives the :class:`Newcomer` it brings (``fate`` None), a departure the peer and ``killed`` or
    ``left``. The events a supervisor would see if each join completed at once; the same plan (seed included) and
    peers give the same events."""
    schedule = Schedule(plan, peer_ids, start)
    joined = itertools.count()
    while (event := schedule.next()) is not None:
        when, kind, peer = event
        if kind == "join":
            peer = Newcomer(next(joined))
            schedule.arrived(peer, when)
            yield when, kind, peer, None
        else:
            yield when, kind, peer, plan.fate()


def plan_of(duration: float, join_rate: float | None = None, leave_rate: float | None = None,
            crash_fraction: float = 0.5, seed: int | None = None, session: str | None = None,
            arrival: str | None = None) -> ChurnPlan:
    """The plan a ``churn`` command describes: joins at ``join_rate`` per second or ``arrival=poisson:RATE``,
    sessions exponential of mean ``1 / leave_rate`` or ``session=LAW``; each given one way, not both."""
    if (join_rate is None) == (arrival is None):
        raise UsageError("give either join_rate=R or arrival=poisson:RATE")
    if (leave_rate is None) == (session is None):
        raise UsageError("give either leave_rate=R or session=exp:MEAN|weibull:SHAPE:SCALE|pareto:SHAPE:MIN")
    law = None if session is None else parse_session(session)
    return ChurnPlan(parse_arrival(arrival) if join_rate is None else join_rate,
                     0.0 if leave_rate is None else leave_rate, crash_fraction, duration, seed, law)


class Intervals:
    """What churn did in each interval of ``length`` seconds from ``start``: the series ``churn`` reports. Pure:
    the driver tells it what happens and when an interval is over (:meth:`close`)."""

    def __init__(self, start: float, length: float) -> None:
        if not length > 0:
            raise UsageError("interval must be positive")
        self.start = start
        self.length = length
        self.reports: list[dict] = []
        self._open()

    @property
    def due(self) -> float:
        """When the interval under way ends."""
        return self.start + (len(self.reports) + 1) * self.length

    def _open(self) -> None:
        self._joins = self._left = self._killed = self._found = 0
        self._latencies: list[float] = []
        self._lookups = 0

    def joined(self) -> None:
        self._joins += 1

    def departed(self, fate: str) -> None:
        """A departure: ``left`` (graceful) or ``killed`` (a crash)."""
        if fate == "left":
            self._left += 1
        else:
            self._killed += 1

    def looked_up(self, found: bool, seconds: float) -> None:
        """A lookup ended: whether it found its target, and its latency (counted only when it did)."""
        self._lookups += 1
        if found:
            self._found += 1
            self._latencies.append(seconds)

    def close(self, alive: int, end: float | None = None) -> dict:
        """End the interval under way (at ``end``, default when it was due; the last one may be shorter) with
        ``alive`` peers in the network, and begin the next. Returns its report: ``from`` and ``to`` (seconds since
        the start), ``alive``, ``joins``, ``departures`` with ``graceful`` and ``crashed``, ``lookups``, ``success``
        (the share that found their target; None without lookups) and ``latency`` (p50 and p99 in ms of the
        successful ones, None without)."""
        began = self.start + len(self.reports) * self.length
        end = self.due if end is None else end
        summary = netmodel.summarize(self._latencies)
        report = {"from": round(began - self.start, 9), "to": round(end - self.start, 9), "alive": alive,
                  "joins": self._joins, "departures": self._left + self._killed, "graceful": self._left,
                  "crashed": self._killed, "lookups": self._lookups,
                  "success": round(self._found / self._lookups, 6) if self._lookups else None,
                  "latency": {"unit": "ms", "p50": summary["p50"], "p99": summary["p99"]}}
        self.reports.append(report)
        self._open()
        return report
