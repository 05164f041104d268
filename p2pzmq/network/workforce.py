"""The hosts of a network: this process, and the worker processes attached over the link (docs/DESIGN.md §9).
It owns the link channel (one socket, one lock, shared by every worker's requests) and the heartbeat
:class:`~p2pzmq.hosting.Watch`, both made when the first worker is attached."""
from __future__ import annotations

import logging
import random
from typing import Callable

import gevent.event

from .. import link
from ..config import Config
from ..errors import UsageError
from ..hosting import LocalHost, RemoteHost, Watch, stop_workers
from ..rpc import Caller, Channel, Counters
from ..transport import Context
from .members import Members

log = logging.getLogger(__name__)


class Workforce:
    """This process's :class:`LocalHost` and the :class:`RemoteHost` of every attached worker."""

    def __init__(self, ctx: Context, config: Config, local: LocalHost, counters: Counters, keys,
                 on_failure: Callable) -> None:
        self._ctx = ctx
        self.config = config
        self.local = local
        self._counters = counters
        self._keys = keys  # security.Keys of the network, or None
        self._on_failure = on_failure
        self.workers: list[RemoteHost] = []
        #: Set whenever a worker is taken on (whoever waits for workers clears it).
        self.attached = gevent.event.Event()
        self._link: Channel | None = None
        self._watch: Watch | None = None

    def attach(self, endpoint: str) -> RemoteHost:
        """Take on the worker listening at ``endpoint``: hand it the network's settings and its index (its place in
        :attr:`workers`), watch its heartbeats, and set :attr:`attached`."""
        if self.config.transport != "tcp":
            raise UsageError("workers need --transport tcp (inproc endpoints cannot leave a process)")
        if self._link is None:
            sock = self._ctx.router(max_connections=1 << 16)
            if self._keys is not None:
                self._keys.dial(sock)
            self._link = Channel(Caller(sock, link.LinkCodec(), self._counters, random.Random(), where="link"))
            self._watch = Watch(self._ctx, self.config, self._keys, on_failure=self._on_failure)
        worker = RemoteHost(endpoint, self._link, self.config)
        worker.hello(len(self.workers))
        self.workers.append(worker)
        self._watch.hosts.append(worker)
        self.attached.set()
        return worker

    def builders(self, hosts: list | None = None) -> list:
        """The hosts new peers go to: ``hosts``, else every live worker, else this process."""
        return hosts or [worker for worker in self.workers if worker.alive] or [self.local]

    def describe(self, members: Members) -> list[dict]:
        return [worker.describe(members.count_on(worker)) for worker in self.workers]

    def stats(self, members: Members) -> list[dict]:
        """Each worker's own counters, memory and fds (a gone worker shows only that it is gone)."""
        return [{**worker.describe(members.count_on(worker)), **(worker.stats() if worker.alive else {})}
                for worker in self.workers]

    def stop(self) -> None:
        """Stop the heartbeats, every worker at once (they stop their peers) and this process's peers."""
        if self._watch is not None:
            self._watch.stop()
        if self._link is not None:
            stop_workers(self._link, self.workers, self.config.shutdown_timeout)
        self.local.stop()
        if self._link is not None:
            self._link.close()
