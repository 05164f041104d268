"""The supervisor's façade: :class:`Network`, one method per control command (docs/DESIGN.md §8).

Every method is a short delegation to the unit that does the work: :mod:`.building` (create, refresh, kill,
leave), :mod:`.routing` (net_status, route_sample, lookup), :mod:`.exports` (tables, snapshots, files), and
:mod:`.churning`; the command channel (:mod:`.channel`) is the only way to the peers, :mod:`.members` the only
record of who is in. The methods return data; callers format it.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import random
from typing import Callable, Iterator

from .. import messages as m
from .. import netmodel, plot, simtime, timeline
from ..churn import plan_of
from ..clock import REAL, Clock
from ..commands import COMMANDS
from ..config import Config
from ..errors import ClosedError, UsageError
from ..events import Events
from ..hosting import LocalHost
from ..resources import process_usage
from ..rpc import Counters
from ..snapshot import Snapshot
from ..endpoints import Endpoints
from ..transport import Context
from .building import Builder
from .channel import CommandChannel
from ..timeline import Trips
from .churning import ChurnDriver, Workload
from .exports import Exporter
from .kit import Kit
from .lapses import TimeLapse
from .members import Members
from .offload import Offloader
from .routing import Router
from .tracking import Timings, Tracker
from .workforce import Workforce

log = logging.getLogger(__name__)

_COOKIE_STREAM = 0x9E3779B97F4A7C15  # cookies come from their own stream, so ids and bootstraps never depend on them
_STATUS_STREAM = 0x5DEECE66D  # so do net_status's sampled targets

#: ``progress(phase, done, total)``: told how far a long operation (create, refresh, net_status, time_lapse) is.
Progress = Callable[[str, int, int], None]


def _clock_of(config: Config, engine) -> Clock:
    """The network's clock: the virtual clock of simulated time, else ``Config.clock`` when the configuration has
    one, else the wall clock."""
    if isinstance(engine, Clock):
        return engine
    return getattr(config, "clock", None) or REAL


def _forward(unit: str, function: Callable, operation: str | None = None, timed: bool = False) -> Callable:
    """A Network method that is ``function`` of the unit in attribute ``unit`` (a part of the Python API that is no
    control command: those are bound from their declaration, :meth:`p2pzmq.commands.Command.bind`), with the
    function's docstring; ``operation``: it runs as the long operation of that name (:meth:`Network.operation`);
    ``timed``: its result holds readings of the clock, shown as :meth:`Network.shown` says."""
    @functools.wraps(function)
    def forward(self, *args, **kwargs):
        with self.operation(operation) if operation is not None else contextlib.nullcontext():
            result = function(getattr(self, unit), *args, **kwargs)
        return self.shown(result) if timed else result
    return forward


class Network:
    """A simulated network driven from this process. Use as a context manager, or call :meth:`die` when done.

    ``Network(config)`` builds an empty network from a :class:`Config` (add peers with :meth:`create`);
    ``Network(n, seed=1, metric="xor")`` takes the config's fields as keywords and creates ``n`` peers at once
    (both forms take keywords that override the config). ``keys`` (:class:`~p2pzmq.security.Keys`, read from their
    files by the caller): the worker link speaks CURVE with them. Every control command has a method of the same name
    (``peers``: :meth:`peer_list`) returning the same data, made from the command's declaration in
    :data:`p2pzmq.commands.COMMANDS`: it checks its arguments as the control socket does, then calls the unit that
    runs it (``UNITS``) or the method of that name written here.
    """

    #: The units commands run on: the attribute holding each, and its class.
    UNITS = {"_builder": Builder, "_router": Router, "_exporter": Exporter, "_lapses": TimeLapse}

    def __init__(self, config: Config | int | None = None, *, progress: Progress | None = None, keys=None,
                 **options) -> None:
        n = None
        if isinstance(config, int) and not isinstance(config, bool):
            n, config = config, None
        config = Config(**options) if config is None else config.replace(**options) if options else config
        self.config = config
        seed = config.seed
        cookies = random.Random(None if seed is None else seed ^ _COOKIE_STREAM)
        self.counters = Counters()
        #: Background greenlets of the network that died of an error (heartbeat watch, the virtual clock's
        #: driver): what, and why.
        self.failures: list[dict] = []
        #: Simulated time (docs/DESIGN.md §12): the engine every local peer's messages go through; None for
        #: today's network (no model, the wall clock).
        self.engine = simtime.engine_for(config, self._background_failed)
        #: The network's event stream (docs/EVENTS.md): subscribe to watch it; nobody subscribed costs nothing.
        self.events = Events(config.clock.now if self.engine is None else self.engine.now)
        #: Called as long operations advance (see :data:`Progress`); None: nobody is watching.
        self.on_progress = progress
        self._tracker = Tracker(self._notify)
        self.seconds = Timings(create=0.0, refresh=0.0, net_status=0.0)
        self.closed = False
        #: Sockets that were still open when the context was terminated (owners should have closed them all).
        self.sockets_left_open = 0
        codec = m.Codec(config.max_message_bytes)
        self._ctx = Context(max_message_bytes=config.max_message_bytes, tcp_backlog=config.tcp_backlog,
                            clock=config.clock)
        self.members = Members()
        self.local = LocalHost(ctx=self._ctx, endpoints=Endpoints(config.transport, self._ctx.namespace, config.host),
                               config=config, cookies=cookies, codec=codec, counters=self.counters,
                               engine=self.engine)
        self.local.on_crash = self._peer_crashed
        self._workforce = Workforce(self._ctx, config, self.local, self.counters, keys,
                                    on_failure=self._background_failed)
        #: The network's clock (docs/DESIGN.md §12); measurements are made of its readings, ``now()``.
        self.clock = _clock_of(config, self.engine)
        self.now = (self.engine or self.clock).now  # the engine's: seconds since the network began
        #: Whether the network's time is simulated (a model, or a clock other than the wall clock): only then do
        #: results show readings of it (:meth:`shown`).
        self.timed = self.engine is not None or self.clock is not REAL
        self._channel = CommandChannel(self._ctx, config, codec, self.counters, cookies, self.members, self.now)
        if self.engine is not None:
            engine = self.engine
            self._channel.trips = Trips(engine.model, seed, lambda a, b: engine.partition is not None
                                        and engine.partition.blocked(a, b))
        # a thread's work is no simulated time: the virtual clock stands still while a command waits for it
        self._offload = Offloader(config.shutdown_timeout, None if self.engine is None else self.engine.wall_wait)
        ids = random.Random(seed)
        status_rng = random.Random(None if seed is None else seed ^ _STATUS_STREAM)
        #: Every random stream of the supervisor, by the name a snapshot saves its state under.
        self._streams = {"ids": ids, "cookies": cookies, "status": status_rng}
        kit = Kit(config, self.members, self._channel, self._workforce, self._offload, self._tracker.report,
                  self.seconds, self.events)
        self._builder = Builder(kit, ids)
        self._router = Router(kit, status_rng)
        self._exporter = Exporter(kit, self._router.lookup, self._saved_streams)
        self._lapses = TimeLapse(kit, self.refresh_peers, self.net_status, self._exporter.output_graph)
        # Churn's own joins are no operation of a caller's: cancel never stops them (stop_churn does).
        self._churn = ChurnDriver(self._add_peers, self.kill_peers, self.leave_peers,
                                  lambda: [peer.id for peer in self.members.listed], config.shutdown_timeout,
                                  self.events, self.clock, self._router.timed_lookup,
                                  lambda path, reports: self._offload(plot.draw_churn, path, reports))
        if n is not None:
            try:
                self.create(n)
            except BaseException:
                self.die()
                raise

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.die()

    @property
    def peers(self) -> list:
        """The peers in the network, newest first (killed and departed ones are not)."""
        return self.members.listed

    @property
    def workers(self) -> list:
        return self._workforce.workers

    @property
    def attached(self):
        """A gevent Event set whenever a worker is taken on (see :func:`p2pzmq.rendezvous.await_workers`)."""
        return self._workforce.attached

    @property
    def churned(self) -> dict:
        """What the last churn did so far."""
        return self._churn.state

    def shown(self, result: dict) -> dict:
        """``result`` as a command shows it: with its readings of the network's clock (``seconds``, ``latency``,
        timelines: :data:`p2pzmq.timeline.TIMED`) where the network's time is simulated, without them on the wall
        clock with no model, where they would measure the machine and differ from run to run of one seed."""
        return result if self.timed else timeline.untimed(result)

    # -- building -------------------------------------------------------------------------------------------------

    create = _forward("_builder", Builder.create, operation="create", timed=True)

    def add_peers(self, n: int) -> dict:
        """Each bootstrapped as in ``create``; the result lists the ids ``added``."""
        return self._add_peers(n)

    def _add_peers(self, n: int) -> dict:
        seconds = self._builder.create(n)["seconds"]
        return {"added": [str(peer.id) for peer in self.members.listed[:n]], "n": len(self.members),
                "seconds": seconds}

    def restore(self, saved: Snapshot) -> dict:
        """Restore the network ``saved`` into this empty one, without a single join: its peers, with their ids and
        tables, spread over the workers as ``create`` spreads them, and the state of every random stream, so that
        it goes on as the saved one would have (docs/DESIGN.md §17). The network's config must be the snapshot's
        protocol, settings and seed. If anything fails, no peer is left started."""
        self._no_simulated_time()
        expected = {"protocol": saved.protocol, "seed": saved.seed, "metric": saved.metric, **saved.settings}
        differing = [name for name, value in expected.items() if getattr(self.config, name, None) != value]
        if differing:
            raise UsageError(f"the snapshot was saved with other settings ({', '.join(differing)})")
        unknown = set(saved.streams) - set(self._streams)
        if unknown:
            raise UsageError(f"the snapshot has random streams this network does not ({', '.join(sorted(unknown))})")
        with self.operation("restore"):
            result = self._builder.restore(saved.ids, saved.tables)
        for name, state in saved.streams.items():  # after the peers: starting them drew their secrets as cookies
            self._streams[name].setstate(state)
        return result

    def _saved_streams(self) -> dict:
        """The state of every random stream, for a snapshot (refused for a network of simulated time)."""
        self._no_simulated_time()
        return {name: stream.getstate() for name, stream in self._streams.items()}

    def _no_simulated_time(self) -> None:
        """Snapshots hold no simulated time yet (the clock, messages in flight, the model's stream): refuse."""
        if self.engine is not None:
            raise UsageError("a network of simulated time (a latency, jitter or loss model, or the virtual clock) "
                             "cannot be saved or restored yet")

    def attach(self, endpoint: str, peers: int) -> dict:
        """The result's ``index`` numbers the workers 0, 1, ... in the order they were taken on."""
        worker = self._workforce.attach(endpoint)
        index = self.workers.index(worker)
        if peers:
            self.create(peers, [worker])
        return {"worker": worker.describe(self.members.count_on(worker)), "index": index, "n": len(self.members)}

    def churn(self, join_rate: float | None, leave_rate: float | None, duration: float, crash_fraction: float,
              seed: int | None, wait: bool, session: str | None, arrival: str | None, lookups: float,
              interval: float | None, png: str | None) -> dict:
        """Churn runs in the background (see :mod:`p2pzmq.churn`) on the network's clock; other commands keep
        working meanwhile, each one in between churn events. With ``wait``, it returns only when it is over, with
        the report of every ``interval`` (see :class:`~p2pzmq.churn.Intervals`); ``png`` draws them."""
        plan = plan_of(duration, join_rate, leave_rate, crash_fraction, seed, session, arrival)
        if self.closed:
            raise UsageError("the network is stopped")
        with self.engine_busy():  # waiting for it is a command running: on the virtual clock its timers fire
            return self._churn.start(plan, wait, Workload(lookups, interval, png))

    def stop_churn(self) -> None:
        """Stop background churn now (if any)."""
        self._churn.stop()

    # -- simulated time -------------------------------------------------------------------------------------------

    def partition(self, groups: int | None, seed: int | None, ids: list | None) -> dict:
        """From now on every message between two groups is lost (docs/DESIGN.md §12): ``groups=K`` deals the peers
        into K groups of sizes within one (a shuffle of the sorted ids seeded with ``seed``), ``ids`` cuts those
        peers from the rest. An id no peer has: refused, the network unchanged. Returns the groups' sizes."""
        engine = self._engine_for("partition")
        every = [peer.id for peer in self.members.listed]
        if ids is not None:
            cut = netmodel.partition_ids(every, [int(text) for text in ids])
        else:
            cut = netmodel.partition_groups(every, groups, seed)
        engine.partition = cut
        if self.events.listening:
            members = [[] for _ in cut.sizes()]
            for peer_id in sorted(cut.groups):
                members[cut.groups[peer_id]].append(str(peer_id))
            self.events.emit("partition", phase="cut", groups=members)
        return {"groups": cut.sizes(), "now": round(engine.now(), 9)}

    def heal(self) -> dict:
        """End the partition: every message is delivered again (as the model says)."""
        engine = self._engine_for("heal")
        healed, engine.partition = engine.partition is not None, None
        if healed and self.events.listening:
            self.events.emit("partition", phase="healed", groups=[])
        return {"healed": healed, "now": round(engine.now(), 9)}

    def advance(self, seconds: float) -> dict:
        """Let ``seconds`` of the network's time pass (self-refreshes, churn, timers and deliveries due meanwhile
        run); on the real clock, that is a wait on the wall clock. Returns the time reached."""
        if self.engine is not None and self.engine.virtual:
            return {"now": round(self.engine.advance(seconds), 9)}
        self.clock.sleep(seconds)
        return {"now": round(self.engine.now(), 9)} if self.engine is not None else {}

    def _engine_for(self, command: str):
        if self.engine is None:
            raise UsageError(f"{command}: this network has no network model (give --latency, --jitter, --loss or "
                             f"--clock virtual)")
        if self.workers:
            raise UsageError(f"{command}: partitions over workers are not available in this version")
        return self.engine

    # -- reading --------------------------------------------------------------------------------------------------

    def ping(self) -> dict:
        """With workers, also each worker and how many peers are unreachable (worker gone); ``crashed`` (peers whose
        greenlets died) and ``failures`` (background greenlets that died) when any."""
        result = {"n": len(self.members), **self._troubles()}
        if self.engine is not None:
            result["now"] = round(self.engine.now(), 9)
        if self.workers:
            result.update(workers=self._workforce.describe(self.members), unreachable=self.members.unreachable())
        return result

    def stats(self) -> dict:
        """Counters since start (drops by where and by reason), memory, file descriptors, time spent per phase, what
        background churn did, how many peers departed and crashed, what background greenlet failed, and the event
        stream's ``events``: subscribers, emitted, dropped (a PUB subscriber's queue was full), errors."""
        result = {"peers": len(self.members), **self.counters.summary(), **process_usage(),
                  "seconds": {phase: round(seconds, 6) for phase, seconds in self.seconds.items()},
                  "churn": dict(self.churned), "dead": len(self.members.departed),
                  "crashed": self.counters["crashed"], "failures": self._failures(), "events": self.events.summary()}
        if self.engine is not None:
            result["now"] = round(self.engine.now(), 9)
            result["network"] = self.engine.summary()
        if self.workers:
            result["workers"] = self._workforce.stats(self.members)
        return result


    route_sample = _forward("_router", Router.route_sample)

    tables = _forward("_exporter", Exporter.tables)
    snapshot = _forward("_exporter", Exporter.snapshot)

    entries = _forward("_exporter", Exporter.entries)
    peer_counts = _forward("_exporter", Exporter.peer_counts)

    # -- long operations and stopping ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """A context manager around long operation ``name``: :meth:`progress` shows how far it is, :meth:`cancel`
        stops it at its next safe point (see :mod:`.tracking`); on the virtual clock, timers fire meanwhile."""
        with self._tracker.operation(name), self.engine_busy():
            yield

    def engine_busy(self):
        """A block in which a command runs: on the virtual clock, timers may fire (docs/DESIGN.md §12)."""
        return self.engine.busy() if self.engine is not None else contextlib.nullcontext()

    def progress(self) -> dict:
        """``running`` (its name), ``seconds``, its innermost ``phase`` with ``done`` of ``total``, every ``phases``
        under way and whether it is ``cancelling``; a :class:`UsageError` when none runs."""
        return self._tracker.progress()

    def cancel(self) -> dict:
        """Between two peers of a create or refresh, two routing rounds of a status, two steps of a time-lapse, so
        every table stays whole. Returns at once, with :meth:`progress`; the operation then raises
        :class:`~p2pzmq.errors.Cancelled` saying what it completed."""
        return self._tracker.cancel()

    def die(self) -> dict:
        """Every socket is closed; nothing is left running. Idempotent. An operation running in another greenlet
        raises :class:`ClosedError` there."""
        if not self.closed:
            self.closed = True
            self._tracker.stop_others(ClosedError("the network was stopped (die)"))
            self._churn.stop()
            self._workforce.stop()
            self._offload.stop()
            self._channel.close()
            self.sockets_left_open = self._ctx.term()
            if self.engine is not None:
                self.engine.stop()
            if self.sockets_left_open:
                log.warning("%d sockets were still open at shutdown", self.sockets_left_open)
        return {"stopping": True}

    def _failures(self) -> list[dict]:
        churn_error = self.churned.get("error")
        return self.failures + ([{"what": "churn", "error": churn_error}] if churn_error else [])

    def _troubles(self) -> dict:
        """For ``ping``: crashed peers and failed background greenlets, only when there are any."""
        troubles = {"crashed": self.counters["crashed"], "failures": self._failures()}
        return {key: value for key, value in troubles.items() if value}

    def _notify(self, phase: str, done: int, total: int) -> None:
        self.events.progress(phase, done, total)
        if self.on_progress is not None:
            self.on_progress(phase, done, total)

    def _peer_crashed(self, peer) -> None:
        """A peer of this process whose greenlets died: a ``crashed`` event (it stays listed, marked crashed)."""
        self.events.emit("crashed", id=str(peer.id), reason="failed", error=peer.failure)

    def _background_failed(self, what: str, exc: BaseException) -> None:
        """A background greenlet of the network died of an error: logged once, shown in ``stats``."""
        failure = {"what": what, "error": repr(exc)}
        self.failures.append(failure)
        log.error("the %s stopped: %s", failure["what"], failure["error"])


for _command in COMMANDS.values():
    _command.bind(Network)
