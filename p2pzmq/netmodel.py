"""The network model of simulated time (docs/DESIGN.md §12): what a message's one-way delay is, whether it is lost,
which peers a partition separates, in which order deliveries due at the same time happen, and how latencies are
summarised. Pure: no sockets, no greenlets, no clock; the engine that holds messages for their delay stands on it.

The words are fixed by the command line's contract: ``--latency none|constant:D|uniform:LO:HI|
lognormal:MEDIAN:SIGMA|coords:BASE:SPAN|matrix:FILE`` (durations carry a unit: ``250us``, ``50ms``, ``1.5s``),
``--jitter F``, ``--loss P``, ``--clock virtual|real``. Every parser raises :class:`UsageError` with one line.

Randomness, and why it is split so: a peer's *placement* (its point of the unit square for ``coords``, its site for
``matrix``) is derived from the seed and the peer's id alone, never from the order peers are placed in, because
that order differs between a sequential build, concurrent joins, workers, ``add_peers`` and a restored snapshot,
while the same id must sit at the same place in all of them. A message's *draws* (loss, jitter, base delay) come
from the model's own ``random.Random`` stream, three uniforms a message whatever the model, in the order messages
are sent: on the virtual clock that order is itself fixed by the seed, so the draws are too.
"""
from __future__ import annotations

import bisect
import csv
import dataclasses
import hashlib
import math
import random
import re
from typing import Iterable, Sequence

from .errors import UsageError

#: Seconds in one of each duration unit. Latencies take ``us``, ``ms`` and ``s``; session times (churn) also
#: minutes, hours and days.
LATENCY_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
SESSION_UNITS = {**LATENCY_UNITS, "m": 60.0, "h": 3600.0, "d": 86400.0}
MODELS = ("none", "constant", "uniform", "lognormal", "coords", "matrix")
CLOCKS = ("virtual", "real")
#: A matrix file larger than this is refused before it is read whole (10,000 sites of 8-character delays).
MAX_MATRIX_BYTES = 1 << 30
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
_DURATION = re.compile(rf"({_NUMBER})([a-z]+)")
#: Nanoseconds in a second: the unit of :func:`delivery_key`'s time.
TICKS = 1_000_000_000


def parse_duration(text: str, what: str, units: dict = LATENCY_UNITS) -> float:
    """Seconds from a non-negative finite number with a unit of ``units`` (``250us``, ``50ms``, ``1.5s``); ``what``
    names the value in the one-line refusal."""
    match = _DURATION.fullmatch(text.strip())
    if not match or match.group(2) not in units:
        raise UsageError(f"{what}: {text!r:.40} is not a duration with a unit ({', '.join(units)}; e.g. 50ms)")
    value = float(match.group(1)) * units[match.group(2)]
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r:.40} is not a finite duration")
    return value


def parse_number(text: str, what: str, low: float = 0.0, high: float = math.inf, high_open: bool = False) -> float:
    """A plain finite number from ``low`` to ``high`` (``high`` itself excluded if ``high_open``)."""
    value = float(text) if re.fullmatch(_NUMBER, text.strip()) else math.nan
    if not (math.isfinite(value) and low <= value and (value < high if high_open else value <= high)):
        bound = f"below {high:g}" if high_open else (f"at most {high:g}" if math.isfinite(high) else "finite")
        raise UsageError(f"{what} must be a number of at least {low:g}, {bound}, not {text!r:.40}")
    return value


@dataclasses.dataclass(frozen=True)
class Latency:
    """A parsed ``--latency`` model: its ``kind`` (one of :data:`MODELS`), its durations in seconds (``low`` and
    ``high`` for ``constant`` (equal), ``uniform``; ``median`` and ``sigma`` for ``lognormal``; ``base`` and ``span``
    for ``coords``), and for ``matrix`` the ``sites`` and ``delays`` (seconds, ``delays[i][j]`` from site i to j)."""

    kind: str
    text: str = "none"
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    base: float = 0.0
    span: float = 0.0
    sites: tuple[str, ...] = ()
    delays: tuple[tuple[float, ...], ...] = ()


NONE = Latency("none")


