"""Background churn: turns the random schedule of :mod:`p2pzmq.churn` into ``add_peers``, ``kill_peers`` and
``leave_peers`` from one greenlet that the network owns (docs/DESIGN.md §8). Other commands keep
working meanwhile, each in between churn events. If it dies of an error, that shows in ``stats``
(``churn.error``) before ``running`` turns false, so whoever sees it stopped sees why, and its owner's hook logs it
once.

Time is the network's clock: on a virtual clock a churn of hours takes the CPU its joins, departures and lookups
take, and one seed repeats it."""
from __future__ import annotations

import logging
import math
import random
from typing import Callable, NamedTuple

import gevent

from ..churn import ChurnPlan, Intervals, Schedule
from ..errors import TransportError, UsageError
from ..events import Events
from ..supervision import Group

log = logging.getLogger(__name__)


class Workload(NamedTuple):
    """What churn does besides joins and departures: ``lookups`` per second between two random alive peers
    (a Poisson process), the length of the ``interval`` its series are reported by (None: the whole churn), and
    where to draw them (``png``, a path, or None)."""

    lookups: float = 0.0
    interval: float | None = None
    png: str | None = None


class ChurnDriver:
    """Runs one churn at a time; ``state`` says what the last one did so far (``intervals``: the report of each
    interval that has ended, :class:`~p2pzmq.churn.Intervals`). Time is the network's ``clock`` (``now``,
    ``sleep``); ``lookup(source, target)`` is one lookup's (found, seconds); ``draw(path, reports)`` writes the
    picture of the series and returns its path."""

    def __init__(self, add: Callable[[int], dict], kill: Callable[..., dict], leave: Callable[..., dict],
                 peer_ids: Callable[[], list[int]], shutdown_timeout: float, events: Events, clock,
                 lookup: Callable[[int, int], tuple[bool, float]], draw: Callable[[str, list], str]) -> None:
        self._add, self._kill, self._leave, self._peer_ids = add, kill, leave, peer_ids
        self._clock = clock
        self._lookup = lookup
        self._draw = draw
        self._events = events
        self._group = Group(self._failed, shutdown_timeout)
        self._greenlet: gevent.Greenlet | None = None
        self.state: dict = {"joined": 0, "killed": 0, "left": 0, "running": False}

    def start(self, plan: ChurnPlan, wait: bool = False, workload: Workload | None = None) -> dict:
        if self._greenlet is not None and not self._greenlet.dead:
            raise UsageError("churn is already running")
        self.state = {"joined": 0, "killed": 0, "left": 0, "lookups": 0, "running": True}
        self._greenlet = self._group.spawn("churn", self._run, plan, workload or Workload())
        if wait:
            self._greenlet.join()
            return dict(self.state)
        return {"started": True, "duration": plan.duration}

    def _run(self, plan: ChurnPlan, workload: Workload) -> None:
        clock = self._clock
        self._tell("started", plan)
        try:
            start = clock.now()
            schedule = Schedule(plan, self._peer_ids(), start)
            intervals = Intervals(start, workload.interval or plan.duration)
            self.state["intervals"] = intervals.reports
            # Lookups draw from a stream of their own, so the plan's schedule is churn.events' whatever they do.
            picker = random.Random(f"p2pzmq-churn-lookups:{plan.seed}")
            gap = (lambda: picker.expovariate(workload.lookups)) if workload.lookups else (lambda: math.inf)
            next_lookup = start + gap()
            event = schedule.next()
            while True:
                when = min(math.inf if event is None else event[0], next_lookup, intervals.due, schedule.end)
                clock.sleep(max(0.0, when - clock.now()))
                while intervals.due <= min(clock.now(), when) and intervals.due < schedule.end:
                    intervals.close(len(self._peer_ids()))
                if when >= schedule.end or clock.now() >= schedule.end:
                    break
                if when == next_lookup:
                    self._look_up(picker, intervals)
                    next_lookup += gap()
                elif event is not None and when == event[0]:
                    self._happen(plan, schedule, event, intervals)
                    event = schedule.next()
            intervals.close(len(self._peer_ids()), schedule.end)
            if workload.png is not None:
                self.state["png"] = self._draw(workload.png, intervals.reports)
        except Exception as exc:  # recorded before it stops running, so whoever sees it stopped sees why
            self.state["error"] = repr(exc)
            raise  # to the group's hook, which logs it
        finally:
            self.state["running"] = False
            self._tell("finished", plan)

    def _happen(self, plan: ChurnPlan, schedule: Schedule, event: tuple, intervals: Intervals) -> None:
        """A join or a departure of the schedule."""
        _, kind, peer_id = event
        if kind == "join":
            schedule.arrived(int(self._add(1)["added"][0]), self._clock.now())
            self.state["joined"] += 1
            intervals.joined()
            return
        fate = plan.fate()
        try:
            (self._kill if fate == "killed" else self._leave)(ids=[str(peer_id)])
        except UsageError:
            return  # a command killed it or made it leave in the meantime
        self.state[fate] += 1
        intervals.departed(fate)

    def _look_up(self, picker: random.Random, intervals: Intervals) -> None:
        """One lookup between two alive peers drawn by ``picker`` (none while fewer than two are alive)."""
        ids = sorted(self._peer_ids())
        if len(ids) < 2:
            return
        source, target = picker.sample(ids, 2)
        try:
            found, seconds = self._lookup(source, target)
        except UsageError:
            return  # a command made the source depart in the meantime
        except TransportError:  # the source itself did not answer: a lookup that failed
            found, seconds = False, 0.0
        intervals.looked_up(found, seconds)
        self.state["lookups"] += 1

    def _tell(self, phase: str, plan: ChurnPlan) -> None:
        """A ``churn`` event: the interval began, or ended (run out, stopped or failed), with what it did so far."""
        if self._events.listening:
            self._events.emit("churn", phase=phase, joined=self.state["joined"], killed=self.state["killed"],
                              left=self.state["left"], duration=plan.duration)

    def _failed(self, what: str, exc: BaseException) -> None:
        """The group's hook: the churn's greenlet died of ``exc`` (which ``_run`` recorded before it stopped
        running): log it, once."""
        self.state.setdefault("error", repr(exc))
        log.error("churn stopped by an error: %s", self.state["error"])

    def stop(self) -> None:
        """Stop background churn now (if any)."""
        self._group.kill()
        self._greenlet = None
        self.state["running"] = False  # also when it was killed before it ever ran
