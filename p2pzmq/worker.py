"""A worker: a process that holds peers for a supervisor elsewhere (another process or another host).

The worker binds one ROUTER (its link endpoint) and answers the supervisor's link requests, one JSON object each
(see :mod:`p2pzmq.hosting`): ``hello`` (the network's settings), ``spawn`` (start peers with the given ids),
``kill`` (stop peers with the given ids), ``beat``, ``stats`` and ``stop``. Its peers are ordinary
:class:`~p2pzmq.peer.Peer` objects on tcp endpoints; they talk to every other peer directly. A worker that hears
nothing from its supervisor for ``heartbeat_timeout`` (or, before the first ``hello``, for ``control_timeout``)
stops its peers and ends: no orphan outlives its network.

:func:`launch` starts local worker processes for ``serve --workers K`` and reads back their endpoints.
"""
from __future__ import annotations

import collections
import ipaddress
import json
import logging
import os
import random
import sys
import time

import gevent
import gevent.event
import gevent.subprocess

from . import messages as m
from .config import Config
from .errors import P2PError, ProtocolError, TransportError
from .hosting import LocalHost, WORKER_SETTINGS, decode_link, pack_contact, peer_room, process_usage
from .transport import Context, Endpoints

log = logging.getLogger(__name__)

#: The line a worker prints once it listens; :func:`launch` reads the endpoint from it.
READY = "Worker listening on "


class Worker:
    """Peers for a remote supervisor, served from one greenlet that owns the link socket."""

    def __init__(self, host: str = "127.0.0.1", config: Config | None = None, keys=None) -> None:
        """A worker whose link binds ``host``; with ``keys`` (:class:`~p2pzmq.security.Keys`) it speaks CURVE only."""
        self.config = (config or Config()).replace(transport="tcp", host=host)
        self._ctx = Context(max_message_bytes=self.config.max_message_bytes, tcp_backlog=self.config.tcp_backlog)
        self._endpoints = Endpoints("tcp", self._ctx.namespace, host)
        self._sock = self._ctx.router()
        try:
            if keys is not None:
                keys.serve(self._sock)
            self.endpoint = self._sock.bind(self._endpoints.new("worker"))
        except P2PError:
            self._ctx.term()
            raise
        self.counters: collections.Counter = collections.Counter()
        self.peers: LocalHost | None = None
        self.stopped = gevent.event.Event()
        #: Why the worker stopped by itself, if it did: no word from its supervisor in time (None otherwise).
        self.gave_up: str | None = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> "Worker":
        self._greenlet = gevent.spawn(self._serve)
        return self

    def _serve(self) -> None:
        sock = self._sock
        try:
            while True:
                silence = self.config.heartbeat_timeout if self.peers else self.config.control_timeout
                frames = None
                with gevent.Timeout(silence, False):
                    frames = sock.recv()
                if frames is None:  # its owner (the command line) reports it; a log line would say it twice
                    self.gave_up = f"no word from a supervisor for {silence:g} s: worker stopped"
                    log.info("%s", self.gave_up)
                    return
                route, *body = frames
                try:
                    request = decode_link(body)
                except ProtocolError as exc:
                    self.counters["dropped.link"] += 1
                    log.debug("worker dropped a link message: %s", exc)
                    continue
                reply, stop = self._handle(request)
                try:
                    sock.reply(route, [json.dumps({"req": request.get("req"), **reply}).encode()])
                except TransportError as exc:
                    log.debug("worker could not answer its supervisor: %s", exc)
                if stop:
                    return
        finally:
            if self.peers is not None:
                self.peers.stop()
            sock.close()
            self.stopped.set()

    def _handle(self, request: dict) -> tuple[dict, bool]:
        op = request.get("op")
        try:
            if op == "beat":
                return {"ok": True}, False
            if op == "hello":
                return self._hello(request["config"]), False
            if op == "spawn":
                return self._spawn(request["ids"]), False
            if op == "kill":
                return self._kill(request["ids"]), False
            if op == "stats":
                return self._stats(), False
            if op == "stop":
                return {"ok": True}, True
        except (P2PError, KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": " ".join(str(exc).split())}, False
        return {"ok": False, "error": f"unknown op {op!r}"}, False

    def _hello(self, settings: dict) -> dict:
        if self.peers is None:
            unknown = set(settings) - set(WORKER_SETTINGS)
            if unknown:
                raise ValueError(f"unknown settings {sorted(unknown)}")
            self.config = self.config.replace(**settings)
            self.peers = LocalHost(ctx=self._ctx, endpoints=self._endpoints, config=self.config,
                                   cookies=random.Random(), codec=m.Codec(self.config.max_message_bytes),
                                   counters=self.counters)
        return {"ok": True, "pid": os.getpid(), "host": self.config.host, "room": peer_room("tcp")}

    def _spawn(self, ids: list) -> dict:
        if self.peers is None:
            raise ValueError("spawn before hello")
        peers = self.peers.spawn([int(text) for text in ids])
        return {"ok": True, "contacts": [pack_contact(peer.contact) for peer in peers], "room": peer_room("tcp")}

    def _kill(self, ids: list) -> dict:
        if self.peers is None:
            raise ValueError("kill before hello")
        self.peers.kill_ids([int(text) for text in ids])
        return {"ok": True, "room": peer_room("tcp")}

    def _stats(self) -> dict:
        dropped = {key.split(".", 1)[1]: value for key, value in sorted(self.counters.items())
                   if key.startswith("dropped.")}
        return {"ok": True, "requests": self.counters["requests"], "replies": self.counters["replies"],
                "timeouts": self.counters["timeouts"], "dropped": self.counters["dropped"],
                "dropped_by_kind": dropped, **process_usage(), "peers": len(self.peers.peers) if self.peers else 0}

    def wait(self) -> None:
        """Block until the supervisor said stop (or went silent), or :meth:`stop` was called."""
        self.stopped.wait()

    def stop(self) -> None:
        """Stop the serving greenlet (its peers stop with it) and release every socket. Idempotent."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=self.config.shutdown_timeout)
        self._sock.close()
        left = self._ctx.term()
        if left:
            log.warning("%d sockets were still open when the worker stopped", left)
        self.stopped.set()


class Launched:
    """Local worker processes started by a supervisor (``serve --workers K``), which owns and reaps them."""

    def __init__(self, processes: list, endpoints: list[str]) -> None:
        self.processes = processes
        self.endpoints = endpoints

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` in all for the processes to end (they stop on ``die``, at the same time); kill
        what is left."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except gevent.subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop: killing it", process.pid)
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def local_hosts(host: str, count: int) -> list[str]:
    """Addresses for ``count`` local workers of a network on ``host``. On an IPv4 loopback ``host`` each worker gets
    its own loopback address (127.0.1.1, 127.0.1.2, ...): a tcp peer listens on two ports and one address has only
    the ephemeral port range (about 28,000 ports), so about 14,000 peers fill one address. Elsewhere all use ``host``.
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
            command = [sys.executable, "-m", "p2pzmq", "worker", "--host", host, *extra_args]
            # A session of its own: Ctrl-C at the terminal interrupts the supervisor, which stops its workers (they
            # must not each get the SIGINT, stop on their own and report it).
            processes.append(gevent.subprocess.Popen(command, stdout=gevent.subprocess.PIPE, text=True, env=env,
                                                     start_new_session=True))
        for process in processes:
            line = ""
            with gevent.Timeout(config.control_timeout, False):
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
