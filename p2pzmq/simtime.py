"""Simulated time: the engine that holds every peer message for its drawn delay, drops the lost and the partitioned,
and (on the virtual clock) moves time itself (docs/DESIGN.md §12). It stands on the pure model of
:mod:`p2pzmq.netmodel` and on the clock seam of :mod:`p2pzmq.clock`; no ZeroMQ here: the transport calls
:meth:`Engine.stamp` when a peer sends and :meth:`Engine.received` when a peer's socket takes a message from ZeroMQ,
and the engine hands a message back with the socket's ``_arrive`` once it is due.

Every message still crosses ZeroMQ between the two peers' own sockets. The engine decides *when* its receiver
handles it, and *whether* (loss, partitions): a header frame (sender id and the sender's sequence number) travels in
front of the message, and the receiving side draws the message's fate with its own id.

Two clocks:

- :class:`RealEngine` (``--clock real``): at receipt, the message is drawn and held for its delay on the wall clock
  (a loop timer), then handed over. Works wherever a peer lives (inproc, tcp, workers); not reproducible.
- :class:`VirtualEngine` (``--clock virtual``, one process): a discrete-event clock (a :class:`~p2pzmq.clock.Clock`
  whose timers and deliveries share one queue). Time stands still while anything can run; when nothing can (the hub
  is idle) *and* no message is in flight (inside libzmq, between a send and its receipt: each send takes a hold,
  each receipt releases it, and a closed peer releases what was on its way to it), the messages received at this
  instant are drawn in the order of (sender id, sequence number), and the earliest event runs: a timer, or one
  delivery, in :class:`~p2pzmq.netmodel.DeliveryOrder` (ticks, then sender id, then sequence number; timers before
  deliveries due at the same tick). Everything that event makes runnable runs before the next one, so the same seed
  gives the same events in the same order, whatever the transport's scheduling.
"""
from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import time
from typing import Any, Callable, Iterator

import gevent
import gevent.event
from gevent.hub import get_hub

from . import netmodel
from .clock import Clock, ScheduledTimer, Timer
from .config import Config
from .errors import ProtocolError, UsageError
from .supervision import Group, Hook

log = logging.getLogger(__name__)

_TIMER = 0  # a timer's heap entry: (ticks, _TIMER, seq, timer); before a delivery due at the same tick
_DELIVERY = 1  # a delivery's: (ticks, _DELIVERY, sender, seq, socket, frames)


def header(sender: int, seq: int) -> bytes:
    """The frame that travels in front of a modelled message: the sender's id and its sequence number."""
    return b"%d:%d" % (sender, seq)


def parse_header(frame: bytes) -> tuple[int, int]:
    """``(sender, seq)`` from a header frame; :class:`ProtocolError` if it is not one."""
    sender, colon, seq = frame.partition(b":")
    if not colon or not sender.isdigit() or not seq.isdigit() or len(frame) > 64:
        raise ProtocolError("not a simulated-time header", "header")
    return int(sender), int(seq)


def check_options(latency: netmodel.Latency, jitter: float, loss: float, clock: str | None, workers: bool) -> str:
    """The clock a network with these settings runs on (``"real"`` or ``"virtual"``), or a :class:`UsageError` for
    a combination that is not supported. A model (any latency but none, jitter or loss) defaults to the virtual clock
    in one process and to the real one over workers; a virtual clock over workers is refused (its conservative
    windows are not built)."""
    modelled = latency.kind != "none" or jitter != 0 or loss != 0
    chosen = clock or ("real" if workers or not modelled else "virtual")
    if chosen == "virtual" and workers:
        raise UsageError("--clock virtual: not available over workers (each process would keep its own time); "
                         "use --clock real")
    if chosen == "virtual" and loss:
        # a lost request is found out by its client's timeout, which still runs on the wall clock
        raise UsageError(f"--loss {loss:g}: needs --clock real until client timeouts run on the virtual clock")
    return chosen


def engine_for(config: Config, on_failure: Hook | None = None) -> "Engine | None":
    """The engine of a network with ``config``; None for today's network (no model, the wall clock): its messages
    then carry no header and pay nothing. ``on_failure(what, exc)`` hears of the virtual clock's driver dying of
    an error (else the log does)."""
    latency = netmodel.parse_latency(config.latency)
    modelled = latency.kind != "none" or config.jitter != 0 or config.loss != 0
    if config.network_clock == "virtual":
        return VirtualEngine(netmodel.Model(latency, config.jitter, config.loss, config.seed), on_failure)
    if modelled:
        return RealEngine(netmodel.Model(latency, config.jitter, config.loss, config.seed))
    return None


