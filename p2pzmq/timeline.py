"""What a lookup's requests did in time (docs/DESIGN.md §12): pure, no sockets, no clock of its own; and, under a
network model, the round trips a lookup the supervisor drives would take (:class:`Trips`).

The caller reads the network's clock (simulated seconds on a virtual clock, wall seconds since the network began on
the real one) and tells a :class:`Timeline` when each request went out and when it was answered or given up on; the
timeline turns that into the contract's words: every request with its ``sent`` and ``replied`` times (``lookup FROM
ID``) and the durations the ``latency`` summaries are made of (:func:`p2pzmq.netmodel.summarize`):

- a greedy walk asks one peer at a time, so its latency is the sum of its round trips (:attr:`Timeline.busy`);
- a Kademlia lookup asks up to α at once, so its latency is from its start until its last request settles
  (:attr:`Timeline.span`), and ``first_seen`` until a reply first names the target.
"""
from __future__ import annotations

import random
from typing import Iterable

#: Times in timelines are rounded to the nanosecond: the virtual clock's tick (docs/DESIGN.md §12).
DIGITS = 9

#: The fields of a command's result that are readings of the network's clock: what a result shows only when the
#: network's time is simulated (a model, the virtual clock or a fake one). On the wall clock with no model they
#: would be measurements of the machine, not of the network, and the same seed must give the same bytes.
TIMED = frozenset({"latency", "seconds", "started", "ended", "first_seen", "timeline"})


def untimed(result):
    """``result`` (dicts and lists, nested) without its :data:`TIMED` fields."""
    if isinstance(result, dict):
        return {key: untimed(value) for key, value in result.items() if key not in TIMED}
    if isinstance(result, list):
        return [untimed(value) for value in result]
    return result


class Timeline:
    """The requests of one lookup or walk that started at ``started`` (seconds on the network's clock)."""

    __slots__ = ("started", "ended", "first_seen", "_requests")

    def __init__(self, started: float) -> None:
        self.started = started
        self.ended = started
        #: When a reply first named the target (or the lookup's own start, if it knew it already); None: never.
        self.first_seen: float | None = None
        self._requests: list[list] = []

    def sent(self, to: int, at: float) -> int:
        """A request to peer ``to`` went out at ``at``; returns its number, for :meth:`settled`."""
        self._requests.append([to, at, None, False])
        return len(self._requests) - 1

    def settled(self, number: int, at: float, answered: bool, names: Iterable[int] = (),
                target: int | None = None) -> None:
        """Request ``number`` was answered at ``at`` (``answered``) or given up on then (a timeout, a dead peer).
        ``names``: the ids its reply named; if one is ``target``, the target was seen then."""
        request = self._requests[number]
        if at < request[1]:
            raise ValueError("a request cannot settle before it was sent")
        request[2], request[3] = at, answered
        self.ended = max(self.ended, at)
        if answered and self.first_seen is None and target is not None and target in names:
            self.first_seen = at

    def seen_at_start(self) -> None:
        """The target was known before any request: it was seen at the start."""
        if self.first_seen is None:
            self.first_seen = self.started

    @property
    def busy(self) -> float:
        """The sum of the round trips (settle minus send) of the settled requests: a walk's latency."""
        return sum(request[2] - request[1] for request in self._requests if request[2] is not None)

    @property
    def span(self) -> float:
        """From the start until the last request settled: a lookup's latency."""
        return self.ended - self.started

    def timeline(self) -> list[dict]:
        """Every request in the order sent: ``{"to": decimal id, "sent": s, "replied": s or None, "answered"}``,
        times in seconds on the network's clock; ``replied`` of a request not answered is when it was given up."""
        return [{"to": str(to), "sent": round(sent, DIGITS),
                 "replied": None if settled is None else round(settled, DIGITS), "answered": answered}
                for to, sent, settled, answered in self._requests]

    def describe(self, latency: float | None = None) -> dict:
        """The timeline as ``lookup`` shows it: ``started``, ``ended``, ``seconds`` (``latency``, default
        :attr:`span`), ``first_seen`` (seconds after the start, None if never) and ``timeline``, every request."""
        seconds = self.span if latency is None else latency
        return {"started": round(self.started, DIGITS), "ended": round(self.ended, DIGITS),
                "seconds": round(seconds, DIGITS),
                "first_seen": None if self.first_seen is None else round(self.first_seen - self.started, DIGITS),
                "timeline": self.timeline()}


class Trips:
    """Round trips between two peers as the network model would make them, for the lookups the supervisor drives
    (docs/DESIGN.md §12). The supervisor reads each visited peer through its own command socket, which the model
    does not delay, so the time such a lookup would take is the model's: a request from ``a`` to ``b`` and its
    reply, each drawn as a message is (three uniforms: loss, jitter, base delay) but from a stream of its own,
    ``random.Random("p2pzmq-lookup-trips:<seed>")``, so driving lookups never moves the network's own draws.
    ``blocked(a, b)``: the partition in force. A peer asking itself takes no time."""

    def __init__(self, model, seed, blocked=lambda a, b: False) -> None:
        self._model = model
        self._blocked = blocked
        self._stream = random.Random(f"p2pzmq-lookup-trips:{seed}")

    def trip(self, a: int, b: int) -> float | None:
        """Seconds from ``a``'s request to ``b``'s reply; None if either message is lost or the two are parted."""
        if a == b:
            return 0.0
        there, back = self._one_way(a, b), self._one_way(b, a)
        if there is None or back is None or self._blocked(a, b):
            return None
        return there + back

    def _one_way(self, sender: int, receiver: int) -> float | None:
        model, stream = self._model, self._stream
        lost, spread, unit = stream.random(), stream.random(), stream.random()
        if lost < model.loss:
            return None
        return model.base_delay(sender, receiver, unit) * (1 - model.jitter + 2 * model.jitter * spread)
