"""The network's one clock (docs/DESIGN.md §16): every timeout, timer, sleep, interval and deadline in the package
asks a :class:`Clock`, so that tests run on a :class:`FakeClock` and a virtual clock can stand behind the same seam.

A clock is two primitives, :meth:`Clock.now` and :meth:`Clock.timer`; everything else (:meth:`~Clock.sleep`,
:meth:`~Clock.timeout`, :meth:`~Clock.call_later`, :meth:`~Clock.wait`, :meth:`~Clock.wait_any`) is built on them
here, and a clock may override any of them with a faster equivalent (:data:`REAL` does). A timer is what
``gevent.get_hub().loop.timer`` returns, or anything that behaves like one: ``start(callback, *args)`` (the callback
runs in the hub, so it must not block), ``again(callback, *args)`` (due ``repeat`` seconds from now), ``stop()``,
``close()``, and ``active`` / ``pending`` (scheduled / fired but not yet run). No ZeroMQ here, and no greenlet but
:class:`FakeClock`'s autojump driver, in the clock's own :class:`~p2pzmq.supervision.Group` (its death is heard),
which its owner stops with :meth:`FakeClock.close`.
"""
from __future__ import annotations

import heapq
import itertools
import time
from typing import Any, Callable, Iterable, Protocol

import gevent
import gevent.event
from gevent.hub import Waiter, get_hub

from .supervision import Group, Hook

__all__ = ["Clock", "RealClock", "FakeClock", "REAL", "Timer", "Later", "ScheduledTimer"]

_EXPIRED = object()  # what a deadline's timer switches into a waiter: no caller's value can be it


class Timer(Protocol):
    """What a clock's :meth:`Clock.timer` returns: the part of gevent's loop timer the package uses."""

    active: bool
    pending: bool

    def start(self, callback: Callable[..., Any], *args: Any, update: bool | None = None) -> None: ...

    def again(self, callback: Callable[..., Any], *args: Any, update: bool = True) -> None:
        """libev's ``ev_timer_again``: a repeating timer is due ``repeat`` seconds from now; any other stops."""

    def stop(self) -> None: ...

    def close(self) -> None: ...


class Later:
    """A call scheduled by :meth:`Clock.call_later`; :meth:`cancel` it (harmless once it ran)."""

    __slots__ = ("_timer",)

    def __init__(self, timer: Timer) -> None:
        self._timer = timer

    @property
    def active(self) -> bool:
        """True until it runs or is cancelled."""
        return self._timer.active or self._timer.pending

    def cancel(self) -> None:
        self._timer.close()


class Timeout(gevent.Timeout):
    """A ``gevent.Timeout`` whose expiry is one of a clock's timers: the same object for ``except gevent.Timeout``,
    ``with``, ``start()``/``cancel()`` (reusable) and ``exception=False`` (a ``with`` block that ends quietly)."""

    def __init__(self, clock: Clock, seconds: float | None, exception: Any = None) -> None:
        BaseException.__init__(self)
        self.seconds = seconds
        self.exception = exception
        self._one_shot = False
        if seconds is None:  # never expires: the stand-in gevent itself uses
            self.timer = gevent.Timeout(None).timer
        else:
            self.timer = clock.timer(seconds)