class Engine:
    """What both clocks share: the model, the partition, each sender's sequence numbers, which endpoint is which
    peer's, and the counts ``stats`` reports (``delivered``, ``lost``, ``partitioned``, ``undelivered``: due for a
    socket that had closed)."""

    virtual = False

    def __init__(self, model: netmodel.Model) -> None:
        self.model = model
        self.partition: netmodel.Partition | None = None
        self.counts = collections.Counter()
        self._seqs: dict[int, int] = {}
        self._peer_at: dict[str, int] = {}  # endpoint -> the id of the peer bound there (in this process)

    # -- what the transport calls ------------------------------------------------------------------------------

    def register(self, peer_id: int, endpoints: tuple[str, ...]) -> None:
        """A peer of this process is bound at ``endpoints``: messages sent there are held for it."""
        for endpoint in endpoints:
            self._peer_at[endpoint] = peer_id

    def unregister(self, peer_id: int, endpoints: tuple[str, ...]) -> None:
        for endpoint in endpoints:
            if self._peer_at.get(endpoint) == peer_id:
                del self._peer_at[endpoint]

    def peer_at(self, endpoint: str) -> int | None:
        return self._peer_at.get(endpoint)

    def stamp(self, sender: int) -> bytes:
        """The header of the next message ``sender`` sends."""
        seq = self._seqs.get(sender, 0)
        self._seqs[sender] = seq + 1
        return header(sender, seq)

    def sent(self, receiver: int | None) -> None:
        """A stamped message left for ``receiver`` (None: a peer of another process)."""

    def received(self, sock, receiver: int, frames: list[bytes]) -> int:
        """``sock`` of peer ``receiver`` took ``[route, header, body]`` from ZeroMQ; returns the sender's id (so a
        server knows whom its reply goes to). The message is handed back through ``sock._arrive`` when it is
        due, or dropped and counted."""
        raise NotImplementedError

    def closed(self, receiver: int) -> None:
        """The sockets of peer ``receiver`` are closing: nothing more will be taken for it."""

    @contextlib.contextmanager
    def wall_wait(self) -> Iterator[None]:
        """A peer waits in this block for something outside simulated time (a tcp connection coming up): on the
        virtual clock, time stands still meanwhile, as while a message is in flight."""
        yield

    # -- the model's verdict -----------------------------------------------------------------------------------

    def _fate(self, sender: int, receiver: int) -> float | None:
        """The delay of a message, or None if it is lost or cut by the partition (the draws are taken either way,
        three a message, so the stream's position does not depend on the outcome)."""
        delay = self.model.draw(sender, receiver)
        if self.partition is not None and self.partition.blocked(sender, receiver):
            self.counts["partitioned"] += 1
            return None
        if delay is None:
            self.counts["lost"] += 1
        return delay

    def now(self) -> float:
        raise NotImplementedError

    def summary(self) -> dict:
        """What ``stats`` reports under ``network``."""
        return {"clock": "virtual" if self.virtual else "real", "latency": self.model.latency.text,
                "jitter": self.model.jitter, "loss": self.model.loss, "now": round(self.now(), 9),
                "delivered": self.counts["delivered"], "lost": self.counts["lost"],
                "partitioned": self.counts["partitioned"], "undelivered": self.counts["undelivered"],
                "partition": self.partition.sizes() if self.partition is not None else None}

    def stop(self) -> None:
        """Stop whatever the engine runs (its driver)."""

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """A command runs in this block (only the virtual clock cares)."""
        yield

    @staticmethod
    def _hand(sock, frames: list[bytes], counts) -> None:
        if sock.closed:
            counts["undelivered"] += 1
            return
        counts["delivered"] += 1
        sock._arrive(frames)


class RealEngine(Engine):
    """Each message held for its delay on the wall clock (a loop timer), drawn at receipt."""

    def __init__(self, model: netmodel.Model) -> None:
        super().__init__(model)
        self._origin = time.monotonic()
        self._loop = get_hub().loop

    def now(self) -> float:
        return time.monotonic() - self._origin

    def received(self, sock, receiver: int, frames: list[bytes]) -> int:
        route, head, body = frames
        sender, _ = parse_header(head)
        delay = self._fate(sender, receiver)
        if delay is not None:
            timer = self._loop.timer(delay)
            timer.start(self._due, timer, sock, [route, body])
        return sender

    def _due(self, timer, sock, frames: list[bytes]) -> None:
        timer.close()
        self._hand(sock, frames, self.counts)


class _VirtualTimer(ScheduledTimer):
    """A timer of the virtual clock (the interface of gevent's loop timer that :mod:`p2pzmq.clock` uses)."""

    __slots__ = ()

    def _due(self, seconds: float) -> int:
        return self._clock._ticks + netmodel.ticks(seconds)

    def again(self, callback: Callable[..., Any], *args: Any) -> None:
        """Restart from now (as a loop timer's ``again``)."""
        self.stop()
        self.start(callback, *args)

    def stop(self) -> None:
        self.active = self.pending = False
        self._seq = -1