def parse_latency(text: str) -> Latency:
    """A :class:`Latency` from the words of ``--latency``; a matrix file is read and checked now."""
    kind, _, rest = text.partition(":")
    what = f"--latency {text:.60}"
    if kind == "matrix":  # a path may hold colons: everything after the first is the file
        if not rest:
            raise UsageError(f"{what}: matrix needs a FILE (matrix:FILE)")
        sites, delays = read_matrix(rest)
        return Latency("matrix", text, sites=sites, delays=delays)
    fields = rest.split(":") if rest else []
    arity = {"none": 0, "constant": 1, "uniform": 2, "lognormal": 2, "coords": 2}
    if kind not in arity:
        raise UsageError(f"{what}: unknown model {kind!r:.20}; choose one of {', '.join(MODELS)}")
    if len(fields) != arity[kind]:
        shapes = {"none": "none", "constant": "constant:D", "uniform": "uniform:LO:HI",
                  "lognormal": "lognormal:MEDIAN:SIGMA", "coords": "coords:BASE:SPAN"}
        raise UsageError(f"{what}: expected {shapes[kind]}")
    if kind == "none":
        return NONE
    if kind == "constant":
        delay = parse_duration(fields[0], what)
        return Latency(kind, text, low=delay, high=delay)
    if kind == "uniform":
        low, high = parse_duration(fields[0], what), parse_duration(fields[1], what)
        if low > high:
            raise UsageError(f"{what}: LO must not exceed HI")
        return Latency(kind, text, low=low, high=high)
    if kind == "lognormal":
        median = parse_duration(fields[0], what)
        if median <= 0:
            raise UsageError(f"{what}: the median must be positive")
        return Latency(kind, text, median=median, sigma=parse_number(fields[1], f"{what}: SIGMA", high=10))
    return Latency(kind, text, base=parse_duration(fields[0], what), span=parse_duration(fields[1], what))