class Clock:
    """Seconds since the clock's start, and the timers everything timed in the package is built on.

    A subclass provides :meth:`now` and :meth:`timer`; the rest follows from them.
    """

    def now(self) -> float:
        """Seconds since this clock started."""
        raise NotImplementedError

    def timer(self, after: float, repeat: float = 0.0, ref: bool = True) -> Timer:
        """A timer due ``after`` seconds from when it is started, then every ``repeat`` seconds if ``repeat`` > 0.
        ``ref=False``: it does not keep the real loop alive (no meaning on a fake clock)."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass; 0 (or less) only lets other greenlets run."""
        if seconds <= 0:
            gevent.sleep(0)
            return
        waiter = Waiter()
        timer = self.timer(seconds)
        timer.start(waiter.switch, None)
        try:
            waiter.get()
        finally:
            timer.close()

    def timeout(self, seconds: float | None, exception: Any = None) -> gevent.Timeout:
        """A not yet started ``gevent.Timeout`` of ``seconds`` (None: never) on this clock: raise ``exception``
        (or the timeout itself) in the greenlet that started it. Start and cancel it as often as needed: one object
        per caller costs less than one per wait."""
        return Timeout(self, seconds, exception)

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> Later:
        """Run ``fn(*args)`` in the hub ``seconds`` from now (it must not block: spawn if it has to)."""
        timer = self.timer(seconds)
        timer.start(fn, *args)
        return Later(timer)

    def wait(self, waiter: Waiter, timeout: float | None) -> bool:
        """Park until something switches to ``waiter`` (from the hub); False if ``timeout`` seconds passed first
        (at once if ``timeout`` <= 0). A fresh timer for each wait: a stale expiry can never reach a later one."""
        return self._get(waiter, timeout) is not _EXPIRED

    def wait_any(self, objects: Iterable[Any], timeout: float | None) -> Any:
        """The first of ``objects`` (events, greenlets: anything with ``ready()``, ``rawlink`` and ``unlink``) that
        is ready, or None if ``timeout`` seconds pass first."""
        objects = list(objects)
        for obj in objects:
            if obj.ready():
                return obj
        waiter = Waiter()
        switch = waiter.switch
        for obj in objects:
            obj.rawlink(switch)
        try:
            woke = self._get(waiter, timeout)
        finally:
            for obj in objects:
                obj.unlink(switch)
        return None if woke is _EXPIRED else woke

    def _get(self, waiter: Waiter, timeout: float | None) -> Any:
        """What is switched to ``waiter``, or :data:`_EXPIRED` once ``timeout`` seconds have passed."""
        if timeout is None:
            return waiter.get()
        if timeout <= 0:
            return _EXPIRED
        timer = self.timer(timeout)
        timer.start(waiter.switch, _EXPIRED, update=True)
        try:
            return waiter.get()
        finally:
            timer.close()