class VirtualEngine(Engine, Clock):
    """The discrete-event clock of one process (see the module docstring): a :class:`~p2pzmq.clock.Clock` whose
    time moves only when nothing can run and nothing is in flight. While :attr:`running` is False (no command is
    being carried out: the network waits for its user), only deliveries run, never timers: time then moves only as
    far as the messages already sent take it, and ``advance`` lets more pass.

    Its driver runs in the engine's :class:`~p2pzmq.supervision.Group`: if it dies of an error (time then stands
    still for good), ``on_failure`` (else the log) hears it once and :attr:`failures` records it; :meth:`stop`
    kills it."""

    virtual = True

    def __init__(self, model: netmodel.Model, on_failure: Hook | None = None) -> None:
        Engine.__init__(self, model)
        self._ticks = 0
        self._heap: list[tuple] = []
        self._timer_seqs = itertools.count()
        self._holds = 0
        self._in_flight: collections.Counter = collections.Counter()  # receiver id -> messages on their way
        self._just_received: list[tuple] = []  # (sender, seq, socket, frames) received at this instant, not drawn
        self._stirred = gevent.event.Event()  # set by a receipt or a new timer: wakes a waiting driver
        self._until: int | None = None  # advance: timers run up to this tick
        self.running = 0  # commands in progress: timers run while any is
        self._group = Group(on_failure)
        #: ``{"what", "error"}`` of the driver, if it died of an error.
        self.failures = self._group.failures
        self._driver = self._group.spawn("virtual clock's driver", self._drive)

    # -- the Clock seam ----------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._ticks / netmodel.TICKS

    def timer(self, after: float, repeat: float = 0.0, ref: bool = True) -> Timer:
        return _VirtualTimer(self, after, repeat)

    def _schedule(self, timer: _VirtualTimer, due: int) -> None:
        timer._seq = seq = next(self._timer_seqs)
        timer.active = True
        heapq.heappush(self._heap, (due, _TIMER, seq, timer))
        self._stirred.set()

    # -- messages ----------------------------------------------------------------------------------------------

    def sent(self, receiver: int | None) -> None:
        if receiver is not None:
            self._holds += 1
            self._in_flight[receiver] += 1

    def received(self, sock, receiver: int, frames: list[bytes]) -> int:
        route, head, body = frames
        sender, seq = parse_header(head)
        self._release(receiver, 1)
        self._just_received.append((sender, seq, receiver, sock, [route, body]))
        return sender

    def closed(self, receiver: int) -> None:
        self._release(receiver, self._in_flight.pop(receiver, 0))

    @contextlib.contextmanager
    def wall_wait(self) -> Iterator[None]:
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._stirred.set()

    def _release(self, receiver: int, count: int) -> None:
        if count:
            left = self._in_flight[receiver] - count
            if left:
                self._in_flight[receiver] = left
            else:
                del self._in_flight[receiver]
            self._holds -= count
        self._stirred.set()

    def _draw(self) -> None:
        """Draw the fate of what was received at this instant, in (sender, seq) order: receipt order over tcp is
        libzmq's, the order of sends is not at stake, the set of messages is."""
        batch, self._just_received = self._just_received, []
        batch.sort(key=lambda item: (item[0], item[1]))
        now = self._ticks
        for sender, seq, receiver, sock, frames in batch:
            delay = self._fate(sender, receiver)
            if delay is not None:
                heapq.heappush(self._heap, (now + netmodel.ticks(delay), _DELIVERY, sender, seq, sock, frames))

    # -- the driver --------------------------------------------------------------------------------------------

    def _quiet(self) -> None:
        """Return once no greenlet can run and no message is in flight."""
        while True:
            gevent.idle()
            if self._holds <= 0:
                return
            self._stirred.clear()
            self._stirred.wait()

    def _next(self) -> tuple | None:
        """Take the earliest event if it may run now (stale timer entries are dropped); None if it may not. A
        timer waits while no command runs and no advance reaches it, and so does everything due after it: time
        never passes a timer that has not fired."""
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[1] == _TIMER:
                if entry[3]._seq != entry[2]:
                    heapq.heappop(heap)
                    continue
                if not self.running and (self._until is None or entry[0] > self._until):
                    return None
            return heapq.heappop(heap)
        return None

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """A command runs in this block: timers may fire (see the class)."""
        self.running += 1
        self._stirred.set()
        try:
            yield
        finally:
            self.running -= 1

    def _drive(self) -> None:
        while True:
            self._quiet()
            if self._just_received:
                self._draw()
            entry = self._next()
            if entry is None:
                self._stirred.clear()
                self._stirred.wait()
                continue
            self._ticks = max(self._ticks, entry[0])
            if entry[1] == _TIMER:
                timer = entry[3]
                timer.active, timer.pending = False, True
                if timer.repeat > 0:
                    self._schedule(timer, entry[0] + netmodel.ticks(timer.repeat))
                get_hub().loop.run_callback(timer._run)  # a timer's callback runs in the hub (clock.py)
            else:
                self._hand(entry[4], entry[5], self.counts)

    def advance(self, seconds: float) -> float:
        """Let ``seconds`` simulated seconds pass (from a greenlet, not the hub): every timer and delivery due
        meanwhile runs, in order; returns the time reached."""
        if not seconds >= 0:
            raise UsageError(f"advance takes a non-negative number of seconds, not {seconds!r}")
        end = self._ticks + netmodel.ticks(seconds)
        self._until = end
        try:
            done = gevent.event.Event()
            self.timer(seconds).start(done.set)
            done.wait()
        finally:
            self._until = None
        self._ticks = max(self._ticks, end)
        return self.now()

    def stop(self) -> None:
        if self._driver is not None:
            self._group.kill()
            self._driver = None
