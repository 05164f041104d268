"""Owners of background greenlets: each owner spawns them into its :class:`Group`, which sees every one that dies.

A greenlet that dies of an exception (a bug: ``GreenletExit``, the way an owner stops one, is no failure) is
recorded in :attr:`Group.failures` and reported to the group's one hook, once, from the failing greenlet; :meth:`Group.kill` stops what is
left, bounded in time. Modelled on locust's ``Group`` with ``link_exception`` on every greenlet, and trio's nursery
(no task outlives its owner). What a failure means is the owner's: a peer's runner takes its peer down, the
network's churn and heartbeat watch show in ``stats``, and the control server's and the worker's serving greenlets
stop their process with exit code 4 (:class:`~p2pzmq.errors.Crashed`, docs/DESIGN.md §5).

Pure of sockets: it only spawns, links and kills greenlets.
"""
from __future__ import annotations

import logging
from typing import Callable

import gevent

from .errors import Crashed

log = logging.getLogger(__name__)

#: ``hook(what, exception)``: told once of each greenlet of the group that died of an error.
Hook = Callable[[str, BaseException], None]


class Group:
    """The background greenlets of one owner. ``hook`` hears of each failure; without one, the failure is logged."""

    def __init__(self, hook: Hook | None = None, kill_timeout: float = 5.0) -> None:
        self._hook = hook
        self._kill_timeout = kill_timeout
        self._running: set[gevent.Greenlet] = set()
        #: ``{"what", "error"}`` of every greenlet that died of an error, in order.
        self.failures: list[dict] = []

    def spawn(self, what: str, function: Callable, *args) -> gevent.Greenlet:
        """Start ``function(*args)`` in a greenlet of this group; ``what`` names it in the failure and the log."""
        greenlet = gevent.Greenlet(self._run, what, function, args)
        self._running.add(greenlet)
        greenlet.start()
        return greenlet

    def _run(self, what: str, function: Callable, args: tuple):
        # The failure is taken in the greenlet itself, not by a link from the loop: gevent would print the
        # traceback on stderr (the command line promises one line), and an owner woken by the greenlet's own
        # ``finally`` (an Event it sets) sees the failure recorded already.
        try:
            return function(*args)
        except Exception as exc:  # a bug in the part: the owner decides what it means
            self.failures.append({"what": what, "error": repr(exc)})
            if self._hook is None:
                log.error("the %s stopped: %r", what, exc)
            else:
                self._hook(what, exc)
            return None
        finally:
            self._running.discard(gevent.getcurrent())

    def raise_failure(self) -> None:
        """Raise :class:`~p2pzmq.errors.Crashed` for the group's first failure, if it had one."""
        if self.failures:
            first = self.failures[0]
            raise Crashed(f"the {first['what']} broke: {first['error']}")

    def __len__(self) -> int:
        return len(self._running)

    def kill(self, greenlet: gevent.Greenlet | None = None) -> None:
        """Kill ``greenlet`` (one of the group's), or every greenlet of the group, and wait up to the group's
        ``kill_timeout`` for them to end (one that will not is left to the process's end). Idempotent; the calling
        greenlet, if it is one of them, is skipped: a greenlet that killed itself would never return."""
        current = gevent.getcurrent()
        victims = [greenlet] if greenlet is not None else list(self._running)
        victims = [victim for victim in victims if victim is not current and not victim.dead]
        if victims:
            gevent.killall(victims, block=False)
            gevent.joinall(victims, timeout=self._kill_timeout)
            self._running.difference_update(victim for victim in victims if victim.dead)  # (killed unstarted)
