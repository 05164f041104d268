"""Background churn: turns the random schedule of :mod:`p2pzmq.churn` into ``add_peers``, ``kill_peers`` and
``leave_peers`` from one greenlet that the network owns (docs/DESIGN.md §8). Other commands keep
working meanwhile, each in between churn events. The greenlet is linked: if it dies of an error, that is logged once
and shows in ``stats`` (``churn.error``)."""
from __future__ import annotations

import logging
from typing import Callable

import gevent

from ..churn import ChurnPlan, Schedule
from ..clock import REAL, Clock
from ..errors import UsageError
from ..events import Events
from ..supervision import Group

log = logging.getLogger(__name__)


class ChurnDriver:
    """Runs one churn at a time; ``state`` says what the last one did so far."""

    def __init__(self, add: Callable[[int], dict], kill: Callable[..., dict], leave: Callable[..., dict],
                 peer_ids: Callable[[], list[int]], shutdown_timeout: float, events: Events,
                 clock: Clock = REAL) -> None:
        self._add, self._kill, self._leave, self._peer_ids = add, kill, leave, peer_ids
        self._clock = clock  # the schedule's times are the network's
        self._events = events
        self._group = Group(self._failed, shutdown_timeout)
        self._greenlet: gevent.Greenlet | None = None
        self.state: dict = {"joined": 0, "killed": 0, "left": 0, "running": False}

    def start(self, plan: ChurnPlan, wait: bool = False) -> dict:
        if self._greenlet is not None and not self._greenlet.dead:
            raise UsageError("churn is already running")
        self.state = {"joined": 0, "killed": 0, "left": 0, "running": True}
        self._greenlet = self._group.spawn("churn", self._run, plan)
        if wait:
            self._greenlet.join()
            return dict(self.state)
        return {"started": True, "duration": plan.duration}

    def _run(self, plan: ChurnPlan) -> None:
        self._tell("started", plan)
        try:
            clock = self._clock
            schedule = Schedule(plan, self._peer_ids(), clock.now())
            while (event := schedule.next()) is not None and clock.now() < schedule.end:
                when, kind, peer_id = event
                clock.sleep(max(0.0, when - clock.now()))
                if kind == "join":
                    schedule.arrived(int(self._add(1)["added"][0]), clock.now())
                    self.state["joined"] += 1
                    continue
                fate = plan.fate()
                try:
                    (self._kill if fate == "killed" else self._leave)(ids=[str(peer_id)])
                except UsageError:
                    continue  # a command killed it or made it leave in the meantime
                self.state[fate] += 1
            clock.sleep(max(0.0, schedule.end - clock.now()))
        finally:
            self.state["running"] = False
            self._tell("finished", plan)

    def _tell(self, phase: str, plan: ChurnPlan) -> None:
        """A ``churn`` event: the interval began, or ended (run out, stopped or failed), with what it did so far."""
        if self._events.listening:
            self._events.emit("churn", phase=phase, joined=self.state["joined"], killed=self.state["killed"],
                              left=self.state["left"], duration=plan.duration)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.state["error"] = repr(exc)
        log.error("churn stopped by an error: %s", self.state["error"])

    def stop(self) -> None:
        """Stop background churn now (if any)."""
        self._group.kill()
        self._greenlet = None
        self.state["running"] = False  # also when it was killed before it ever ran
