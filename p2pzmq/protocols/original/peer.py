"""The original's protocol (docs/DESIGN.md §4): a peer's table and how it answers and discovers.

The server answers ``get_peers`` and ``find_closest`` from its table *as it was before* the request, then adds the
sender; ``update_peers`` replaces the table when it carries the peer's secret cookie; ``leave`` removes exactly the
leaving contact. The client bootstraps from a peer's table and rebuilds its table by walking the 160 discovery
targets (:mod:`.discovery`). Server and client share the table and the secret and live in one process, so the
client installs its rebuilt table directly (the original sent it to its own server with ``update_peers``, which
replaced the table with the same entries in the same shape).
"""
from __future__ import annotations

import collections
import random

from ... import messages as m
from ...config import Config
from .discovery import build_table
from ...errors import RpcTimeout, TransportError
from ...ids import new_cookie
from ...contact import Contact
from .table import Table, configured


class Original:
    """One peer's side of the original protocol."""

    def __init__(self, config: Config, node, cookies: random.Random) -> None:
        self.config = config
        self._node = node
        self._me = node.contact
        self._call = node.call
        self._timeout = config.client_timeout
        self.secret = new_cookie(cookies)
        self.table = configured(config)
        self.table.add(self._me)
        #: Consecutive discovery passes in which a peer's server timed out, for ``Config.evict_after``.
        self._strikes: collections.Counter = collections.Counter()
        #: Servers that timed out during the current discovery pass.
        self._unreachable: set[int] = set()

    # -- server ---------------------------------------------------------------------------------------------------

    def serve(self, msg):
        kind = type(msg)
        if kind is m.FindClosest:
            reply = m.ClosestReply(msg.req_id, msg.cookie, self.table.closest(msg.target))
        elif kind is m.GetPeers:
            reply = m.PeersReply(msg.req_id, msg.cookie, self.table.preorder())
        elif kind is m.UpdatePeers:
            self.update_peers(msg.secret, msg.table)
            return None
        else:
            self._forget_leaver(msg.sender)
            return m.Done(msg.req_id, msg.cookie)
        self.table.add(msg.sender)  # after the answer was taken from the table (docs/DESIGN.md §4.4)
        return reply

    def update_peers(self, secret: int, contacts: list[Contact]) -> bool:
        """Replace the table with ``contacts`` (preorder) if ``secret`` is this peer's; True if it was applied."""
        if secret != self.secret:
            self._node.counters.drop("server", "bad_secret", "update_peers with a wrong secret")
            return False
        self.table = configured(self.config, contacts)
        return True

    def install(self, contacts: list[Contact]) -> None:
        """Take ``contacts`` (preorder) as the table, as a snapshot saved it (docs/DESIGN.md §17): the same entries
        in the same shape. Raises ``ValueError`` for a table without its owner, over capacity or naming a peer
        twice."""
        if all(contact.id != self._me.id for contact in contacts):
            raise ValueError(f"the table of peer {self._me.id} does not hold it")
        self.table = configured(self.config, contacts)

    def _forget_leaver(self, sender: Contact) -> None:
        """Remove a peer that says it leaves, only if our entry for it is exactly the contact it names."""
        if sender.id != self._me.id and self.table.get(sender.id) == sender:
            self.table.remove(sender.id)
            self._node.counters["leaves"] += 1

    # -- what the supervisor reads --------------------------------------------------------------------------------

    def contacts(self) -> list[Contact]:
        return self.table.preorder()

    def closest(self, target: int) -> Contact:
        return self.table.closest(target)

    # -- client ---------------------------------------------------------------------------------------------------

    def join(self, contact: Contact) -> None:
        """Bootstrap: fetch ``contact``'s table (it learns us) and build ours from it (§4.8 create)."""
        reply = self._call(contact.server, m.GetPeers, (self._me,), m.PeersReply, self._timeout)
        self._rebuild(configured(self.config, reply.table))

    def refresh(self) -> None:
        """One discovery pass from our current table (§4.4 refresh)."""
        self._rebuild(self.table)

    def depart(self) -> int:
        """Tell every peer in our table that we leave (``Leave``), ``max_connections`` at a time, each window
        waiting at most ``client_timeout`` for the acknowledgements; returns how many acknowledged. Waiting for
        them matters: a socket closed with LINGER 0 would discard messages still queued on a tcp connection."""
        others = [contact.server for contact in self.table if contact.id != self._me.id]
        results = self._node.call_many([(server, m.Leave, (self._me,), m.Done) for server in others],
                                       self.config.max_connections)
        for server in others:
            self._node.forget(server)
        return sum(result.replied for result in results)

    def _rebuild(self, start: Table) -> None:
        self._unreachable.clear()
        fresh = build_table(self._me, start, self._find_closest, self.config.max_hops,
                            capacity=self.config.table_capacity)
        if self.config.evict_after:
            self._evict(fresh)
        self.table = fresh  # what update_peers would install: the same entries in the same shape

    def _evict(self, fresh: Table) -> None:
        """Drop from ``fresh`` every entry whose server timed out in ``evict_after`` discovery passes in a row (a
        walk that cannot reach a server still returns it as its best guess, so only the rebuilt table can drop it).
        Strikes of peers no longer in the table are forgotten, so they cannot pile up."""
        for peer_id, strikes in list(self._strikes.items()):
            if strikes >= self.config.evict_after and peer_id != self._me.id and fresh.remove(peer_id):
                self._node.counters["evicted"] += 1
            if strikes >= self.config.evict_after or peer_id not in fresh:
                del self._strikes[peer_id]

    def _find_closest(self, contact: Contact, target: int) -> Contact:
        """Ask ``contact``'s server; one that did not answer is not asked again in the same discovery pass (it
        would cost ``client_timeout`` per target: a dead entry could make a pass last minutes)."""
        if contact.id in self._unreachable:
            raise RpcTimeout(f"{contact.server} did not answer earlier in this pass")
        try:
            reply = self._call(contact.server, m.FindClosest, (self._me, target), m.ClosestReply, self._timeout)
        except TransportError:
            self._unreachable.add(contact.id)
            if self.config.evict_after:
                self._strikes[contact.id] += 1
            raise
        if self._strikes:
            self._strikes.pop(contact.id, None)
        return reply.contact