class RealClock(Clock):
    """The wall clock, through gevent's own loop timers: what the package did before it had a clock, at the same
    cost (``sleep`` and ``timeout`` are gevent's)."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    def timer(self, after: float, repeat: float = 0.0, ref: bool = True) -> Timer:
        return get_hub().loop.timer(after, repeat, ref=ref)

    sleep = staticmethod(gevent.sleep)

    def timeout(self, seconds: float | None, exception: Any = None) -> gevent.Timeout:
        return gevent.Timeout(seconds, exception)


#: The wall clock every network uses unless its configuration names another.
REAL = RealClock()


class ScheduledTimer:
    """A timer of a clock that keeps its own schedule (:class:`FakeClock`, simulated time's virtual clock): due at a
    point of that clock's time, fired through the hub like a loop timer. A subclass says what a point of its
    clock's time is (:meth:`_due`) and how it stops and restarts."""

    __slots__ = ("_clock", "after", "repeat", "active", "pending", "_callback", "_args", "_seq")

    def __init__(self, clock: Any, after: float, repeat: float) -> None:
        if after != after or repeat != repeat or repeat < 0:
            raise ValueError(f"a timer needs a number of seconds, not after={after!r} repeat={repeat!r}")
        self._clock = clock
        self.after = after
        self.repeat = repeat
        self.active = False
        self.pending = False
        self._callback: Callable[..., Any] | None = None
        self._args: tuple = ()
        self._seq = -1  # which schedule entry is current: an older one was stopped

    def _due(self, seconds: float) -> Any:
        """The point of the clock's time ``seconds`` from now."""
        raise NotImplementedError

    def start(self, callback: Callable[..., Any], *args: Any, update: bool | None = None) -> None:
        self._callback, self._args = callback, args
        self.pending = False
        self._clock._schedule(self, self._due(max(0.0, self.after)))

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()
        self._callback, self._args = None, ()

    def _run(self) -> None:
        """In the hub: the callback, unless the timer was stopped after it fired."""
        if self.pending:
            self.pending = False
            self._callback(*self._args)


class _FakeTimer(ScheduledTimer):
    """A timer of a :class:`FakeClock`."""

    __slots__ = ()

    def _due(self, seconds: float) -> float:
        return self._clock._now + seconds

    def again(self, callback: Callable[..., Any], *args: Any, update: bool = True) -> None:
        self._callback, self._args = callback, args
        self.pending = False
        if self.repeat > 0:
            self._clock._schedule(self, self._clock._now + self.repeat)
        else:
            self.stop()

    def stop(self) -> None:
        if self.active:
            self._clock._abandoned()
        self.active = False
        self.pending = False
        self._seq = -1

class FakeClock(Clock):
    """A clock for tests: its time starts at 0 and moves only when :meth:`advance` moves it or, with
    ``autojump=True``, when no greenlet can run (``gevent.idle()``): it then jumps to the next timer.

    Due timers fire in order of their due time, ties in the order they were started; each one's callback runs in
    the hub, and everything it made runnable runs, before time moves on. Autojump is exact only while every wake-up
    comes from this process (inproc sockets, fakes): a message still in libzmq's I/O thread looks like idleness.
    The driver runs in the clock's :class:`~p2pzmq.supervision.Group`: if it dies of an error, ``on_failure`` (else
    the log) hears it once and :attr:`failures` records it.
    """

    def __init__(self, *, autojump: bool = False, on_failure: Hook | None = None) -> None:
        self._now = 0.0
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seqs = itertools.count()
        self._stale = 0  # entries of the heap whose timer was stopped or restarted since
        self._started = gevent.event.Event()  # set when a timer is started: wakes an autojump driver without one
        self._group = Group(on_failure)
        #: ``{"what", "error"}`` of the driver, if it died of an error.
        self.failures = self._group.failures
        self._driver = self._group.spawn("fake clock's autojump driver", self._autojump) if autojump else None

    def now(self) -> float:
        return self._now

    def timer(self, after: float, repeat: float = 0.0, ref: bool = True) -> Timer:
        return _FakeTimer(self, after, repeat)

    def _schedule(self, timer: _FakeTimer, due: float) -> None:
        if timer.active:  # restarted: its entry in the heap is stale from now on
            self._abandoned()
        timer._seq = seq = next(self._seqs)
        timer.active = True
        heapq.heappush(self._heap, (due, seq, timer))
        if not self._started.is_set():
            self._started.set()

    def _abandoned(self) -> None:
        """One more heap entry is stale; once they are most of the heap, drop them (a peer puts its refresh off
        on every command: without this the heap would grow with every command of a long run)."""
        self._stale += 1
        if self._stale > 64 and self._stale * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2]._seq == entry[1]]
            heapq.heapify(self._heap)
            self._stale = 0

    def next_due(self) -> float | None:
        """When the next started timer is due, or None if none is."""
        heap = self._heap
        while heap and heap[0][2]._seq != heap[0][1]:  # stopped or restarted since: a stale entry
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    def _fire_next(self) -> None:
        """Move time to the next due timer and fire it through the hub (a repeating one is started again)."""
        due, _, timer = heapq.heappop(self._heap)
        self._now = max(self._now, due)
        timer.active = False
        timer.pending = True
        if timer.repeat > 0:
            self._schedule(timer, due + timer.repeat)
        get_hub().loop.run_callback(timer._run)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, from a greenlet (not the hub): fire every timer due meanwhile, in order, letting
        what each one wakes run before the next; then stand at the end."""
        if not seconds >= 0:
            raise ValueError(f"time moves forward only, not by {seconds!r} s")
        end = self._now + seconds
        while (due := self.next_due()) is not None and due <= end:
            self._fire_next()
            gevent.idle()
        self._now = max(self._now, end)

    def _autojump(self) -> None:
        while True:
            gevent.idle()
            if self.next_due() is None:
                self._started.clear()
                self._started.wait()
            else:
                self._fire_next()

    def close(self) -> None:
        """Stop the autojump driver, if there is one; time then moves only by :meth:`advance`."""
        if self._driver is not None:
            self._group.kill()
            self._driver = None
