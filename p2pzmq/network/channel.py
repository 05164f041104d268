"""The supervisor's command channel to peers' clients (docs/DESIGN.md §8).

It owns the supervisor's socket and its lock (:class:`~p2pzmq.rpc.Channel`): no other object reaches that socket,
and every use of it holds the lock, so commands from the control socket, the CLI and background churn never read
each other's replies. Commands are tagged with a request id and cookie (docs/DESIGN.md §4.9), sent up to
:data:`COMMAND_WINDOW` at a time, and never sent to a peer :class:`~p2pzmq.network.members.Members` says is
gone.
"""
from __future__ import annotations

import math
import random

from .. import messages as m
from ..config import Config
from ..errors import TransportError
from ..rpc import Caller, Channel, Counters, Liveness, Request, Result
from ..contact import Contact
from ..transport import Context
from .members import Members

#: At most this many commands are in flight from the supervisor at once (and as many live connections).
COMMAND_WINDOW = 256
#: The reply each client command must get.
REPLY_TO = {m.ClientPeers: m.PeersReply, m.FindPeers: m.FoundPeers, m.Join: m.Done, m.Refresh: m.Done,
            m.Depart: m.Done, m.ClientNodes: m.NodesReply, m.ClientCounts: m.PeerCounts}


class CommandChannel:
    """Commands to peers' clients: ``ask`` sends a batch and returns one :class:`~p2pzmq.rpc.Result` per command."""

    def __init__(self, ctx: Context, config: Config, codec, counters: Counters, cookies: random.Random,
                 members: Members) -> None:
        self.config = config
        self._members = members
        # A refused connection (a dead peer's port) fails at once; how long a new one may take to come up is each
        # command's own patience (a join to a peer just started on a busy worker may take a while).
        sock = ctx.router(max_connections=COMMAND_WINDOW, handshake_timeout=config.command_timeout, fail_fast=True)
        self._channel = Channel(Caller(sock, codec, counters, cookies, where="supervisor"))
        #: Hold it around several commands that must see one state of the network (see rpc.Channel).
        self.exclusive = self._channel.exclusive
        #: True once some peers live in workers: waits then check their liveness as they go.
        self.remote = False

    def ask(self, calls: list[tuple[Contact, type, tuple]], *, strict: bool = False,
            window: int = COMMAND_WINDOW) -> list[Result]:
        """Send each ``(contact, command kind, arguments)`` to the contact's client; results in order.

        Join, refresh and depart may take long (a walk of 160 targets), so they wait up to ``command_timeout``;
        other commands are quick and must show progress within ``client_timeout``. With ``strict`` the first
        command that gets no answer raises :class:`~p2pzmq.errors.RpcTimeout` (a peer known to be gone never does).
        """
        if not calls:
            return []
        requests = [Request(contact.client, kind, args, REPLY_TO[kind], contact) for contact, kind, args in calls]
        patience = max(self._patience(kind) for kind in {kind for _, kind, _ in calls})
        return self._channel.call_many(requests, patience, window=window, strict=strict, liveness=self._liveness())

    def ask_one(self, contact: Contact, kind, *args):
        """The reply of one command; raises if it gets none (:class:`~p2pzmq.errors.TransportError`)."""
        result = self.ask([(contact, kind, args)], strict=True)[0]
        if not result.replied:
            raise TransportError(f"peer {contact.id} is gone")
        return result.reply

    def forget(self, contact: Contact) -> None:
        """Drop the connection to a departed peer's client."""
        self._channel.forget(contact.client)

    def close(self) -> None:
        self._channel.close()

    def _liveness(self) -> Liveness:
        config = self.config
        if self.remote:  # a worker may die: notice it every heartbeat_interval, and before giving up
            return Liveness(self._members.reachable, config.heartbeat_interval, config.heartbeat_timeout)
        return Liveness(self._members.reachable)

    def _patience(self, kind) -> float:
        """How long the supervisor waits for the next reply to a command of ``kind``."""
        config = self.config
        if kind in (m.Join, m.Refresh):
            return config.command_timeout  # a walk of 160 targets
        if kind is m.Depart:  # tells up to a table of peers goodbye, max_connections at a time
            return config.client_timeout * (math.ceil(config.table_capacity / config.max_connections) + 1)
        return config.client_timeout
