"""Every tunable of the simulator in one frozen dataclass, with the original's values as defaults (docs/DESIGN.md §4.9).

Times are seconds (floats). Nothing here does I/O; checking the protocol may import its package (docs/DESIGN.md
§11).
"""
from __future__ import annotations

import dataclasses

from . import protocols
from .clock import REAL, Clock
from .errors import UsageError
from .ids import ID_BITS, MAX_COOKIE

TRANSPORTS = ("inproc", "tcp")
#: Largest reply a control client accepts. A reply holds a row per peer (net_status of 20,000 peers is about
#: 2.5 MB, ``peers`` more), while requests and every peer message stay under ``Config.max_message_bytes``.
MAX_CONTROL_REPLY_BYTES = 1 << 28
#: The control socket answers a request larger than MAX_CONTROL_REQUEST_BYTES with an error (a list of 80,000 ids
#: fits). ZeroMQ drops a message over MAX_CONTROL_MESSAGE_BYTES and closes its connection without a word: that
#: limit only bounds the memory one message may take.
MAX_CONTROL_REQUEST_BYTES = 1 << 22
MAX_CONTROL_MESSAGE_BYTES = 1 << 26
#: The web view (docs/DESIGN.md §9): a feed sends the events that arrived as one batch at most every
#: WEB_FEED_INTERVAL seconds (so a build's thousands of joins cost a few writes a second), a comment line after
#: WEB_FEED_HEARTBEAT quiet seconds (so proxies and the page see the stream alive), and holds at most
#: WEB_FEED_BACKLOG events for a page that reads slowly (older ones are dropped and counted). A graph snapshot
#: carries at most WEB_GRAPH_EDGES edges, the same number from each peer; the page says how many it leaves out.
WEB_FEED_INTERVAL = 0.1
WEB_FEED_HEARTBEAT = 15.0
WEB_FEED_BACKLOG = 20_000
WEB_GRAPH_EDGES = 60_000


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one simulated network. ``Config()`` reproduces the original."""

    seed: int | None = None
    # The peers' protocol (docs/DESIGN.md §11); every peer of a network speaks the same one. Which of the settings
    # below are a protocol's own its descriptor says: ``metric``, ``table_capacity`` and ``evict_after`` are the
    # original's; ``k`` (contacts per bucket and per FIND_NODE answer) and ``alpha`` (requests a lookup round sends)
    # are Kademlia's, the paper's values. A network keeps every other protocol's settings at their defaults.
    protocol: str = protocols.DEFAULT
    # A module whose import registers ``protocol`` (one that is not built in); workers import it too.
    protocol_module: str | None = None
    metric: str = "tree"
    k: int = 20
    alpha: int = 3
    transport: str = "inproc"
    host: str = "127.0.0.1"
    table_capacity: int = 160
    max_hops: int = 8
    client_timeout: float = 2.0
    refresh_interval: float = 24 * 60 * 60.0
    pace: float = 0.0
    # A client keeps at most this many live connections to other servers (docs/DESIGN.md §3: memory per connection).
    max_connections: int = 32
    # Waiting for the supervisor's own commands to a peer's client: a refresh walks 160 targets, each up to
    # max_hops requests of client_timeout, so it needs far longer than one request.
    command_timeout: float = 3600.0
    # A client drops a table entry whose server timed out in this many discovery passes in a row (0: never, as
    # the original); it takes effect when the table is rebuilt at the end of the pass.
    evict_after: int = 0
    control_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    max_message_bytes: int = 1 << 20
    # Workers (other processes holding peers): the supervisor beats every heartbeat_interval and declares a worker
    # gone after heartbeat_timeout of silence; a worker stops itself after the same silence from its supervisor.
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 5.0
    # One request on the link to a worker (e.g. start a batch of peers).
    worker_timeout: float = 60.0
    tcp_backlog: int = 4096
    # Up to this many peers bootstrap at the same time during create (1 = the original's sequential build, which
    # the message-free oracle reproduces exactly; more is faster but tables then depend on scheduling).
    join_concurrency: int = 1
    # net_status routes all N² pairs while their work fits this budget, counted in greedy routes (the original's 2,000
    # peers: 2,000²), each pair costing one route plus what its protocol's status adds (its descriptor's
    # status_cost); beyond, it samples status_sample targets per peer by default (see status_exact).
    status_budget: int = 2000 * 2000
    status_sample: int = 100
    # net_status's "auto" routing drives routes by messages up to this N, and routes locally on fetched tables above.
    status_local_above: int = 256
    # Events a subscriber of the event stream's PUB socket may have queued unread; beyond, events are dropped and
    # counted (docs/EVENTS.md).
    events_hwm: int = 10_000
    # Simulated time (docs/DESIGN.md §12): the words of --latency, --jitter and --loss, and the clock the network
    # runs on, "real" or "virtual" (one process only). Today's network: none, 0, 0, real.
    latency: str = "none"
    jitter: float = 0.0
    loss: float = 0.0
    network_clock: str = "real"
    # The network's one clock (docs/DESIGN.md §16): every timeout, timer, sleep and deadline of its sockets, peers,
    # churn, heartbeats and events. Never sent to workers: each process has its own.
    clock: Clock = dataclasses.field(default=REAL, compare=False, repr=False)

    id_bits: int = ID_BITS
    max_cookie: int = MAX_COOKIE

    def __post_init__(self) -> None:
        self._check_protocol()
        if self.transport not in TRANSPORTS:
            raise UsageError(f"unknown transport {self.transport!r}; choose one of {', '.join(TRANSPORTS)}")
        for name in ("client_timeout", "refresh_interval", "command_timeout", "control_timeout", "shutdown_timeout",
                     "heartbeat_interval", "heartbeat_timeout", "worker_timeout"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive")
        if self.pace < 0:
            raise UsageError("pace must not be negative")
        if self.max_hops < 0:
            raise UsageError("max_hops must not be negative")
        if self.max_connections < 1:
            raise UsageError("max_connections must be at least 1")
        if self.join_concurrency < 1:
            raise UsageError("join_concurrency must be at least 1")
        if self.events_hwm < 1:
            raise UsageError("events_hwm must be at least 1")
        if not 0 <= self.jitter < 1 or not 0 <= self.loss < 1:
            raise UsageError("jitter and loss must be from 0 to below 1")
        if self.network_clock not in ("real", "virtual"):
            raise UsageError(f"unknown clock {self.network_clock!r}; choose virtual or real")
        if self.status_sample < 1 or self.status_budget < 1:
            raise UsageError("status_sample and status_budget must be at least 1")

    def _check_protocol(self) -> None:
        """The protocol is known (importing ``protocol_module`` first), its settings are valid as its descriptor
        checks them, and every other protocol's settings keep their defaults (a setting that would be ignored is
        a mistake of the caller's)."""
        if self.protocol_module is not None:
            protocols.load(self.protocol_module)
        descriptor = protocols.get(self.protocol)
        for other in protocols.descriptors():
            for name, default in other.settings.items():
                if name not in descriptor.settings and getattr(self, name) != default:
                    raise UsageError(f"{name} is a setting of the {other.name} protocol, not of {self.protocol}")
        if descriptor.check is not None:
            descriptor.check(self)

    def status_exact(self, n: int) -> bool:
        """Whether a default ``net_status`` of ``n`` alive peers routes all pairs: their work, n² pairs of one greedy
        route and the protocol's ``status_cost`` each, fits ``status_budget``. So a status that would take minutes
        (Kademlia's iterative lookups, about 40 routes' worth a pair: 2,000² of them took 209 s) is sampled, with
        its confidence interval, where the original's greedy routes alone are still exact."""
        return n * n * (1 + protocols.of(self).status_cost) <= self.status_budget

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
