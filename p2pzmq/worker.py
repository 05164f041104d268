"""A worker: a process that holds peers for a supervisor elsewhere (another process or another host).

The worker binds one ROUTER (its link endpoint) and answers the supervisor's link requests (:mod:`p2pzmq.link`):
``hello`` (the network's settings), ``spawn`` (start peers with the given ids), ``kill`` (stop peers with the given
ids), ``beat``, ``stats`` and ``stop``. Its peers are ordinary :class:`~p2pzmq.peer.Peer` objects on tcp endpoints;
they talk to every other peer directly, and to the worker's own peers over inproc (the transport dials the inproc
alias of an endpoint bound in this process). A worker that hears nothing from its supervisor for ``heartbeat_timeout``
(or, before the first ``hello``, for ``control_timeout``) stops its peers and ends: no orphan outlives its network.

:func:`launch` starts local worker processes for ``serve --workers K`` and reads back their endpoints.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import random
import sys

import gevent
import gevent.event
import gevent.subprocess

from . import link, simtime
from . import messages as m
from .clock import REAL
from .config import Config
from .contact import Contact
from .errors import P2PError, TransportError
from .hosting import LocalHost
from .resources import peer_room, process_usage
from .ids import parse_id
from .rpc import Counters
from .supervision import Group
from .endpoints import Endpoints
from .transport import Context

log = logging.getLogger(__name__)

#: The line a worker prints once it listens; :func:`launch` reads the endpoint from it.
READY = "Worker listening on "


class Worker:
    """Peers for a remote supervisor, served from one greenlet that owns the link socket."""

    def __init__(self, host: str = "127.0.0.1", config: Config | None = None, keys=None,
                 spread_loopback: bool = False) -> None:
        """A worker whose link binds ``host``; with ``keys`` (:class:`~p2pzmq.security.Keys`) it speaks CURVE only.

        With ``spread_loopback`` and an IPv4 loopback ``host``, its peers bind the loopback address of the index the
        supervisor gives it (127.0.1.1 for the first worker, as ``serve --workers`` does; see :func:`local_hosts`):
        replicas started from one command line on one host then do not share one address's ports.
        """
        self._spread_loopback = spread_loopback
        self._engine = None  # simulated time, once the supervisor said which (hello)
        self.config = (config or Config()).replace(transport="tcp", host=host)
        self._ctx = Context(max_message_bytes=self.config.max_message_bytes, tcp_backlog=self.config.tcp_backlog,
                            clock=self.config.clock)
        self._endpoints = Endpoints("tcp", self._ctx.namespace, host)
        self._sock = self._ctx.router()
        try:
            if keys is not None:
                keys.serve(self._sock)
            self.endpoint = self._sock.bind(self._endpoints.new("worker"))
        except P2PError:
            self._ctx.term()
            raise
        self._codec = link.LinkCodec()
        self.counters = Counters()
        self.peers: LocalHost | None = None
        self._directory: list[Contact] = []  # every peer's contact, while a snapshot is being restored
        self.stopped = gevent.event.Event()
        #: Why the worker stopped by itself, if it did: no word from its supervisor in time (None otherwise).
        self.gave_up: str | None = None
        self._group = Group(self._crashed, self.config.shutdown_timeout)
        self._handlers = {link.BEAT: lambda fields: {}, link.HELLO: self._hello, link.SPAWN: self._spawn,
                          link.KILL: self._kill, link.INSTALL: self._install, link.STATS: self._stats, link.STOP: lambda fields: {}}

    def start(self) -> "Worker":
        self._group.spawn("worker's link serving", self._serve)
        return self

    def _crashed(self, what: str, exc: BaseException) -> None:
        """The serving greenlet died of a bug (its ``finally`` stopped the peers): :meth:`wait` raises."""
        log.error("the %s stopped: %r", what, exc)
        self.stopped.set()

    def _serve(self) -> None:
        sock = self._sock
        try:
            while True:
                silence = self.config.heartbeat_timeout if self.peers else self.config.control_timeout
                frames = sock.recv(silence)
                if frames is None:  # its owner (the command line) reports it; a log line would say it twice
                    self.gave_up = f"no word from a supervisor for {silence:g} s: worker stopped"
                    log.info("%s", self.gave_up)
                    return
                route, *body = frames
                try:
                    request = self._codec.decode(body)
                except P2PError as exc:
                    self.counters.drop("link", getattr(exc, "reason", "malformed"), exc)
                    continue
                if type(request) is not link.LinkRequest:
                    self.counters.drop("link", "unexpected", request)
                    continue
                try:
                    sock.reply(route, self._codec.encode(self._handle(request)))
                except TransportError as exc:
                    log.debug("worker could not answer its supervisor: %s", exc)
                if request.op == link.STOP:
                    return
        finally:
            if self.peers is not None:
                self.peers.stop()
            sock.close()
            self.stopped.set()

    def _handle(self, request: link.LinkRequest) -> link.LinkReply:
        try:
            return link.ok(request, **self._handlers[request.op](request.fields))
        except (P2PError, KeyError, TypeError, ValueError) as exc:
            return link.failed(request, str(exc))

    def _hello(self, fields: dict) -> dict:
        if self.peers is None:
            settings = fields["config"]
            unknown = set(settings) - set(link.WORKER_SETTINGS)
            if unknown:
                raise ValueError(f"unknown settings {sorted(unknown)}")
            index = fields.get("index", 0)
            if type(index) is not int or index < 0:
                raise ValueError(f"a worker index is a non-negative integer, not {index!r}")
            host = local_hosts(self.config.host, index + 1)[index] if self._spread_loopback else self.config.host
            self.config = self.config.replace(**settings, host=host)
            if self.config.network_clock == "virtual":
                raise ValueError("a worker runs on the real clock only (docs/DESIGN.md §12)")
            self._engine = simtime.engine_for(self.config)
            # The worker's own peers reach each other over inproc (an alias of each one's tcp endpoint).
            endpoints = Endpoints("tcp", self._ctx.namespace, host, local_alias=True)
            self.peers = LocalHost(ctx=self._ctx, endpoints=endpoints, config=self.config,
                                   cookies=random.Random(), codec=m.Codec(self.config.max_message_bytes),
                                   counters=self.counters, engine=self._engine)
        return {"pid": os.getpid(), "host": self.config.host, "room": self._room()}

    def _spawn(self, fields: dict) -> dict:
        peers = self._hosted().spawn(_ids(fields["ids"]))
        return {"contacts": [link.pack_contact(peer.contact) for peer in peers], "room": self._room()}

    def _install(self, fields: dict) -> dict:
        """A directory of contacts (in parts), then tables as indexes into it (docs/DESIGN.md §17)."""
        if "contacts" in fields:
            start = fields.get("start")
            if start == 0:
                self._directory = []
            if type(start) is not int or start != len(self._directory):
                raise ValueError(f"install contacts start at {len(self._directory)}, not {start!r}")
            self._directory.extend(link.unpack_contact(item) for item in fields["contacts"])
        tables = fields.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(item, list) and item for item in tables):
            raise ValueError("install tables are a list of [id, index, ...]")
        self._hosted().install(self._directory, list(zip(_ids([item[0] for item in tables]),
                                                         (item[1:] for item in tables))))
        return {"installed": len(tables)}

    def _kill(self, fields: dict) -> dict:
        self._hosted().kill(_ids(fields["ids"]))
        return {"room": self._room()}

    def _stats(self, fields: dict) -> dict:
        result = {**self.counters.summary(), **process_usage(), "peers": len(self.peers.peers) if self.peers else 0}
        if self._engine is not None:
            result["network"] = self._engine.summary()
        return result

    def _room(self) -> int:
        return self.peers.room() if self.peers is not None else peer_room("tcp")

    def _hosted(self) -> LocalHost:
        if self.peers is None:
            raise ValueError("hello first")
        return self.peers

    def wait(self) -> None:
        """Block until the supervisor said stop (or went silent), or :meth:`stop` was called; raises
        :class:`~p2pzmq.errors.Crashed` if the worker stopped because its serving greenlet died of an error."""
        self.stopped.wait()
        self._group.raise_failure()

    def stop(self) -> None:
        """Stop the serving greenlet (its peers stop with it) and release every socket. Idempotent."""
        self._group.kill()
        self._sock.close()
        left = self._ctx.term()
        if left:
            log.warning("%d sockets were still open when the worker stopped", left)
        self.stopped.set()


def _ids(texts) -> list[int]:
    """Peer ids sent on the link as decimal strings; raises ValueError for anything else."""
    if not isinstance(texts, list):
        raise ValueError("ids are a list of decimal strings")
    return [parse_id(text) for text in texts]


class Launched:
    """Local worker processes started by a supervisor (``serve --workers K``), which owns and reaps them."""

    def __init__(self, processes: list, endpoints: list[str]) -> None:
        self.processes = processes
        self.endpoints = endpoints

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` in all for the processes to end (they stop on ``die``, at the same time); kill
        what is left."""
        deadline = REAL.now() + timeout  # real processes: the wall clock whatever the network's
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - REAL.now()))
            except gevent.subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop: killing it", process.pid)
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def local_hosts(host: str, count: int) -> list[str]:
    """Addresses for ``count`` local workers of a network on ``host``. On an IPv4 loopback ``host`` each worker gets
    its own loopback address (127.0.1.1, 127.0.1.2, ...): a tcp peer listens on a port and one address has only the
    ephemeral port range (about 28,000 ports), which a few workers fill. Elsewhere all use ``host``.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return [host] * count
    if address.version == 4 and address.is_loopback:
        return [str(ipaddress.IPv4Address("127.0.1.0") + index) for index in range(1, count + 1)]
    return [host] * count


def launch(hosts: list[str], config: Config, extra_args: tuple[str, ...] = ()) -> Launched:
    """Start one worker process (``p2p-network worker``) per address in ``hosts`` (all on this machine: e.g. the
    same address K times, or several loopback addresses) and read back their endpoints."""
    processes, endpoints = [], []
    launched = Launched(processes, endpoints)
    # The workers import this very package, installed or not.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    try:
        for host in hosts:
            # A worker gives up if no supervisor gets in touch within its --timeout, counted from its start; the
            # first ones started wait for every other to start before they are attached, which takes longer than
            # control_timeout when many Python processes start on a busy machine. The supervisor that started them
            # stops them itself, so they may wait as long as it waits for any of their replies.
            command = [sys.executable, "-m", "p2pzmq", "worker", "--host", host,
                       "--timeout", str(max(config.worker_timeout, config.control_timeout)), *extra_args]
            # A session of its own: Ctrl-C at the terminal interrupts the supervisor, which stops its workers (they
            # must not each get the SIGINT, stop on their own and report it).
            processes.append(gevent.subprocess.Popen(command, stdout=gevent.subprocess.PIPE, text=True, env=env,
                                                     start_new_session=True))
        for process in processes:
            line = ""
            with REAL.timeout(config.control_timeout, False):
                line = process.stdout.readline()
            if not line.startswith(READY):
                raise TransportError(f"worker pid {process.pid} did not start (it said {line.strip()!r})")
            endpoints.append(line[len(READY):].strip())
    except BaseException:
        for process in processes:
            process.kill()
        launched.reap(config.shutdown_timeout)
        raise
    return launched