def read_matrix(path: str) -> tuple[tuple[str, ...], tuple[tuple[float, ...], ...]]:
    """The sites and one-way delays (seconds) of a matrix file: a CSV whose first row names the sites (distinct,
    not empty), then one row per site of as many non-negative finite delays in milliseconds. Anything else is
    refused with one line naming the file."""
    what = f"--latency matrix:{path:.60}"
    try:
        with open(path, encoding="utf-8", newline="") as source:
            text = source.read(MAX_MATRIX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: not a text (UTF-8) file") from None
    if len(text) > MAX_MATRIX_BYTES:
        raise UsageError(f"{what}: larger than {MAX_MATRIX_BYTES} bytes")
    try:
        rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise UsageError(f"{what}: not a CSV file: {exc}") from None
    if not rows:
        raise UsageError(f"{what}: empty (expected a row of site names, then a square matrix of delays in ms)")
    sites = tuple(cell.strip() for cell in rows[0])
    if any(not site for site in sites) or len(set(sites)) != len(sites):
        raise UsageError(f"{what}: the first row must name each site once, none empty")
    if len(rows) - 1 != len(sites) or any(len(row) != len(sites) for row in rows[1:]):
        raise UsageError(f"{what}: not square: {len(sites)} sites need {len(sites)} rows of {len(sites)} delays")
    delays = []
    for number, row in enumerate(rows[1:], 2):
        values = []
        for cell in row:
            value = float(cell) if re.fullmatch(_NUMBER, cell.strip()) else math.nan
            if not math.isfinite(value):
                raise UsageError(f"{what}: row {number}: {cell.strip()!r:.20} is not a non-negative number of ms")
            values.append(value / 1000)
        delays.append(tuple(values))
    return sites, tuple(delays)


def parse_jitter(text: str) -> float:
    """``--jitter F``: 0 ≤ F < 1."""
    return parse_number(text, "--jitter", 0.0, 1.0, high_open=True)


def parse_loss(text: str) -> float:
    """``--loss P``: 0 ≤ P < 1."""
    return parse_number(text, "--loss", 0.0, 1.0, high_open=True)


def parse_clock(text: str) -> str:
    """``--clock virtual|real``."""
    if text not in CLOCKS:
        raise UsageError(f"--clock: unknown clock {text!r:.20}; choose virtual or real")
    return text


def _unit(seed_text: str) -> float:
    """A uniform draw in [0, 1) that depends on ``seed_text`` alone (53 bits of its BLAKE2b digest)."""
    digest = hashlib.blake2b(seed_text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / (1 << 53)


class Model:
    """Delays and losses of one network: ``latency`` (a :class:`Latency`), ``jitter`` F and ``loss`` P, for
    ``seed``. :meth:`place` gives a peer's placement (from its id and the seed only); :meth:`draw` gives one
    message's fate from the model's own stream. ``seed`` None draws a salt, so such a run is not reproducible,
    as every unseeded run."""

    def __init__(self, latency: Latency, jitter: float = 0.0, loss: float = 0.0, seed: int | None = None) -> None:
        if not 0 <= jitter < 1 or not 0 <= loss < 1:
            raise UsageError("jitter and loss must be from 0 to below 1")
        self.latency, self.jitter, self.loss = latency, jitter, loss
        self._salt = str(seed) if seed is not None else f"unseeded-{random.SystemRandom().getrandbits(64)}"
        self._stream = random.Random(f"p2pzmq-messages:{self._salt}")
        self._places: dict[int, tuple[float, float] | int] = {}
        self._inverse_normal = None

    def place(self, peer_id: int) -> tuple[float, float] | int | None:
        """Where ``peer_id`` sits: a point ``(x, y)`` of the unit square (``coords``), a site index (``matrix``),
        or None (models without places). The same id and seed give the same place in every run, whatever the
        order or the number of peers placed before it."""
        kind = self.latency.kind
        if kind not in ("coords", "matrix"):
            return None
        place = self._places.get(peer_id)
        if place is None:
            key = f"p2pzmq-place:{self._salt}:{peer_id}"
            if kind == "coords":
                place = (_unit(key + ":x"), _unit(key + ":y"))
            else:
                place = int(_unit(key) * len(self.latency.sites))
            self._places[peer_id] = place
        return place

    def base_delay(self, sender: int, receiver: int, unit: float) -> float:
        """The delay in seconds from ``sender`` to ``receiver`` before jitter, ``unit`` being the message's uniform
        draw for it (used by ``uniform`` and ``lognormal``)."""
        latency = self.latency
        kind = latency.kind
        if kind in ("constant", "uniform"):
            return latency.low + unit * (latency.high - latency.low)
        if kind == "lognormal":  # inverse CDF of one uniform: one draw a message whatever sigma is
            if self._inverse_normal is None:
                import statistics  # with fractions and decimal: only when needed, not at every start of the CLI

                self._inverse_normal = statistics.NormalDist().inv_cdf
            return latency.median * math.exp(latency.sigma * self._inverse_normal(unit or 2 ** -53))
        if kind == "coords":
            (ax, ay), (bx, by) = self.place(sender), self.place(receiver)
            return latency.base + math.hypot(ax - bx, ay - by) * latency.span
        if kind == "matrix":
            return latency.delays[self.place(sender)][self.place(receiver)]
        return 0.0

    def draw(self, sender: int, receiver: int) -> float | None:
        """One message from ``sender`` to ``receiver``: its one-way delay in seconds, or None if it is lost. Takes
        exactly three draws of the model's stream (loss, jitter, base), so the stream's position after a message
        does not depend on the model or on the outcome."""
        lost, spread, unit = self._stream.random(), self._stream.random(), self._stream.random()
        if lost < self.loss:
            return None
        return self.base_delay(sender, receiver, unit) * (1 - self.jitter + 2 * self.jitter * spread)

    def getstate(self):
        """The message stream's state (for snapshots)."""
        return self._stream.getstate()

    def setstate(self, state) -> None:
        self._stream.setstate(state)


# -- partitions ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Partition:
    """Which group each peer is in; messages between two groups are lost. A peer the assignment does not name (one
    that joined after the partition) is in group 0."""

    groups: dict[int, int]

    def group(self, peer_id: int) -> int:
        return self.groups.get(peer_id, 0)

    def blocked(self, a: int, b: int) -> bool:
        """Whether a message between ``a`` and ``b`` is cut by the partition."""
        return self.group(a) != self.group(b)

    def sizes(self) -> list[int]:
        """Peers in each group, group 0 first."""
        counts = [0] * (max(self.groups.values(), default=0) + 1)
        for group in self.groups.values():
            counts[group] += 1
        return counts


def partition_groups(peer_ids: Iterable[int], k: int, seed: int | None = None) -> Partition:
    """``partition groups=K [seed=S]``: the peers dealt into ``k`` groups whose sizes differ by at most one, by a
    shuffle of their sorted ids seeded with ``seed``, so the split depends on the set of ids, not on their order."""
    ids = sorted(set(peer_ids))
    if type(k) is not int or not 2 <= k <= len(ids):
        raise UsageError(f"partition groups must be an integer from 2 to the {len(ids)} peers, not {k!r:.20}")
    random.Random(f"p2pzmq-partition:{seed}").shuffle(ids)
    return Partition({peer_id: index % k for index, peer_id in enumerate(ids)})


def partition_ids(peer_ids: Iterable[int], chosen: Iterable[int]) -> Partition:
    """``partition ids=ID,...``: the chosen peers (group 1) cut from the others (group 0). Ids no peer has, or a
    choice of none or of every peer, are refused."""
    every, chosen = set(peer_ids), set(chosen)
    unknown = sorted(chosen - every)
    if unknown:
        raise UsageError(f"partition: no peer has id {unknown[0]}" + (f" (and {len(unknown) - 1} more)"
                                                                      if len(unknown) > 1 else ""))
    if not chosen or chosen == every:
        raise UsageError("partition ids must name some peers but not all of them")
    return Partition({peer_id: int(peer_id in chosen) for peer_id in every})


# -- the order of deliveries -----------------------------------------------------------------------------------


def ticks(seconds: float) -> int:
    """Simulated seconds as whole nanoseconds, the clock's unit: float sums depend on the order they are added in,
    integer sums do not, so two deliveries due at the same time compare equal however their times were reached."""
    return round(seconds * TICKS)


class DeliveryOrder:
    """The order in which deliveries due at the same simulated time happen: by the key ``(time in ticks, sender id,
    sender's sequence number)``.

    Why: time first, because that is what the simulation means. Between equal times the sender's id decides, a
    value the seed fixes and the transport does not touch, so inproc, tcp and any scheduling order agree (libzmq's
    fair queuing would not). The sequence number counts each sender's messages in the order it sent them, so the
    key is unique and two messages from one sender due at once arrive in the order they were sent, as a ZeroMQ
    pipe keeps them. Messages from one sender with different delays may overtake each other: the model is a
    network of datagrams, not a stream.
    """

    def __init__(self) -> None:
        self._sent: dict[int, int] = {}

    def key(self, due: float, sender: int) -> tuple[int, int, int]:
        """The key of a message ``sender`` sends now, due at simulated second ``due``."""
        number = self._sent.get(sender, 0)
        self._sent[sender] = number + 1
        return ticks(due), sender, number


# -- latency summaries -----------------------------------------------------------------------------------------

#: The histogram's bucket edges in ms: 0, then 1, 2 and 5 of every decade from 10 µs up to 50,000 s; fixed edges,
#: so that histograms of different runs can be added and compared.
HISTOGRAM_EDGES_MS = (0.0, *(round(step * 10.0 ** exponent, 2) for exponent in range(-2, 8) for step in (1, 2, 5)))


def percentile(ordered: Sequence[float], p: int) -> float:
    """The nearest-rank ``p``-th percentile (``p`` a whole percent) of the sorted, non-empty ``ordered``: the
    smallest value that at least ``p`` % of the values do not exceed, always a value of the sample. The rank is
    computed in integers: ``0.9 * 10`` is 9.000000000000002 in floats, whose ceiling would be one rank too high."""
    return ordered[max(1, -(-p * len(ordered) // 100)) - 1]


def summarize(seconds: Iterable[float]) -> dict:
    """The ``latency`` of a result (docs/DESIGN.md §12): ``{"unit": "ms", "count", "mean", "p50", "p90", "p99",
    "max", "histogram"}`` of the durations ``seconds``, in milliseconds rounded to the microsecond; the histogram
    lists ``{"from", "to", "count"}`` for each bucket of :data:`HISTOGRAM_EDGES_MS` from the first non-empty to
    the last (a value on an edge counts in the bucket above it; the last bucket holds the maximum). An empty sample
    gives None for every figure and no buckets."""
    ordered = sorted(value * 1000 for value in seconds)
    if not all(math.isfinite(value) and value >= 0 for value in ordered):
        raise ValueError("latencies must be finite and not negative")
    summary = {"unit": "ms", "count": len(ordered)}
    if not ordered:
        return {**summary, "mean": None, "p50": None, "p90": None, "p99": None, "max": None, "histogram": []}
    summary["mean"] = round(math.fsum(ordered) / len(ordered), 3)
    for p in (50, 90, 99):
        summary[f"p{p}"] = round(percentile(ordered, p), 3)
    summary["max"] = round(ordered[-1], 3)
    summary["histogram"] = _histogram(ordered)
    return summary


def _histogram(ordered: list[float]) -> list[dict]:
    edges = list(HISTOGRAM_EDGES_MS)
    while edges[-1] <= ordered[-1]:  # beyond the table (over 50,000 s): keep doubling
        edges.append(edges[-1] * 2)
    buckets = []
    for low, high in zip(edges, edges[1:]):
        count = bisect.bisect_left(ordered, high) - bisect.bisect_left(ordered, low)
        if count or buckets:
            buckets.append({"from": low, "to": high, "count": count})
    while buckets and not buckets[-1]["count"]:
        buckets.pop()
    return buckets
